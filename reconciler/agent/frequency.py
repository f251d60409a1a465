"""How well frequency response was delivered, second by second, per contract block.

Each second the mode is active counts once (the first sample in it): within tolerance
when the battery's measured power is within ``tolerance_kw`` of the curve's value at the
frequency read, stale when the frequency was stale (no response was due), outside the band
when the SoE could not have held the contract for its duration. Blocks are the GB
4-hour EFA blocks, starting at 23:00 local time.

Each counted second is also a :class:`~reconciler.control.types.FrequencyRecord`, which the
loop hands to its sink (the outbox, then ``flux.frequency_records``): the database's
per-block figure (`flux report`) counts the same seconds the same way.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.config.model import FrequencyResponseParams, Site
from reconciler.control.modes.frequency_response import band_kwh, response_kw, tolerance_kw
from reconciler.control.periods import efa_block
from reconciler.control.schedule import zone
from reconciler.control.types import FrequencyRecord
from reconciler.status.model import FrequencyBlock


def block_of(site: Site, at: datetime) -> tuple[datetime, datetime]:
    """The EFA block containing ``at``: four hours from 23:00, 03:00, ... local (UTC)."""
    return efa_block(at, zone(site.site.timezone))


class FrequencyPerformance:
    """The current block's figures (``block``), fed one sample per decision."""

    def __init__(self) -> None:
        self.block: FrequencyBlock | None = None
        self._second: int | None = None

    def sample(
        self,
        site: Site,
        label: str,
        params: FrequencyResponseParams,
        at: datetime,
        *,
        frequency_hz: float | None,
        delivered_kw: float,
        soe_kwh: float,
        grid_hz: float | None = None,
        envelope_cut: bool = False,
    ) -> FrequencyRecord | None:
        """One decision while the mode is active: frequency (None when stale), battery's
        measured power (kW, + discharge) and SoE (kWh); ``grid_hz`` the frequency read
        even when stale (Hz), ``envelope_cut`` whether the envelope cut the response.
        The second's record when this is the first sample in it, else None."""
        second = int(at.timestamp())
        if second == self._second:
            return None
        self._second = second
        block = self.block
        if block is None or not block.block_start <= at < block.block_end or block.entry != label:
            start, end = block_of(site, at)
            low, high = band_kwh(site, params)
            block = self.block = FrequencyBlock(
                entry=label, block_start=start, block_end=end, band_low_kwh=low, band_high_kwh=high
            )
        block.seconds += 1
        if not block.band_low_kwh <= soe_kwh <= block.band_high_kwh:
            block.seconds_outside_band += 1
        record = FrequencyRecord(
            at=at.replace(microsecond=0),
            frequency_hz=frequency_hz if frequency_hz is not None else (grid_hz or 0.0),
            expected_kw=None if frequency_hz is None else response_kw(params, frequency_hz),
            delivered_kw=delivered_kw,
            tolerance_kw=tolerance_kw(params),
            envelope_cut=envelope_cut,
        )
        if record.expected_kw is None:
            block.seconds_stale += 1
        elif record.within:
            block.seconds_within += 1
        elif abs(delivered_kw) < abs(record.expected_kw):
            miss = abs(delivered_kw - record.expected_kw)
            block.worst_shortfall_kw = max(block.worst_shortfall_kw, miss)
        return record
