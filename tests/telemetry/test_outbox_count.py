"""The outbox's pending count is kept, not counted: the same at a million rows as at
none, and always equal to count(*) (adds, uploads, failed uploads, quarantine, threads,
a reopen)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.control.types import BatteryReading, MeterReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.net import free_port

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _bess(start: int, n: int) -> list[BatteryReading]:
    return [
        BatteryReading(T0 + timedelta(minutes=i), 500.0, 10.0, 4, 1)
        for i in range(start, start + n)
    ]


def _count_star(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (n,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    return int(n)


def test_pending_reads_nothing_from_the_table(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as box:
        box.add_bess_many("s", "bess", _bess(0, 50))
        statements: list[str] = []
        box._conn().set_trace_callback(statements.append)
        assert [box.pending() for _ in range(3)] == [50, 50, 50]
        assert statements == []  # no scan per call (count(*) took ~0.1 s at 1M rows)


def test_the_kept_count_equals_count_star_all_along(migrated_url: str, tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path):
        pass
    with sqlite3.connect(path) as db:  # a row that cannot be uploaded, already there
        db.execute(
            "INSERT INTO outbox (kind, site_id, device, payload) VALUES ('bess', 's', 'bess', 'x')"
        )
    box = Outbox(path)
    assert box.pending() == _count_star(path) == 1  # counted at open

    box.add_bess("s", "bess", _bess(0, 1)[0])
    box.add_bess_many("s", "bess", _bess(1, 99))
    box.add_meter_many("s", "site", [MeterReading(T0, power_kw=1.0, energy_import_kwh=1.0)])
    assert box.pending() == _count_star(path) == 102

    down = Uploader(box, f"postgresql://postgres@127.0.0.1:{free_port()}/flux", attempts=1)
    failed = down.upload_once()  # the malformed row is quarantined, the rest stays
    assert not failed.ok and failed.quarantined == 1
    assert box.pending() == _count_star(path) == 101

    uploader = Uploader(box, migrated_url, batch_size=30)
    assert uploader.upload_once().ok  # one batch
    assert box.pending() == _count_star(path) == 101 - 30

    # The loop adds while the uploader's threads delete.
    adding = threading.Thread(
        target=lambda: [box.add_bess_many("s", "bess", _bess(100 + 10 * k, 10)) for k in range(20)]
    )
    adding.start()
    assert uploader.drain().ok
    adding.join()
    assert box.pending() == _count_star(path)
    assert uploader.drain().ok
    assert box.pending() == _count_star(path) == 0

    box.add_bess_many("s", "bess", _bess(400, 7))
    uploader.close()
    box.close()
    with Outbox(path) as reopened:
        assert reopened.pending() == _count_star(path) == 7
