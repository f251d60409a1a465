"""What the simulated devices put in their registers, by profile register name, in
engineering units (the device servers encode them with the profile and the device's
PT/CT ratios, so the drivers decode the physical value)."""

from __future__ import annotations

import math

from reconciler.devices.codec import Value
from reconciler.sim.plant import MeterState, Plant

FIRMWARE = "flux-sim 0.1"


def battery_values(plant: Plant) -> dict[str, Value]:
    """PowerPack register values: kW, kWh, kW/s, s, counts."""
    b = plant.battery
    max_kw = b.max_power_kw
    return {
        "protocol_version": 1,
        "firmware_version": FIRMWARE,
        "serial": f"SIM-{plant.site.site.id}"[:32],
        "battery_meters": 1,
        "site_meters": 1,
        "max_charge_power": max_kw,
        "max_discharge_power": max_kw,
        "nameplate_energy": b.nameplate_energy_kwh,
        "command_source": b.command_source,
        "target_power": b.power_kw,
        "soe": b.soe_kwh,
        "available_blocks": b.available_blocks,
        "real_power_mode": b.real_power_mode,
        "always_active": b.always_active,
        "peak_power_mode": b.peak_power_mode,
        "power_command": b.setpoint_kw,
        "heartbeat": b.heartbeat,
        "heartbeat_timeout": b.heartbeat_timeout_s,
        "ramp_up": b.ramp_up_kw_per_s,
        "ramp_down": b.ramp_down_kw_per_s,
    }


def meter_values(m: MeterState) -> dict[str, Value]:
    """Acuvim II register values: Hz, V, A, kW, kvar, kVA, kWh, kvarh (balanced phases)."""
    # MeterState's apparent_kva, current_a and power_factor, with one hypot between them.
    kva = m.apparent_kva
    amps = kva * 1000.0 / (math.sqrt(3.0) * m.voltage_v)
    kw = m.power_kw
    phase_kw = kw / 3
    imp, exp = m.energy_import_kwh, m.energy_export_kwh
    phase_imp, phase_exp = imp / 3, exp / 3
    return {
        "frequency": m.frequency_hz,
        "voltage_line_avg": m.voltage_v,
        "current_a": amps,
        "current_b": amps,
        "current_c": amps,
        "current_avg": amps,
        "power_a": phase_kw,
        "power_b": phase_kw,
        "power_c": phase_kw,
        "power_total": kw,
        "reactive_total": m.reactive_kvar,
        "apparent_total": kva,
        "power_factor": 1.0 if kva < 1e-9 else abs(kw) / kva,
        "energy_import": imp,
        "energy_export": exp,
        "reactive_energy_import": m.reactive_import_kvarh,
        "reactive_energy_export": m.reactive_export_kvarh,
        "energy_import_a": phase_imp,
        "energy_export_a": phase_exp,
        "energy_import_b": phase_imp,
        "energy_export_b": phase_exp,
        "energy_import_c": phase_imp,
        "energy_export_c": phase_exp,
    }
