"""Read planning: fetch the registers wanted in as few requests as the device allows.

Neighbouring registers are joined into one block while the block stays within the
profile's ``max_read_words`` and no gap between them is wider than ``max_gap_words``
(devices reject reads that touch undefined registers beyond that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler.config.profiles import Profile
from reconciler.devices.codec import UNITY, Ratios, Value, decode


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` holding registers from ``start``, carrying ``names``."""

    start: int
    count: int
    names: tuple[str, ...]

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.start + self.count

    def __str__(self) -> str:
        return f"registers {self.start}..{self.end - 1}"


def plan_reads(profile: Profile, names: Iterable[str] | None = None) -> list[Block]:
    """Blocks covering the named registers (all of the profile's when ``names`` is None),
    in address order. Raises KeyError for a name the profile lacks."""
    wanted = list(profile.registers) if names is None else list(dict.fromkeys(names))
    for name in wanted:
        if name not in profile.registers:
            raise KeyError(f"profile {profile.name!r} has no register {name!r}")
    regs = sorted(
        ((profile.registers[n].address, profile.registers[n].words, n) for n in wanted),
    )
    blocks: list[Block] = []
    start = end = -1
    members: list[str] = []
    for address, words, name in regs:
        if words > profile.max_read_words:
            raise ValueError(
                f"register {name!r} is {words} words, more than the profile's "
                f"max_read_words {profile.max_read_words}"
            )
        joins = (
            members
            and address - end <= profile.max_gap_words
            and max(end, address + words) - start <= profile.max_read_words
        )
        if joins:
            end = max(end, address + words)
            members.append(name)
            continue
        if members:
            blocks.append(Block(start, end - start, tuple(members)))
        start, end, members = address, address + words, [name]
    if members:
        blocks.append(Block(start, end - start, tuple(members)))
    return blocks


def plan_single(profile: Profile, names: Iterable[str] | None = None) -> list[Block]:
    """One block per register: the baseline that read planning is measured against."""
    wanted = list(profile.registers) if names is None else list(dict.fromkeys(names))
    return [
        Block(profile.registers[n].address, profile.registers[n].words, (n,))
        for n in sorted(wanted, key=lambda n: profile.registers[n].address)
    ]


def pick(
    profile: Profile,
    blocks: Sequence[Block],
    replies: Sequence[Sequence[int]],
    ratios: Ratios = UNITY,
) -> dict[str, Value]:
    """Decode every register of ``blocks`` out of the words each block's read returned."""
    values: dict[str, Value] = {}
    for block, words in zip(blocks, replies, strict=True):
        for name in block.names:
            reg = profile.registers[name]
            offset = reg.address - block.start
            values[name] = decode(reg, words[offset : offset + reg.words], ratios)
    return values
