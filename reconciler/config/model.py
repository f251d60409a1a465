"""The site model: one site's desired state, as written in ``sites/<id>.yaml``.

Units are in field names or descriptions: kW, kWh, p/kWh, seconds. Signs follow docs/domain.md:
site power positive = import; battery power positive = discharge.

Everything here is structural validation (types, ranges, one field at a time). Rules that
relate fields to each other (references resolve, SoE min < max, overlapping windows, ...)
live in :mod:`reconciler.config.rules` so that all of a file's errors are reported at once.
"""

from __future__ import annotations

import itertools
import math
import re
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from reconciler.config.profiles import ProfileExtension

# --------------------------------------------------------------------------- small types

_TIME_RE = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
_PCT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Shapes that are secrets, not variable names: long runs of mixed case and digits, JWTs,
# common key prefixes. A name like FLUX_AXLE_PASSWORD never matches.
_SECRET_HINT_RE = re.compile(
    r"^(?:sk|pk|rk|ghp|gho|xox[abp]|AKIA|eyJ)[-_A-Za-z0-9.]*$|^[A-Za-z0-9+/=_\-.]{20,}$"
)


def _check_time(value: str) -> str:
    if not _TIME_RE.match(value):
        raise ValueError(f"{value!r} is not a local time; write HH:MM from 00:00 to 24:00")
    return value


def parse_hhmm(value: str) -> tuple[int, int]:
    """A local time of day ``"HH:MM"`` as (hours, minutes); ``"24:00"`` is (24, 0)."""
    hours, minutes = value.split(":")
    return int(hours), int(minutes)


def _check_soe(value: float | str) -> float | str:
    if isinstance(value, str):
        m = _PCT_RE.match(value)
        if not m:
            raise ValueError(
                f"{value!r} is not an energy; write kWh as a number (e.g. 800) "
                "or a percentage of nameplate energy (e.g. '50%')"
            )
        pct = float(m.group(1))
        if pct > 100:
            raise ValueError(f"{value!r} is more than 100% of nameplate energy")
        return f"{m.group(1)}%"
    if value < 0:
        raise ValueError(f"energy must not be negative; got {value}")
    return value


def _check_env_name(value: str) -> str:
    if _ENV_RE.match(value):
        return value
    if _SECRET_HINT_RE.match(value):
        raise ValueError(
            "this looks like a literal secret; never put secrets in the site file: "
            "set it in the agent's environment and write the variable's name here "
            "(e.g. FLUX_AXLE_PASSWORD)"
        )
    raise ValueError(
        f"{value!r} is not an environment variable name; use capitals, digits and _ "
        "(e.g. FLUX_MODO_API_KEY)"
    )


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r}; use an IANA name such as Europe/London"
        ) from None
    return value


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_text(value: Any) -> Any:
    # Only YYYY-MM-DD text, as the JSON Schema's format "date" says: pydantic alone would
    # also take a number (a Unix time) or a date-time.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ValueError(f"expected a date YYYY-MM-DD; got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date on the calendar") from None


LocalDate = Annotated[date, BeforeValidator(_date_text)]

TimeOfDay = Annotated[
    str,
    AfterValidator(_check_time),
    Field(
        description="Local time of day HH:MM (00:00 to 24:00) in the site timezone.",
        # In the schema only: the validator's own message is the clearer one.
        json_schema_extra={"pattern": _TIME_RE.pattern},
    ),
]


#: For the JSON Schema: http(s)://, then a host (the validator also checks the port).
_HTTP_URL_RE = re.compile(r"^https?://[^\s/?#:@]\S*$")


def _check_http_url(value: str) -> str:
    # Checked here, not when the agent first calls it: 'ftp://...' or a URL without a
    # host would only fail on the site, at run time.
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number 0-65535
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not _HTTP_URL_RE.match(value)
    ):
        raise ValueError(
            f"{value!r} is not an http:// or https:// URL with a host; "
            "write e.g. https://api.example.com/v1"
        )
    return value


HttpUrlText = Annotated[
    str,
    AfterValidator(_check_http_url),
    Field(json_schema_extra={"pattern": _HTTP_URL_RE.pattern}),
]


def _energy_kind(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        kinds = ((bool, "true/false"), (dict, "a mapping"), (list, "a list"), (type(None), "null"))
        kind = next((k for t, k in kinds if isinstance(value, t)), type(value).__name__)
        raise ValueError(
            f"expected kWh (a number) or a percentage of nameplate energy ('50%'); got {kind}"
        )
    return value


#: The percentages _check_soe accepts (0 to 100), for the JSON Schema.
_PCT_SCHEMA = r"^\s*0*(?:100(?:\.0+)?|\d{1,2}(?:\.\d+)?)\s*%\s*$"

Energy = Annotated[
    float | str,
    AfterValidator(_check_soe),
    BeforeValidator(_energy_kind),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _PCT_SCHEMA},
            ]
        }
    ),
    Field(description="Energy in kWh (a number) or a percentage of nameplate energy ('50%')."),
]
EnvVarName = Annotated[
    str,
    AfterValidator(_check_env_name),
    Field(
        description="Name of an environment variable that holds a secret (never the secret).",
        json_schema_extra={"pattern": _ENV_RE.pattern},
    ),
]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
DeviceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    # strict: a site file means what it says. Lax mode would turn `ramp_up_kw_per_s: true`
    # into 1.0 kW/s, `port: "15020"` into a port and `shadow: "no"` into False. Numbers
    # are numbers (an int is fine where a float is wanted), booleans are booleans.
    # allow_inf_nan=False: a limit of .inf or 1e999 (which YAML reads as infinity) is no
    # limit, and NaN compares false with everything; neither can be written as JSON either.
    # Fields that mean "unbounded" by infinity allow it on their own (CurvePoint.price).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- identity


class SiteIdentity(_Model):
    """Who the site is."""

    id: Slug = Field(description="Site id, a slug: lower case, digits and -, e.g. wlce.")
    name: str = Field(min_length=1, max_length=200, description="Human name of the site.")
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        default="Europe/London", description="IANA timezone the schedule's local times are in."
    )
    homes: int = Field(default=0, ge=0, le=100000, description="Number of homes on the site.")
    solar_kwp: float = Field(default=0.0, ge=0, description="Installed solar PV, kWp.")


# --------------------------------------------------------------------------- devices


class _DeviceBase(_Model):
    profile: str = Field(description="Register map: a shipped profile or one under `profiles:`.")
    host: str = Field(min_length=1, description="Modbus TCP host name or IP address.")
    port: int = Field(default=502, ge=1, le=65535, description="Modbus TCP port.")
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_interval_s: float = Field(
        default=2.0, gt=0, le=600, description="How often the device is read, seconds."
    )
    timeout_s: float = Field(
        default=1.0, gt=0, le=60, description="Connect and request timeout, seconds."
    )


class BatteryDevice(_DeviceBase):
    """The site's battery (one per site)."""

    name: DeviceName = Field(default="bess", description="Device name used in telemetry.")
    nameplate_power_kw: float = Field(gt=0, description="Inverter nameplate power, kW.")
    nameplate_energy_kwh: float = Field(gt=0, description="Nameplate energy, kWh.")
    ramp_up_kw_per_s: float | None = Field(
        default=None, gt=0, description="Ramp rate up written to the battery at start, kW/s."
    )
    ramp_down_kw_per_s: float | None = Field(
        default=None, gt=0, description="Ramp rate down written to the battery at start, kW/s."
    )
    always_active: bool = Field(
        default=True, description="Write always-active at start (never enter power-saving)."
    )
    heartbeat_timeout_s: int = Field(
        default=10,
        ge=1,
        le=600,
        description="The battery stops by itself if no heartbeat arrives for this long, s.",
    )


class MeterDevice(_DeviceBase):
    """A power meter (Acuvim II or similar)."""

    role: Literal["grid", "battery", "solar", "feeder", "load"] = Field(
        description="Where it measures: grid = the site boundary (positive = import)."
    )
    pt1: float = Field(default=1.0, gt=0, description="PT primary, V.")
    pt2: float = Field(default=1.0, gt=0, description="PT secondary, V.")
    ct1: float = Field(default=1.0, gt=0, description="CT primary, A.")
    ct2: float = Field(default=1.0, gt=0, description="CT secondary, A.")

    @property
    def pt_ratio(self) -> float:
        return self.pt1 / self.pt2

    @property
    def ct_ratio(self) -> float:
        return self.ct1 / self.ct2


class Devices(_Model):
    """The equipment Flux talks to."""

    battery: BatteryDevice
    meters: dict[DeviceName, MeterDevice] = Field(
        description="Meters by name; exactly one must have role grid.",
        json_schema_extra={"propertyNames": {"pattern": r"^[a-z][a-z0-9_]{0,62}$"}},
    )


# --------------------------------------------------------------------------- limits


class Limits(_Model):
    """The hard envelope: no decision ever leaves it."""

    battery_charge_kw: float = Field(gt=0, description="Most charge power, kW (positive).")
    battery_discharge_kw: float = Field(gt=0, description="Most discharge power, kW.")
    soe_min: Energy = Field(default="0%", description="Never discharge below this energy.")
    soe_max: Energy = Field(default="100%", description="Never charge above this energy.")
    site_import_kw: float = Field(gt=0, description="Most the site may import, kW.")
    site_export_kw: float = Field(gt=0, description="Most the site may export, kW (positive).")
    charge_efficiency: float = Field(
        default=0.85, gt=0, le=1, description="Energy stored per energy drawn when charging."
    )
    max_reading_age_s: float = Field(
        default=12.0, gt=0, le=600, description="Readings older than this are stale: go safe, s."
    )
    ramp_kw_per_s: float | None = Field(
        default=None, gt=0, description="Most the setpoint may change per second, kW/s."
    )


# --------------------------------------------------------------------------- windows


class DateRange(_Model):
    """Inclusive range of local dates."""

    from_: LocalDate = Field(alias="from", description="First local date (inclusive).")
    to: LocalDate = Field(description="Last local date (inclusive).")

    # Added to _Model's config (pydantic merges a subclass's into its parent's).
    model_config = ConfigDict(populate_by_name=True)


class Window(_Model):
    """When something applies: days, optional dates, and a local time range.

    ``end`` before ``start`` means the window runs past midnight into the next day; the
    ``days`` and ``dates`` filters apply to the day the window starts.
    """

    days: Literal["all", "weekdays", "weekends"] | list[Weekday] = Field(
        default="all",
        description="all, weekdays, weekends, or a list such as [mon, wed].",
        json_schema_extra={"minItems": 1},
    )
    dates: DateRange | None = Field(default=None, description="Only within these local dates.")
    start: TimeOfDay = Field(default="00:00")
    end: TimeOfDay = Field(default="24:00")

    @field_validator("days", mode="wrap")
    @classmethod
    def _days_nonempty(
        cls, v: Any, handler: ValidatorFunctionWrapHandler
    ) -> Literal["all", "weekdays", "weekends"] | list[Weekday]:
        # One clear message instead of one per member of the union.
        if isinstance(v, list):
            if not v:
                raise ValueError("days is empty; name at least one day or write all")
            for day in v:
                if day not in WEEKDAYS:
                    raise ValueError(f"{day!r} is not a day; use {', '.join(WEEKDAYS)}")
        elif v not in ("all", "weekdays", "weekends"):
            raise ValueError(
                f"{v!r} is not a set of days; write all, weekdays, weekends or a list such "
                "as [mon, wed]"
            )
        result: Literal["all", "weekdays", "weekends"] | list[Weekday] = handler(v)
        return result


def day_matches(window: Window, day: date) -> bool:
    """Whether ``window`` may start on local ``day`` (its days and dates filters)."""
    if window.dates is not None and not (window.dates.from_ <= day <= window.dates.to):
        return False
    weekday = day.weekday()
    if window.days == "all":
        return True
    if window.days == "weekdays":
        return weekday < 5
    if window.days == "weekends":
        return weekday >= 5
    return WEEKDAYS[weekday] in window.days


# --------------------------------------------------------------------------- rates


class Rate(_Model):
    """A charge or payment per kWh that applies in windows (DUoS bands, supplier fees)."""

    name: str = Field(min_length=1, description="e.g. duos-red, supplier-fee.")
    direction: Literal["import", "export"] = Field(
        description="import: paid per kWh imported; export: paid to the site per kWh exported."
    )
    p_per_kwh: float = Field(description="Rate, p/kWh.")
    windows: list[Window] = Field(default_factory=lambda: [Window()])

    @property
    def is_red_band(self) -> bool:
        """A DUoS red band: an import rate whose name says red (duos-red, red-band, ...).
        Reports and dashboards judge peak import inside these windows."""
        return self.direction == "import" and "red" in self.name.lower()


# --------------------------------------------------------------------------- mode params


class CurvePoint(_Model):
    """A (price, SoE) point of a NIV chase curve."""

    # -.inf and .inf are how a curve says "at any price" at its ends; NaN is no price.
    price: float = Field(allow_inf_nan=True, description="Price, p/kWh (may be -.inf or .inf).")
    soe: float = Field(ge=0, description="State of energy, kWh.")

    @field_validator("price")
    @classmethod
    def _not_nan(cls, price: float) -> float:
        if math.isnan(price):
            raise ValueError("expected a price in p/kWh (or -.inf or .inf); got nan")
        return price


class PredictionRule(_Model):
    """When the previous settlement period's imbalance may stand in for the current one."""

    allow: bool = Field(default=False, description="Use the previous period as a prediction.")
    max_seconds_into_period: int = Field(
        default=600, ge=0, le=1800, description="Only this early in the period, s."
    )
    min_abs_niv_mwh: float = Field(
        default=0.0, ge=0, description="Only if the previous |NIV| was at least this, MWh."
    )


class Prediction(_Model):
    """How the imbalance price and direction are predicted."""

    live_after_s: int = Field(
        default=600,
        ge=0,
        le=1800,
        description="Trust the live estimate for the current period only after this, s.",
    )
    when_short: PredictionRule = Field(default_factory=PredictionRule)
    when_long: PredictionRule = Field(default_factory=PredictionRule)


class NivChaseParams(_Model):
    charge_curve: list[CurvePoint] = Field(
        min_length=1, description="Charge while SoE is below this curve at the charge price."
    )
    discharge_curve: list[CurvePoint] = Field(
        min_length=1, description="Discharge while SoE is above this curve at the discharge price."
    )
    curve_shift_long: float = Field(
        default=0.0, description="Price shift when the system is long (subtracted), p/kWh."
    )
    curve_shift_short: float = Field(
        default=0.0, description="Price shift when the system is short (added), p/kWh."
    )
    prediction: Prediction = Field(default_factory=Prediction)
    default_price: float | None = Field(
        default=None, description="Imbalance price to assume when no prediction exists, p/kWh."
    )


class ToSoeParams(_Model):
    target_soe: Energy = Field(description="Energy to reach by the end of the window.")
    max_kw: float | None = Field(
        default=None, gt=0, description="Cap on the power used, kW (the envelope still applies)."
    )


class DynamicPeakDischargeParams(_Model):
    target_soe: Energy = Field(
        default="0%", description="Energy to be left at the end of the peak (clamped to soe_min)."
    )
    prioritise_residual_load: bool = Field(
        default=True,
        description="Keep enough energy to cover the site's residual load to the peak's end.",
    )
    when_short: PredictionRule = Field(
        default_factory=lambda: PredictionRule(allow=True),
        description="Previous-period prediction of a short system.",
    )


class DynamicPeakApproachParams(_Model):
    peak_start: TimeOfDay = Field(description="Local start of the peak being approached.")
    peak_end: TimeOfDay = Field(description="Local end of the peak being approached.")
    to_soe: Energy = Field(description="Energy wanted at the start of the peak.")
    encourage_to_soe: Energy | None = Field(
        default=None, description="Energy to aim for when the system is long (default to_soe)."
    )
    assumed_charge_kw: float = Field(gt=0, description="Charge power the approach assumes, kW.")
    force_charge_duration_factor: float = Field(default=1.0, gt=0)
    encourage_charge_duration_factor: float = Field(default=2.0, gt=0)
    cushion_min: float = Field(
        default=20.0, ge=0, description="Reach to_soe this long before the peak, minutes."
    )
    when_long: PredictionRule = Field(default_factory=lambda: PredictionRule(allow=True))


class AvoidanceParams(_Model):
    margin_kw: float = Field(
        default=0.0, ge=0, description="Aim this far inside zero import/export, kW."
    )


class ImportAvoidanceWhenShortParams(AvoidanceParams):
    min_niv_mwh: float = Field(
        default=0.0, ge=0, description="Only when the predicted NIV is at least this, MWh."
    )
    prediction: Prediction = Field(default_factory=Prediction)


class AxleParams(_Model):
    honour_allow_deviation: bool = Field(
        default=True,
        description="When a step allows deviation, let lower-priority modes move the power "
        "toward 0 kW (never past it).",
    )


class ReserveParams(_Model):
    reserve_soe: Energy = Field(description="Backup energy held for outages.")
    recharge_kw: float = Field(
        default=50.0, gt=0, description="Power used to recharge up to the reserve, kW."
    )


class IdleParams(_Model):
    pass


class ResponsePoint(_Model):
    deviation_hz: float = Field(
        ge=0, le=2, description="Distance of the frequency from 50 Hz, Hz (always positive)."
    )
    percent: float = Field(ge=0, le=100, description="Share of the contracted power, %.")


def _dynamic_containment() -> list[ResponsePoint]:
    """GB Dynamic Containment: nothing in +-0.015 Hz, 5% at 0.2 Hz, 100% at 0.5 Hz."""
    return [
        ResponsePoint(deviation_hz=0.015, percent=0.0),
        ResponsePoint(deviation_hz=0.2, percent=5.0),
        ResponsePoint(deviation_hz=0.5, percent=100.0),
    ]


class FrequencyResponseParams(_Model):
    low_kw: float = Field(
        default=0.0, ge=0, description="Contracted power on under-frequency (discharge), kW."
    )
    high_kw: float = Field(
        default=0.0, ge=0, description="Contracted power on over-frequency (charge), kW."
    )
    low_curve: list[ResponsePoint] = Field(
        default_factory=_dynamic_containment,
        min_length=1,
        description="Response below 50 Hz: points of deviation to % of low_kw, linear "
        "between them, flat beyond the last (default: Dynamic Containment).",
    )
    high_curve: list[ResponsePoint] = Field(
        default_factory=_dynamic_containment,
        min_length=1,
        description="Response above 50 Hz, as low_curve, of high_kw.",
    )
    duration_min: float = Field(
        default=15.0,
        gt=0,
        le=240,
        description="How long the contracted power must be deliverable; SoE is kept inside "
        "the band that allows it, minutes.",
    )
    fast_interval_s: float = Field(
        default=0.2,
        ge=0.05,
        le=2.0,
        description="How often the grid meter's frequency is read and the setpoint written "
        "while the mode is active, s.",
    )
    max_frequency_age_s: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="A frequency older than this, or unchanged this long (frozen), is stale: "
        "no response, s.",
    )

    @field_validator("low_curve", "high_curve")
    @classmethod
    def _rising(cls, points: list[ResponsePoint]) -> list[ResponsePoint]:
        for a, b in itertools.pairwise(points):
            if b.deviation_hz <= a.deviation_hz:
                raise ValueError("points must be in order of rising deviation_hz")
            if b.percent < a.percent:
                raise ValueError("the response may not fall as the deviation grows")
        return points


class OptimiseParams(_Model):
    horizon_h: float = Field(
        default=36.0,
        ge=4,
        le=48,
        description="How far ahead each plan looks, hours (settlement periods of 30 min).",
    )
    cycling_cost: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="What a kWh discharged costs in battery wear, p/kWh (0: throughput is free).",
    )
    terminal_value: float | None = Field(
        default=None,
        description="What a kWh left in the battery at the horizon's end is worth, p/kWh "
        "(default: the forecast's median price times the charge efficiency).",
    )
    plan_max_age_min: float = Field(
        default=90.0,
        ge=5,
        le=720,
        description="A plan older than this is not followed (lower priorities take over), minutes.",
    )
    history_days: int = Field(
        default=14,
        ge=1,
        le=90,
        description="Days of recent settled prices and load the forecasts are made from.",
    )


# --------------------------------------------------------------------------- schedule

#: Default priority of each mode: the reference controller's order, with reserve and an
#: explicit idle above everything (a maintenance window means stop).
DEFAULT_PRIORITY: dict[str, int] = {
    "idle": 100,
    "reserve": 95,
    "axle": 90,
    "frequency_response": 85,
    "discharge_to_soe": 80,
    "dynamic_peak_discharge": 70,
    "niv_chase": 60,
    "optimise": 55,
    "charge_to_soe": 50,
    "dynamic_peak_approach": 40,
    "import_avoidance": 30,
    "export_avoidance": 20,
    "import_avoidance_when_short": 10,
}


class _EntryBase(_Model):
    name: str | None = Field(
        default=None, max_length=80, description="Label shown in previews and decisions."
    )
    priority: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Higher wins. Leave out for the mode's default (reference order).",
    )
    windows: list[Window] = Field(
        default_factory=lambda: [Window()],
        min_length=1,
        description="When the entry is active (default: always).",
    )

    @property
    def effective_priority(self) -> int:
        mode: str = getattr(self, "mode")  # noqa: B009 - every subclass declares it
        return self.priority if self.priority is not None else DEFAULT_PRIORITY[mode]


class NivChaseEntry(_EntryBase):
    mode: Literal["niv_chase"]
    params: NivChaseParams


class ChargeToSoeEntry(_EntryBase):
    mode: Literal["charge_to_soe"]
    params: ToSoeParams


class DischargeToSoeEntry(_EntryBase):
    mode: Literal["discharge_to_soe"]
    params: ToSoeParams


class DynamicPeakDischargeEntry(_EntryBase):
    mode: Literal["dynamic_peak_discharge"]
    params: DynamicPeakDischargeParams = Field(default_factory=DynamicPeakDischargeParams)


class DynamicPeakApproachEntry(_EntryBase):
    mode: Literal["dynamic_peak_approach"]
    params: DynamicPeakApproachParams


class ImportAvoidanceEntry(_EntryBase):
    mode: Literal["import_avoidance"]
    params: AvoidanceParams = Field(default_factory=AvoidanceParams)


class ExportAvoidanceEntry(_EntryBase):
    mode: Literal["export_avoidance"]
    params: AvoidanceParams = Field(default_factory=AvoidanceParams)


class ImportAvoidanceWhenShortEntry(_EntryBase):
    mode: Literal["import_avoidance_when_short"]
    params: ImportAvoidanceWhenShortParams = Field(default_factory=ImportAvoidanceWhenShortParams)


class AxleEntry(_EntryBase):
    mode: Literal["axle"]
    params: AxleParams = Field(default_factory=AxleParams)


class ReserveEntry(_EntryBase):
    mode: Literal["reserve"]
    params: ReserveParams


class IdleEntry(_EntryBase):
    mode: Literal["idle"]
    params: IdleParams = Field(default_factory=IdleParams)


class FrequencyResponseEntry(_EntryBase):
    mode: Literal["frequency_response"]
    params: FrequencyResponseParams


class OptimiseEntry(_EntryBase):
    mode: Literal["optimise"]
    params: OptimiseParams = Field(default_factory=OptimiseParams)


ScheduleEntry = Annotated[
    NivChaseEntry
    | ChargeToSoeEntry
    | DischargeToSoeEntry
    | DynamicPeakDischargeEntry
    | DynamicPeakApproachEntry
    | ImportAvoidanceEntry
    | ExportAvoidanceEntry
    | ImportAvoidanceWhenShortEntry
    | AxleEntry
    | ReserveEntry
    | IdleEntry
    | OptimiseEntry
    | FrequencyResponseEntry,
    Field(discriminator="mode"),
]
MODES: tuple[str, ...] = tuple(DEFAULT_PRIORITY)


# --------------------------------------------------------------------------- markets


class ModoSettings(_Model):
    base_url: HttpUrlText = Field(default="https://api.modoenergy.com/pub/v1/gb/modo/markets")
    api_key_env: EnvVarName | None = Field(
        default=None, description="Env var with the X-Token key (optional)."
    )
    poll_s: float = Field(
        default=60.0, ge=30, description="Seconds between calls (alternating endpoints)."
    )


class AxleSettings(_Model):
    base_url: HttpUrlText = Field(description="Axle API base URL (http or https).")
    asset_id: str = Field(min_length=1, description="Axle asset id of this battery.")
    username_env: EnvVarName = Field(description="Env var holding the Axle user name.")
    password_env: EnvVarName = Field(description="Env var holding the Axle password.")
    poll_s: float = Field(default=60.0, ge=5, description="Seconds between schedule fetches.")


class ElexonSettings(_Model):
    base_url: HttpUrlText = Field(default="https://data.elexon.co.uk/bmrs/api/v1")
    poll_s: float = Field(default=300.0, ge=30)


class DayAheadSettings(_Model):
    """A day-ahead price feed for the `optimise` mode's plans (docs/domain.md, "Day-ahead
    prices"): any HTTP(S) endpoint serving ``{"prices": [{"period_start", "price_p_per_kwh"}]}``
    (e.g. an adapter in front of a supplier's or exchange's API)."""

    url: HttpUrlText = Field(description="URL of the feed (http or https).")
    api_key_env: EnvVarName | None = Field(
        default=None, description="Env var with a key sent as `Authorization: Bearer` (optional)."
    )
    poll_s: float = Field(
        default=900.0, ge=60, description="Seconds between fetches (prices change once a day)."
    )


class Markets(_Model):
    modo: ModoSettings | None = None
    axle: AxleSettings | None = None
    elexon: ElexonSettings | None = None
    day_ahead: DayAheadSettings | None = Field(
        default=None, description="Day-ahead prices for `optimise` plans (optional)."
    )


# --------------------------------------------------------------------------- agent settings


class ControlSettings(_Model):
    tick_s: float = Field(default=4.0, ge=0.5, le=60, description="Control tick, seconds.")
    shadow: bool = Field(
        default=False, description="Decide and record but never write to the battery."
    )
    deadband_kw: float = Field(
        default=1.0, ge=0, description="Skip rewriting a setpoint that moved less than this, kW."
    )
    health_gate_ticks: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Healthy ticks before a new revision is trusted (the agent's "
        "--health-gate-ticks overrides it).",
    )
    allow_rollback: bool = Field(
        default=False,
        description="Let the agent follow its branch back to an older commit or onto a "
        "rewritten history (a non-fast-forward move). Off: such a move is refused; "
        "prefer git revert.",
    )
    tracking_tolerance_kw: float = Field(
        default=25.0, gt=0, description="Battery power within this of the setpoint is tracking, kW."
    )


class TelemetrySettings(_Model):
    record_interval_s: float = Field(
        default=60.0, ge=1, le=3600, description="Readings and decisions recorded this often, s."
    )
    database_url_env: EnvVarName | None = Field(
        default=None, description="Env var holding the PostgreSQL URL (none: embedded only)."
    )
    outbox_alert_rows: int = Field(
        default=500_000, ge=1, description="Raise a condition when the outbox holds more rows."
    )


class IgnoreRule(_Model):
    """A difference `flux diff` should accept rather than report."""

    category: Literal["revision", "device", "operating", "limits", "telemetry"]
    field: str = Field(
        default="*", description="Name within the category (register, device, ...); * = all."
    )
    reason: str = Field(min_length=1, description="Why this difference is accepted.")


class DiffSettings(_Model):
    ignore: list[IgnoreRule] = Field(default_factory=list)


class SimulationSettings(_Model):
    """How `flux sim` plays this site (ignored on a real site)."""

    initial_soe: Energy = Field(default="50%", description="Battery energy at start.")
    noise_pct: float = Field(default=0.0, ge=0, le=50, description="Noise on load and solar, %.")
    seed: int = Field(default=0, description="Random seed for noise.")


# --------------------------------------------------------------------------- the site


class Site(_Model):
    """One site's desired state."""

    site: SiteIdentity
    devices: Devices
    profiles: dict[Slug, ProfileExtension] = Field(
        default_factory=dict,
        description="Site-local profiles that extend shipped ones.",
        json_schema_extra={"propertyNames": {"pattern": r"^[a-z0-9][a-z0-9-]{0,62}$"}},
    )
    limits: Limits
    rates: list[Rate] = Field(default_factory=list)
    schedule: list[ScheduleEntry] = Field(
        default_factory=list, description="Modes, their windows and priorities."
    )
    markets: Markets = Field(default_factory=Markets)
    control: ControlSettings = Field(default_factory=ControlSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    diff: DiffSettings = Field(default_factory=DiffSettings)
    simulation: SimulationSettings = Field(default_factory=SimulationSettings)

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if data is None:
            raise ValueError("the file is empty; a site file needs site, devices and limits")
        return data

    def energy_kwh(self, value: float | str) -> float:
        """An :data:`Energy` value resolved to kWh against the battery's nameplate."""
        if isinstance(value, str):
            pct = float(value.rstrip("%"))
            return self.devices.battery.nameplate_energy_kwh * pct / 100.0
        return float(value)

    @property
    def soe_min_kwh(self) -> float:
        return self.energy_kwh(self.limits.soe_min)

    @property
    def soe_max_kwh(self) -> float:
        return self.energy_kwh(self.limits.soe_max)

    @property
    def grid_meter_name(self) -> str:
        """Name of the meter at the site boundary (validated to exist exactly once)."""
        for name, meter in self.devices.meters.items():
            if meter.role == "grid":
                return name
        raise LookupError("no meter with role grid")

    def entry_label(self, index: int) -> str:
        entry = self.schedule[index]
        return entry.name or f"{entry.mode}#{index}"
