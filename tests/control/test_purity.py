"""control/ keeps no state of its own: whatever lasts from tick to tick is the caller's."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType

import reconciler.control

MUTABLE = (dict, list, set, bytearray)


def _modules() -> list[ModuleType]:
    package = reconciler.control
    names = [
        info.name for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
    ]
    return [package, *(importlib.import_module(name) for name in names)]


def test_no_module_level_mutable_state_or_memo() -> None:
    found = []
    for module in _modules():
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            if isinstance(value, (*MUTABLE, functools._lru_cache_wrapper)):
                found.append(f"{module.__name__}.{name} ({type(value).__name__})")
    assert found == []
