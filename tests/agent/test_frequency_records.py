"""The loop's frequency response records: one a second while the mode is active, handed to
the sink once a tick (never from the fast path), kept while the sink fails and handed
over when it works again; none without the mode."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from reconciler.backtest.engine import MemorySink
from reconciler.config.loader import check_site_text
from reconciler.config.model import Site
from reconciler.control.types import FrequencyRecord
from tests.agent.test_frequency import FR_TEXT
from tests.rigs import run_in_process
from tests.source.conftest import DEMO_TEXT

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FlakySink(MemorySink):
    """A sink whose frequency writes fail (a locked outbox) until ``fail_until``."""

    def __init__(self, fail_calls: int) -> None:
        super().__init__()
        self.fail_calls = fail_calls
        self.calls = 0
        self.records: list[FrequencyRecord] = []

    def add_frequency_many(
        self, site_id: str, device: str, seconds: Iterable[FrequencyRecord]
    ) -> int:
        self.calls += 1
        if self.calls <= self.fail_calls:
            raise OSError("database is locked")
        assert (site_id, device) == ("demo", "bess")
        got = list(seconds)
        self.records += got
        return super().add_frequency_many(site_id, device, got)


def _site(text: str) -> Site:
    site, problems = check_site_text(text, "fr.yaml")
    assert site is not None, problems
    return site


def test_one_record_a_second_handed_over_once_a_tick_and_kept_while_the_sink_fails() -> None:
    sink = FlakySink(fail_calls=10)
    loop = run_in_process(_site(FR_TEXT), sink, T0, 300, fast_s=0.25, events=[(100, "drop")])
    # 75 ticks of 4 s with 15 fast iterations each; every second recorded once, in order,
    # though the first 10 hand-overs (40 s of records) failed.
    assert loop.ticks == 75 and loop.fast_ticks == 75 * 15
    assert [r.at for r in sink.records] == [T0 + timedelta(seconds=s) for s in range(300)]
    assert sink.calls <= loop.ticks + 1  # per tick (and the final flush), not per second
    block = loop.frequency.block
    assert block is not None and block.seconds == 300
    assert sum(r.within for r in sink.records) == block.seconds_within
    assert sum(r.expected_kw is None for r in sink.records) == block.seconds_stale
    # The drop (to 48.8 Hz over a minute) asked for the full 300 kW in the end.
    assert max(r.expected_kw or 0.0 for r in sink.records) > 290


def test_no_records_without_the_mode() -> None:
    sink = FlakySink(fail_calls=0)
    run_in_process(_site(DEMO_TEXT), sink, T0, 60, fast_s=1.0)
    assert sink.records == [] and sink.meter_rows > 0
