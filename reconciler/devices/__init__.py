"""Devices: register codec, Modbus TCP transport, battery and meter drivers.

``open_site_devices(site)`` (in :mod:`reconciler.devices.factory`) is loaded on first use so
that importing the protocols in :mod:`reconciler.devices.base` does not pull in pymodbus.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "open_site_devices":
        from reconciler.devices.factory import open_site_devices

        return open_site_devices
    raise AttributeError(name)
