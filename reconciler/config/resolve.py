"""Resolving a site's profiles: shipped register maps plus the site's own extensions."""

from __future__ import annotations

from functools import lru_cache

from ruamel.yaml import YAML

from reconciler.config.model import Site
from reconciler.config.profiles import (
    Profile,
    ProfileExtension,
    Register,
    builtin_profile_names,
    builtin_profile_text,
)


@lru_cache(maxsize=32)
def builtin_profile(name: str) -> Profile:
    """A shipped profile by name; KeyError if there is none."""
    data = YAML(typ="safe").load(builtin_profile_text(name))
    return Profile.model_validate(data)


def extend_profile(base: Profile, name: str, ext: ProfileExtension) -> Profile:
    """``base`` with the extension's registers added or overridden (raises ValueError)."""
    registers: dict[str, Register] = dict(base.registers)
    for reg_name, override in ext.registers.items():
        changes = override.model_dump(exclude_none=True)
        if reg_name in registers:
            merged = registers[reg_name].model_dump() | changes
        else:
            if "address" not in changes or "type" not in changes:
                raise ValueError(
                    f"register {reg_name!r} is not in profile {base.name!r}; "
                    "a new register needs at least address and type"
                )
            merged = changes
        registers[reg_name] = Register.model_validate(merged)
    return Profile(
        name=name,
        description=ext.description or base.description,
        kind=base.kind,
        max_read_words=ext.max_read_words or base.max_read_words,
        max_gap_words=base.max_gap_words if ext.max_gap_words is None else ext.max_gap_words,
        registers=registers,
    )


def resolve_profile(site: Site, name: str) -> Profile:
    """The profile ``name`` as the site sees it (site extensions first, then shipped).

    Raises KeyError when no profile has that name.
    """
    ext = site.profiles.get(name)
    if ext is not None:
        return extend_profile(resolve_profile_base(site, ext.extends, seen={name}), name, ext)
    return builtin_profile(name)


def resolve_profile_base(site: Site, name: str, seen: set[str]) -> Profile:
    if name in seen:
        raise ValueError(f"profile {name!r} extends itself (through {sorted(seen)})")
    ext = site.profiles.get(name)
    if ext is None:
        return builtin_profile(name)
    return extend_profile(resolve_profile_base(site, ext.extends, seen | {name}), name, ext)


def known_profile_names(site: Site) -> list[str]:
    return sorted(set(builtin_profile_names()) | set(site.profiles))
