"""Missing minutes in a site's readings (battery and meter readings are 1-minute cadence).

A minute is missing for a device when no reading of that device falls in it. Without a
window, each device is checked from its first to its last reading; with ``since``/``until``
the whole window is expected, so a device silent throughout shows one long gap (`flux db
gaps` passes ``until`` = now by default: a silence that lasts until now is a gap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_QUERY = """
WITH params AS (
    SELECT %(site)s::text AS site, %(device)s::text AS device,
           %(since)s::timestamptz AS since, %(until)s::timestamptz AS until,
           timestamptz '2000-01-01 00:00+00' AS origin
), readings AS (
    SELECT r.device, date_bin('1 minute', r.time, p.origin) AS m
    FROM flux.bess_readings r, params p
    WHERE r.site_id = p.site AND (p.device IS NULL OR r.device = p.device)
      AND (p.since IS NULL OR r.time >= p.since) AND (p.until IS NULL OR r.time < p.until)
    UNION
    SELECT r.device, date_bin('1 minute', r.time, p.origin)
    FROM flux.meter_readings r, params p
    WHERE r.site_id = p.site AND (p.device IS NULL OR r.device = p.device)
      AND (p.since IS NULL OR r.time >= p.since) AND (p.until IS NULL OR r.time < p.until)
), devs AS (
    SELECT d.device FROM flux.devices d, params p
    WHERE d.site_id = p.site AND (p.device IS NULL OR d.device = p.device)
    UNION
    SELECT device FROM readings
), marks AS (
    -- Each device's minutes with a reading, between two sentinels when there is a window:
    -- the minute before the first one expected and the minute after the last. A gap is
    -- then two neighbours more than a minute apart (one pass over the readings, not one
    -- row per minute of the window).
    SELECT device, m FROM readings
    UNION ALL
    SELECT devs.device,
           date_bin('1 minute', p.since + interval '59.999999 seconds', p.origin)
           - interval '1 minute'
    FROM devs, params p WHERE p.since IS NOT NULL
    UNION ALL
    SELECT devs.device, date_bin('1 minute', p.until - interval '1 microsecond', p.origin)
                        + interval '1 minute'
    FROM devs, params p WHERE p.until IS NOT NULL
), seq AS (
    SELECT device, m, lead(m) OVER (PARTITION BY device ORDER BY m) AS next FROM marks
)
SELECT device, m + interval '1 minute' AS start, next AS "end",
       extract(epoch FROM next - m)::bigint / 60 - 1 AS minutes
FROM seq
WHERE next - m > interval '1 minute'
ORDER BY device, start
"""


@dataclass(frozen=True)
class Gap:
    """Minutes ``start`` (inclusive) to ``end`` (exclusive) without a reading of ``device``."""

    device: str
    start: datetime
    end: datetime
    minutes: int

    def as_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "minutes": self.minutes,
        }


def find_gaps(
    conn: psycopg.Connection[Any],
    site: str,
    *,
    device: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Gap]:
    rows = conn.execute(
        _QUERY, {"site": site, "device": device, "since": since, "until": until}
    ).fetchall()
    return [Gap(str(d), s, e, int(n)) for d, s, e, n in rows]
