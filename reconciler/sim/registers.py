"""What the simulated devices put in their registers, by profile register name, in
engineering units (the device servers encode them with the profile and the device's
PT/CT ratios, so the drivers decode the physical value)."""

from __future__ import annotations

from reconciler.devices.codec import Value
from reconciler.sim.plant import MeterState, Plant

FIRMWARE = "flux-sim 0.1"


def battery_values(plant: Plant) -> dict[str, Value]:
    """PowerPack register values: kW, kWh, kW/s, s, counts."""
    b = plant.battery
    return {
        "protocol_version": 1,
        "firmware_version": FIRMWARE,
        "serial": f"SIM-{plant.site.site.id}"[:32],
        "battery_meters": 1,
        "site_meters": 1,
        "max_charge_power": b.max_power_kw,
        "max_discharge_power": b.max_power_kw,
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
    amps = m.current_a
    return {
        "frequency": m.frequency_hz,
        "voltage_line_avg": m.voltage_v,
        "current_a": amps,
        "current_b": amps,
        "current_c": amps,
        "current_avg": amps,
        "power_a": m.power_kw / 3,
        "power_b": m.power_kw / 3,
        "power_c": m.power_kw / 3,
        "power_total": m.power_kw,
        "reactive_total": m.reactive_kvar,
        "apparent_total": m.apparent_kva,
        "power_factor": m.power_factor,
        "energy_import": m.energy_import_kwh,
        "energy_export": m.energy_export_kwh,
        "reactive_energy_import": m.reactive_import_kvarh,
        "reactive_energy_export": m.reactive_export_kvarh,
        "energy_import_a": m.energy_import_kwh / 3,
        "energy_export_a": m.energy_export_kwh / 3,
        "energy_import_b": m.energy_import_kwh / 3,
        "energy_export_b": m.energy_export_kwh / 3,
        "energy_import_c": m.energy_import_kwh / 3,
        "energy_export_c": m.energy_export_kwh / 3,
    }
