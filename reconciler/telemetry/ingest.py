"""Writing decoded outbox rows into PostgreSQL: COPY into a temp staging table, then
INSERT ... ON CONFLICT DO NOTHING into the real table (a re-sent row is skipped).

Staging rows start with (site_id, device), then the decoded values of records.py; the
instant is integer microseconds since the epoch and becomes timestamptz in the INSERT.

The usual case, readings uploaded in order, skips staging: when every device's rows come
strictly in time order and are all newer than anything stored for that device, they are
copied straight into the table (time as text, meter energy deltas derived here from the
previous counter values, seeded by the newest stored row). A re-send, a late row or a
value the table refuses instead rolls back to a savepoint and takes the staging path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import psycopg

from reconciler.telemetry.outbox import DeviceRows
from reconciler.telemetry.records import (
    BESS_FIELDS,
    EPOCH,
    FREQUENCY_FIELDS,
    METER_FIELDS,
    from_us,
)

_TS: Final = "timestamptz 'epoch' + t_us * interval '1 microsecond'"

# The meter's instantaneous values; the two energy counters are staged apart, as the
# deltas are derived from them.
_METER_VALUE_COLUMNS: Final = tuple(f for f in METER_FIELDS if not f.startswith("energy_"))


@dataclass(frozen=True)
class KindSpec:
    """How one kind of record is staged and inserted."""

    stage: str
    columns: str  # staging column definitions
    insert: str  # INSERT ... SELECT FROM the staging table ... ON CONFLICT DO NOTHING
    has_device: bool
    fast: str | None = None  # the same, cheaper when the rows are newer than those stored
    newest: str | None = None  # per staged device: newest stored time, oldest staged time
    plain: str | None = None  # a plain INSERT, when every staged row is newer than stored


def _split_insert(
    table: str, stage: str, columns: str, source: str, plain_source: str | None = None
) -> tuple[str, str, str, str]:
    """(safe, fast, newest, plain) statements inserting the rows of ``source`` (a SELECT giving
    time, site_id, device and ``columns``) and returning how many were new.

    A speculative insert (ON CONFLICT) costs about twice a plain one. Rows newer than a
    device's newest stored row cannot conflict with a stored row, so the fast statement
    inserts those plainly and only older ones (re-sends, late rows) with ON CONFLICT.
    Two rows with one key inside a batch (or a concurrent writer) make the plain insert
    fail with a unique violation; the caller then uses the safe statement.

    The newest stored times are read by a separate statement first and passed in: inside
    the inserting statement the lookup would run per row and wade through the index
    entries that statement has just added (quadratic).
    """
    cols = f"time, site_id, device, {columns}"
    safe = f"""
        WITH src AS ({source}),
        ins AS (INSERT INTO {table} ({cols}) SELECT {cols} FROM src
                ON CONFLICT DO NOTHING RETURNING 1)
        SELECT count(*) FROM ins
    """
    newest = f"""
        SELECT k.site_id, k.device,
               (SELECT max(t.time) FROM {table} t
                WHERE t.site_id = k.site_id AND t.device = k.device) AS t_max,
               timestamptz 'epoch' + k.t_us * interval '1 microsecond' AS t_min
        FROM (SELECT site_id, device, min(t_us) AS t_us FROM {stage} GROUP BY 1, 2) k
    """
    # The usual case (in-order uploads): nothing staged is older than what is stored.
    plain = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM ({plain_source or source}) src"
    fast = f"""
        WITH src AS ({source}),
        newest AS (
            SELECT * FROM unnest(%(sites)s::text[], %(devices)s::text[],
                                 %(t_max)s::timestamptz[]) AS n(site_id, device, t_max)
        ),
        s AS (SELECT src.*, n.t_max FROM src JOIN newest n USING (site_id, device)),
        fresh AS (INSERT INTO {table} ({cols}) SELECT {cols} FROM s
                  WHERE t_max IS NULL OR time > t_max RETURNING 1),
        older AS (INSERT INTO {table} ({cols}) SELECT {cols} FROM s
                  WHERE time <= t_max ON CONFLICT DO NOTHING RETURNING 1)
        SELECT (SELECT count(*) FROM fresh) + (SELECT count(*) FROM older)
    """
    return safe, fast, newest, plain


# Staging checks what the outbox's fast path does not: a bad value fails the COPY, and
# the uploader splits the batch to find and quarantine the row.
_T_US: Final = "t_us bigint NOT NULL CHECK (t_us BETWEEN 946684800000000 AND 7258118400000000)"


def _finite(column: str, *, null: bool = False) -> str:
    not_null = "" if null else " NOT NULL"
    return (
        f"{column} double precision{not_null}"
        f" CHECK ({column} > '-Infinity' AND {column} < 'Infinity')"  # NaN sorts above all
    )


def _spec_meter() -> KindSpec:
    values = ", ".join(_finite(c) for c in _METER_VALUE_COLUMNS)
    plain = ", ".join(_METER_VALUE_COLUMNS)
    nulls = ", ".join(f"NULL::double precision AS {c}" for c in _METER_VALUE_COLUMNS)
    # The delta of each reading is taken against the previous reading of the same device:
    # within the batch, or the newest stored one before it (the seed). A drop is a reset.
    # A reading staged twice is taken once (else which copy's delta lands is arbitrary);
    # the plain statement skips that sort, as duplicates make it fail anyway.
    deduped = (
        "(SELECT DISTINCT ON (site_id, device, t_us) * FROM stage_meter"
        " ORDER BY site_id, device, t_us) AS stage_meter"
    )
    template = f"""
        SELECT time, site_id, device, {plain},
               imp AS energy_import_kwh, exp AS energy_export_kwh,
               CASE WHEN prev_imp IS NULL THEN 0 WHEN imp >= prev_imp THEN imp - prev_imp
                    ELSE imp END AS energy_import_delta_kwh,
               CASE WHEN prev_exp IS NULL THEN 0 WHEN exp >= prev_exp THEN exp - prev_exp
                    ELSE exp END AS energy_export_delta_kwh
        FROM (
            SELECT c.*, lag(imp) OVER w AS prev_imp, lag(exp) OVER w AS prev_exp
            FROM (
                SELECT false AS is_seed, {_TS} AS time, site_id, device, {plain},
                       energy_import_kwh AS imp, energy_export_kwh AS exp
                FROM {{staged}}
                UNION ALL
                SELECT true, p.time, k.site_id, k.device, {nulls},
                       p.energy_import_kwh, p.energy_export_kwh
                FROM (SELECT site_id, device, min(t_us) AS t0 FROM stage_meter GROUP BY 1, 2) k
                CROSS JOIN LATERAL (
                    SELECT m.time, m.energy_import_kwh, m.energy_export_kwh
                    FROM flux.meter_readings m
                    WHERE m.site_id = k.site_id AND m.device = k.device
                      AND m.time < timestamptz 'epoch' + k.t0 * interval '1 microsecond'
                    ORDER BY m.time DESC LIMIT 1
                ) p
            ) c
            WINDOW w AS (PARTITION BY site_id, device ORDER BY time, is_seed DESC)
        ) x
        WHERE NOT is_seed
    """
    source = template.replace("{staged}", deduped)
    safe, fast, newest, plain = _split_insert(
        "flux.meter_readings",
        "stage_meter",
        f"{plain}, energy_import_kwh, energy_export_kwh, energy_import_delta_kwh,"
        " energy_export_delta_kwh",
        source,
        template.replace("{staged}", "stage_meter"),
    )
    return KindSpec(
        "stage_meter",
        f"site_id text, device text, {_T_US}, {values}, {_finite('energy_import_kwh')},"
        f" {_finite('energy_export_kwh')}",
        safe,
        True,
        fast,
        newest,
        plain,
    )


def _spec_bess() -> KindSpec:
    columns = "soe_kwh, target_power_kw, actual_power_kw, available_blocks, command_source"
    safe, fast, newest, plain = _split_insert(
        "flux.bess_readings",
        "stage_bess",
        columns,
        f"SELECT {_TS} AS time, site_id, device, {columns} FROM stage_bess",
    )
    return KindSpec(
        "stage_bess",
        f"site_id text, device text, {_T_US}, {_finite('soe_kwh')},"
        f" {_finite('target_power_kw')}, {_finite('actual_power_kw', null=True)},"
        " available_blocks integer NOT NULL, command_source integer NOT NULL",
        safe,
        True,
        fast,
        newest,
        plain,
    )


def _spec_frequency() -> KindSpec:
    columns = ", ".join(FREQUENCY_FIELDS)
    safe, fast, newest, plain = _split_insert(
        "flux.frequency_records",
        "stage_frequency",
        columns,
        f"SELECT {_TS} AS time, site_id, device, {columns} FROM stage_frequency",
    )
    return KindSpec(
        "stage_frequency",
        f"site_id text, device text, {_T_US}, {_finite('frequency_hz')},"
        f" {_finite('expected_kw', null=True)}, {_finite('delivered_kw')},"
        f" {_finite('tolerance_kw')}, envelope_cut boolean NOT NULL",
        safe,
        True,
        fast,
        newest,
        plain,
    )


#: The flux.devices kind of a record kind's device (a frequency record is the battery's).
DEVICE_KIND: Final = {"bess": "bess", "meter": "meter", "frequency": "bess"}


# Market values and revision states are stored when they change, not each time they are
# reported: an agent that restarts reports the same price of the same period again (its
# memory of what it recorded is gone), and the same revision in control again. A row is
# skipped when the row before it (by fetch time; by time for revisions), among those
# stored and those staged, says the same thing, so A, B, A is three rows (the value came
# back) while A, A is one. Not a unique key on the value: that would drop the return to
# A, and `flux diff` reads the latest row as what the agent knew, or had in control, then.
# The look-ups run on the primary keys, on the agent's own rows (row-level security).
_MARKET_INSERT: Final = f"""
    WITH s AS (
        SELECT DISTINCT ON (site_id, type, source, t_us, fetched_us)
               site_id, type, source, settlement_date, settlement_period, value,
               {_TS} AS time,
               timestamptz 'epoch' + fetched_us * interval '1 microsecond' AS fetched_at
        FROM stage_market
        ORDER BY site_id, type, source, t_us, fetched_us
    ), k AS (
        SELECT s.*, lag(value) OVER w AS staged_value, lag(fetched_at) OVER w AS staged_at
        FROM s WINDOW w AS (PARTITION BY site_id, type, source, time ORDER BY fetched_at)
    )
    INSERT INTO flux.market_data (time, site_id, type, settlement_date, settlement_period,
                                  value, source, fetched_at)
    SELECT k.time, k.site_id, k.type, k.settlement_date, k.settlement_period, k.value,
           k.source, k.fetched_at
    FROM k LEFT JOIN LATERAL (
        SELECT m.value, m.fetched_at FROM flux.market_data m
        WHERE m.site_id = k.site_id AND m.type = k.type AND m.source = k.source
          AND m.time = k.time AND m.fetched_at < k.fetched_at
        ORDER BY m.fetched_at DESC LIMIT 1
    ) p ON true
    WHERE k.value IS DISTINCT FROM (
        CASE WHEN k.staged_at IS NOT NULL AND (p.fetched_at IS NULL OR k.staged_at > p.fetched_at)
             THEN k.staged_value ELSE p.value END)
    ON CONFLICT DO NOTHING
"""
_REVISION_INSERT: Final = f"""
    WITH s AS (
        SELECT DISTINCT ON (site_id, sha, state, t_us)
               {_TS} AS time, site_id, sha, state, conditions, errors, message
        FROM stage_revision
        ORDER BY site_id, sha, state, t_us
    ), k AS (
        SELECT s.*, lag(sha) OVER w AS staged_sha, lag(time) OVER w AS staged_at
        FROM s WINDOW w AS (PARTITION BY site_id, state ORDER BY time)
    )
    INSERT INTO flux.config_revisions (time, site_id, sha, state, conditions, errors, message)
    SELECT k.time, k.site_id, k.sha, k.state, k.conditions, k.errors, k.message
    FROM k LEFT JOIN LATERAL (
        SELECT r.sha, r.time FROM flux.config_revisions r
        WHERE r.site_id = k.site_id AND r.state = k.state AND r.time < k.time
        ORDER BY r.time DESC LIMIT 1
    ) p ON true
    WHERE k.sha IS DISTINCT FROM (
        CASE WHEN k.staged_at IS NOT NULL AND (p.time IS NULL OR k.staged_at > p.time)
             THEN k.staged_sha ELSE p.sha END)
    ON CONFLICT DO NOTHING
"""

# A revision in control names its site and devices: the newest staged identity of each
# site fills flux.sites (name, timezone) and flux.devices (kind, role), which dashboards
# select by (the grid meter is the one with role grid, whatever it is called).
_IDENTITY_UPSERT: Final = (
    """
    INSERT INTO flux.sites AS s (site_id, name, timezone, site_import_kw, site_export_kw,
                                 nameplate_energy_kwh, red_bands)
    SELECT DISTINCT ON (site_id) site_id, identity->>'name', identity->>'timezone',
           (identity->>'site_import_kw')::float8, (identity->>'site_export_kw')::float8,
           (identity->>'nameplate_energy_kwh')::float8,
           nullif(identity->'red_bands', 'null')
    FROM stage_revision WHERE identity IS NOT NULL ORDER BY site_id, t_us DESC
    ON CONFLICT (site_id) DO UPDATE SET
        name = excluded.name, timezone = excluded.timezone,
        site_import_kw = excluded.site_import_kw, site_export_kw = excluded.site_export_kw,
        nameplate_energy_kwh = excluded.nameplate_energy_kwh, red_bands = excluded.red_bands
    WHERE (s.name, s.timezone, s.site_import_kw, s.site_export_kw, s.nameplate_energy_kwh,
           s.red_bands)
          IS DISTINCT FROM (excluded.name, excluded.timezone, excluded.site_import_kw,
                            excluded.site_export_kw, excluded.nameplate_energy_kwh,
                            excluded.red_bands)
    """,
    """
    INSERT INTO flux.devices AS d (site_id, device, kind, role)
    SELECT i.site_id, e->>'device', e->>'kind', e->>'role'
    FROM (SELECT DISTINCT ON (site_id) site_id, identity FROM stage_revision
          WHERE identity IS NOT NULL ORDER BY site_id, t_us DESC) i,
         jsonb_array_elements(i.identity->'devices') e
    ON CONFLICT (site_id, device) DO UPDATE SET role = excluded.role
    WHERE d.role IS DISTINCT FROM excluded.role
    """,
)

SPECS: Final[dict[str, KindSpec]] = {
    "bess": _spec_bess(),
    "meter": _spec_meter(),
    "frequency": _spec_frequency(),
    "decision": KindSpec(
        "stage_decision",
        "site_id text, device text, t_us bigint, revision_sha text,"
        " target_kw double precision, reason text, safe_stop boolean, winner text,"
        " components jsonb, effective text[], bound_by text[], site_power_kw double precision,"
        " predicted_site_power_kw double precision, soe_kwh double precision",
        f"""INSERT INTO flux.control_decisions (time, site_id, revision_sha, target_kw, reason,
                safe_stop, winner, components, effective, bound_by, site_power_kw,
                predicted_site_power_kw, soe_kwh)
            SELECT {_TS}, site_id, revision_sha, target_kw, reason, safe_stop, winner,
                   components, effective, bound_by, site_power_kw, predicted_site_power_kw,
                   soe_kwh
            FROM stage_decision ON CONFLICT DO NOTHING""",
        False,
    ),
    "status": KindSpec(
        "stage_status",
        "site_id text, device text, t_us bigint, conditions jsonb",
        f"""INSERT INTO flux.agent_status (time, site_id, conditions)
            SELECT {_TS}, site_id, conditions FROM stage_status ON CONFLICT DO NOTHING""",
        False,
    ),
    "market": KindSpec(
        "stage_market",
        "site_id text, device text, t_us bigint, type text, settlement_date date,"
        " settlement_period integer, value double precision, source text, fetched_us bigint",
        _MARKET_INSERT,
        False,
    ),
    "revision": KindSpec(
        "stage_revision",
        "site_id text, device text, t_us bigint, sha text, state text, conditions jsonb,"
        " errors jsonb, message text, identity jsonb",
        _REVISION_INSERT,
        False,
    ),
}

# Meter devices whose batch lands before or between rows already stored: their stored
# successors' deltas were taken against the wrong predecessor and are re-derived.
_LATE_METER_DEVICES: Final = """
    SELECT k.site_id, k.device, k.t0, k.t1
    FROM (SELECT site_id, device, min(t_us) AS t0, max(t_us) AS t1
          FROM stage_meter GROUP BY 1, 2) k
    WHERE EXISTS (
        SELECT 1 FROM flux.meter_readings m
        WHERE m.site_id = k.site_id AND m.device = k.device
          AND m.time > timestamptz 'epoch' + k.t0 * interval '1 microsecond'
          AND NOT EXISTS (
              SELECT 1 FROM stage_meter s
              WHERE s.site_id = m.site_id AND s.device = m.device
                AND timestamptz 'epoch' + s.t_us * interval '1 microsecond' = m.time))
"""

_REDERIVE_DELTAS: Final = """
    WITH bounds AS (
        SELECT coalesce((SELECT max(time) FROM flux.meter_readings
                         WHERE site_id = %(site)s AND device = %(device)s AND time < %(t0)s),
                        %(t0)s) AS lo,
               coalesce((SELECT min(time) FROM flux.meter_readings
                         WHERE site_id = %(site)s AND device = %(device)s AND time > %(t1)s),
                        %(t1)s) AS hi
    ), x AS (
        SELECT time,
               CASE WHEN prev_imp IS NULL THEN 0 WHEN imp >= prev_imp THEN imp - prev_imp
                    ELSE imp END AS di,
               CASE WHEN prev_exp IS NULL THEN 0 WHEN exp >= prev_exp THEN exp - prev_exp
                    ELSE exp END AS de
        FROM (
            SELECT m.time, m.energy_import_kwh AS imp, m.energy_export_kwh AS exp,
                   lag(m.energy_import_kwh) OVER (ORDER BY m.time) AS prev_imp,
                   lag(m.energy_export_kwh) OVER (ORDER BY m.time) AS prev_exp
            FROM flux.meter_readings m, bounds b
            WHERE m.site_id = %(site)s AND m.device = %(device)s
              AND m.time >= b.lo AND m.time <= b.hi
        ) w
    )
    UPDATE flux.meter_readings m
    SET energy_import_delta_kwh = x.di, energy_export_delta_kwh = x.de
    FROM x, bounds b
    WHERE m.site_id = %(site)s AND m.device = %(device)s AND m.time = x.time
      AND (x.time > b.lo OR b.lo = %(t0)s)
      AND (m.energy_import_delta_kwh, m.energy_export_delta_kwh) IS DISTINCT FROM (x.di, x.de)
"""


@dataclass
class IngestCounts:
    """Per kind: rows sent and rows that were new in the database."""

    sent: dict[str, int]
    inserted: dict[str, int]


def ensure_staging(conn: psycopg.Connection[Any]) -> None:
    """Create this session's staging tables (temp: private, emptied at each commit)."""
    for spec in SPECS.values():
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {spec.stage} ({spec.columns}) ON COMMIT DELETE ROWS"
        )


Staged = str | tuple[str, str, tuple[Any, ...]]
"""A full COPY text line (site, device and values, no newline) or (site, device, values)."""
Item = tuple[int, Staged]
"""(outbox id, staged row)."""
Device = tuple[str, str]
"""(site, device)."""


def staging_items(groups: Sequence[DeviceRows]) -> list[Item]:
    """The staging COPY lines of well-framed readings: JSON numbers are valid input."""
    tab, null = "\t", "\\N"
    items: list[Item] = []
    for group in groups:
        prefix = f"{group.site_id}{tab}{group.device}{tab}"
        items += [
            (row_id, prefix + p[1:-1].replace(",", tab).replace("null", null))
            for row_id, p in group.rows
        ]
    return items


# Instants outside 2000..2200 are corruption (as the staging table's check).
_MIN_US: Final = 946_684_800_000_000
_MAX_US: Final = 7_258_118_400_000_000
_HOUR_US: Final = 3_600_000_000
_SECOND_US: Final = 1_000_000
# "MM:SS" of every second of an hour; with the UTC offset for whole seconds (the usual
# case: records are aligned to their interval).
_CLOCK: Final = tuple(f"{s // 60:02d}:{s % 60:02d}" for s in range(3600))
_CLOCK_UTC: Final = tuple(f"{clock}+00" for clock in _CLOCK)


def _hour_text(hour: int) -> str:
    """The text ``YYYY-MM-DD HH:`` of an hour counted from 1970 (UTC)."""
    return (EPOCH + timedelta(hours=hour)).strftime("%Y-%m-%d %H:")


def timestamp_text(us: int) -> str:
    """timestamptz input text (UTC, exact to the microsecond) of microseconds since 1970.
    direct_rows inlines this (once per reading) with the hour kept between rows."""
    hour, rest = divmod(us, _HOUR_US)
    second, micro = divmod(rest, _SECOND_US)
    if micro:
        return f"{_hour_text(hour)}{_CLOCK[second]}.{micro:06d}+00"
    return _hour_text(hour) + _CLOCK_UTC[second]


@dataclass(frozen=True)
class Direct:
    """One kind's rows as CSV lines of the table itself (see the module docstring).

    ``first_us`` is each device's oldest instant (microseconds). A meter device's first
    line depends on the newest stored counters, so ``seeds`` holds, per device, the
    line's index, the line without its two deltas and its two counters (kWh)."""

    lines: list[str]
    first_us: dict[Device, int]
    seeds: dict[Device, tuple[int, str, float, float]]


def _delta(value: float, previous: float) -> float:
    """The energy (kWh) between two counter readings; a drop is a reset to zero."""
    return value - previous if value >= previous else value


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def direct_rows(kind: str, groups: Sequence[DeviceRows]) -> Direct | None:
    """Well-framed readings as CSV lines for the table (a JSON list's inside is CSV, with
    ``null`` as the NULL marker); None when some device's rows are not strictly in time
    order or a value does not parse here: the staging path then checks and orders them."""
    lines: list[str] = []
    first_us: dict[Device, int] = {}
    seeds: dict[Device, tuple[int, str, float, float]] = {}
    meter = kind == "meter"
    for group in groups:
        key = (group.site_id, group.device)
        prefix = f"{_quoted(group.site_id)},{_quoted(group.device)},"
        previous = last_hour = -1
        hour_text = ""
        imp = exp = last_imp = last_exp = 0.0
        for _, payload in group.rows:
            comma = payload.find(",")
            values = payload[comma + 1 : -1]
            try:
                t = int(payload[1:comma])
                if meter:
                    _, imp_text, exp_text = values.rsplit(",", 2)
                    imp = float(imp_text)
                    exp = float(exp_text)
            except ValueError:
                return None
            if comma < 0 or t <= previous or not _MIN_US <= t <= _MAX_US:
                return None
            hour, rest = divmod(t, _HOUR_US)
            if hour != last_hour:
                hour_text, last_hour = _hour_text(hour), hour
            second, micro = divmod(rest, _SECOND_US)
            if micro:
                line = f"{prefix}{hour_text}{_CLOCK[second]}.{micro:06d}+00,{values}"
            else:
                line = f"{prefix}{hour_text}{_CLOCK_UTC[second]},{values}"
            if previous < 0:
                first_us[key] = t
                if meter:
                    seeds[key] = (len(lines), line, imp, exp)
            elif meter:  # _delta, inlined: this runs once per meter reading
                di = imp - last_imp if imp >= last_imp else imp
                de = exp - last_exp if exp >= last_exp else exp
                line = f"{line},{di!r},{de!r}"
            lines.append(line)
            previous, last_imp, last_exp = t, imp, exp
    return Direct(lines, first_us, seeds) if lines else None


_COPY_DIRECT: Final = {
    "bess": f"COPY flux.bess_readings (site_id, device, time, {', '.join(BESS_FIELDS)})"
    " FROM STDIN (FORMAT csv, NULL 'null')",
    "meter": f"COPY flux.meter_readings (site_id, device, time, {', '.join(METER_FIELDS)},"
    " energy_import_delta_kwh, energy_export_delta_kwh) FROM STDIN (FORMAT csv, NULL 'null')",
    "frequency": f"COPY flux.frequency_records (site_id, device, time,"
    f" {', '.join(FREQUENCY_FIELDS)}) FROM STDIN (FORMAT csv, NULL 'null')",
}
_NEWEST_STORED: Final = """
    SELECT k.site_id, k.device, (extract(epoch FROM p.time) * 1000000)::bigint, {counters}
    FROM unnest(%s::text[], %s::text[]) AS k(site_id, device)
    LEFT JOIN LATERAL (
        SELECT * FROM {table} t WHERE t.site_id = k.site_id AND t.device = k.device
        ORDER BY t.time DESC LIMIT 1
    ) p ON true
"""
_NEWEST: Final = {
    "bess": _NEWEST_STORED.format(table="flux.bess_readings", counters="NULL, NULL"),
    "meter": _NEWEST_STORED.format(
        table="flux.meter_readings", counters="p.energy_import_kwh, p.energy_export_kwh"
    ),
    "frequency": _NEWEST_STORED.format(table="flux.frequency_records", counters="NULL, NULL"),
}


def copy_direct(conn: psycopg.Connection[Any], kind: str, direct: Direct) -> bool:
    """Copy one kind's rows straight into its table, if every row is newer than those
    stored for its device; False (and nothing written) if not or if the table refuses.
    The caller owns the transaction."""
    devices = list(direct.first_us)
    with conn.cursor() as cur:
        newest = cur.execute(
            _NEWEST[kind], ([d[0] for d in devices], [d[1] for d in devices])
        ).fetchall()
        stored: dict[Device, tuple[float, float]] = {}
        for site, device, t_max, imp, exp in newest:
            if t_max is not None:
                if direct.first_us[site, device] <= t_max:
                    return False
                stored[site, device] = (imp, exp)
        lines = direct.lines
        if direct.seeds:
            lines = list(lines)
            for key, (index, line, imp, exp) in direct.seeds.items():
                before = stored.get(key)
                di, de = (_delta(imp, before[0]), _delta(exp, before[1])) if before else (0.0, 0.0)
                lines[index] = f"{line},{di!r},{de!r}"
        try:
            # In a savepoint: a refusal leaves the batch's transaction usable.
            with conn.transaction(), cur.copy(_COPY_DIRECT[kind]) as copy:
                copy.write("\n".join(lines) + "\n")
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            return False
    return True


_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_line(site: str, device: str, values: str) -> str:
    """A COPY text line from a site, a device and already tab-separated values."""
    return f"{site.translate(_ESCAPES)}\t{device.translate(_ESCAPES)}\t{values}"


def write_batch(
    conn: psycopg.Connection[Any],
    rows_by_kind: Mapping[str, Sequence[Staged]],
    keys: Collection[tuple[str, str, str]],
    *,
    safe: bool = False,
) -> IngestCounts:
    """Stage and insert every kind's rows; the caller owns the transaction. ``keys`` are
    the (kind, site, device) of the rows (for the sites and devices tables). ``safe``
    inserts every row with ON CONFLICT (after the fast path met a unique violation)."""
    sent: dict[str, int] = {}
    inserted: dict[str, int] = {}
    with conn.cursor() as cur:
        for kind, rows in rows_by_kind.items():
            if not rows:
                continue
            spec = SPECS[kind]
            with cur.copy(f"COPY {spec.stage} FROM STDIN") as copy:
                lines = [r for r in rows if isinstance(r, str)]
                if lines:
                    copy.write("\n".join(lines) + "\n")
                for row in rows:
                    if not isinstance(row, str):
                        copy.write_row((row[0], row[1], *row[2]))
            late: list[tuple[Any, ...]] = []
            if kind == "meter":
                late = cur.execute(_LATE_METER_DEVICES).fetchall()
            if spec.fast and spec.newest and spec.plain and not safe:
                newest = cur.execute(spec.newest).fetchall()
                if all(t_max is None or t_min > t_max for _, _, t_max, t_min in newest):
                    cur.execute(spec.plain)
                else:
                    cur.execute(
                        spec.fast,
                        {
                            "sites": [n[0] for n in newest],
                            "devices": [n[1] for n in newest],
                            "t_max": [n[2] for n in newest],
                        },
                    )
            else:
                cur.execute(spec.insert)
            counted = cur.fetchone() if cur.description else None
            sent[kind] = len(rows)
            inserted[kind] = int(counted[0]) if counted else max(cur.rowcount, 0)
            if kind == "revision":
                for statement in _IDENTITY_UPSERT:
                    cur.execute(statement)
            for site, device, t0, t1 in late:
                cur.execute(
                    _REDERIVE_DELTAS,
                    {"site": site, "device": device, "t0": from_us(t0), "t1": from_us(t1)},
                )
        sites = sorted({site for _, site, _ in keys})
        devices = sorted(
            {(site, device, DEVICE_KIND.get(kind, kind)) for kind, site, device in keys if device}
        )
        if sites:
            cur.executemany(
                "INSERT INTO flux.sites (site_id) VALUES (%s) ON CONFLICT DO NOTHING",
                [(site,) for site in sites],
            )
        if devices:
            cur.executemany(
                "INSERT INTO flux.devices (site_id, device, kind) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                devices,
            )
    return IngestCounts(sent, inserted)
