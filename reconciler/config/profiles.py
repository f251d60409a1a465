"""Register maps ("profiles") as data.

A profile names every Modbus register a device model exposes, how to decode it and
whether Flux may write it. Drivers look registers up by name, so a new device model is a
new YAML file in ``profiles/``, not new code.

Values are in engineering units after decoding: ``value = raw * scale * ratios``, where
``ratios`` are the device's PT and/or CT ratios named in ``scale_by``.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RegisterName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class RegisterType(StrEnum):
    """Wire type of a register value."""

    u16 = "u16"
    i16 = "i16"
    u32 = "u32"
    i32 = "i32"
    f32 = "f32"
    string = "string"


#: Number of 16-bit Modbus words each fixed-size type occupies.
TYPE_WORDS: dict[RegisterType, int] = {
    RegisterType.u16: 1,
    RegisterType.i16: 1,
    RegisterType.u32: 2,
    RegisterType.i32: 2,
    RegisterType.f32: 2,
}


class Register(BaseModel):
    """One holding register (or a run of them for 32-bit values and strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(ge=0, le=65535, description="Modbus holding-register address (0-based).")
    type: RegisterType = Field(description="Wire type: u16, i16, u32, i32, f32 or string.")
    length: int | None = Field(
        default=None,
        ge=1,
        le=125,
        description="Length in 16-bit words; required for strings, implied for other types.",
    )
    word_order: Literal["big", "little"] = Field(
        default="big",
        description="Order of 16-bit words in 32-bit values: big = high word first.",
    )
    scale: float = Field(
        default=1.0,
        description="Multiplier from the raw integer to the engineering unit (e.g. 0.001 W -> kW).",
    )
    scale_by: list[Literal["pt", "ct"]] = Field(
        default_factory=list,
        description="Device ratios that also multiply the value: pt = PT1/PT2, ct = CT1/CT2.",
    )
    unit: str = Field(default="", max_length=16, description="Engineering unit after scaling.")
    access: Literal["r", "rw"] = Field(
        default="r", description="r = read only; rw = Flux may write it (within min/max)."
    )
    min: float | None = Field(
        default=None, description="Lowest value a write may carry, in the engineering unit."
    )
    max: float | None = Field(
        default=None, description="Highest value a write may carry, in the engineering unit."
    )
    description: str = Field(default="", description="What the register means.")

    @model_validator(mode="after")
    def _check(self) -> Register:
        if self.type is RegisterType.string and self.length is None:
            raise ValueError("a string register needs a length (in 16-bit words)")
        if self.type is not RegisterType.string and self.length not in (None, self.words):
            raise ValueError(
                f"length {self.length} does not match type {self.type.value} "
                f"({TYPE_WORDS[self.type]} words); leave length out"
            )
        if self.access == "rw" and (self.min is None or self.max is None):
            raise ValueError("a writable register needs both min and max (the allowed range)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self

    @property
    def words(self) -> int:
        """Number of 16-bit words the register occupies."""
        if self.type is RegisterType.string:
            assert self.length is not None
            return self.length
        return TYPE_WORDS[self.type]

    @property
    def writable(self) -> bool:
        return self.access == "rw"


class Profile(BaseModel):
    """A device model's register map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Profile name, e.g. acuvim-ii.")
    description: str = Field(default="", description="The device model this map is for.")
    kind: Literal["battery", "meter"] = Field(description="Which driver reads this profile.")
    max_read_words: int = Field(
        default=125, ge=1, le=125, description="Most registers the device returns in one read."
    )
    max_gap_words: int = Field(
        default=0,
        ge=0,
        le=124,
        description=(
            "Most unmapped registers one read may span to join two neighbours; 0 means reads "
            "never cross a gap (for devices that reject reads of undefined registers)."
        ),
    )
    registers: dict[RegisterName, Register] = Field(description="Registers by name.")


class RegisterOverride(BaseModel):
    """A site's change to one register of a profile: every field optional."""

    # strict and finite like the site model it is part of; the wire type is named by its text.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    address: int | None = Field(default=None, ge=0, le=65535)
    type: RegisterType | None = Field(default=None, strict=False)
    length: int | None = Field(default=None, ge=1, le=125)
    word_order: Literal["big", "little"] | None = None
    scale: float | None = None
    scale_by: list[Literal["pt", "ct"]] | None = None
    unit: str | None = Field(default=None, max_length=16)
    access: Literal["r", "rw"] | None = None
    min: float | None = None
    max: float | None = None
    description: str | None = None


class ProfileExtension(BaseModel):
    """A site-local profile: a shipped profile with registers added or overridden."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    extends: str = Field(description="Name of the profile this one starts from.")
    description: str = Field(default="")
    max_read_words: int | None = Field(default=None, ge=1, le=125)
    max_gap_words: int | None = Field(default=None, ge=0, le=124)
    registers: dict[RegisterName, RegisterOverride] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"pattern": r"^[a-z][a-z0-9_]*$", "maxLength": 64}},
        description="Registers to add (all of address and type given) or to override by name.",
    )


def builtin_profile_names() -> list[str]:
    """Names of the profiles shipped inside the package."""
    folder = resources.files("reconciler.config") / "profiles"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def builtin_profile_text(name: str) -> str:
    """YAML text of a shipped profile; raises KeyError if there is none by that name."""
    path = resources.files("reconciler.config") / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(name)
    return path.read_text(encoding="utf-8")
