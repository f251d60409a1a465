"""Read planning: as few reads as allowed, never too long, never across a wide gap."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.profiles import Profile, Register, RegisterType
from reconciler.config.resolve import builtin_profile
from reconciler.devices.codec import encode
from reconciler.devices.plan import Block, pick, plan_reads, plan_single

TYPES = [RegisterType.u16, RegisterType.i16, RegisterType.u32, RegisterType.f32]


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    # Registers laid out one after another with random gaps (devices do not overlap them).
    n = draw(st.integers(1, 30))
    registers: dict[str, Register] = {}
    address = draw(st.integers(0, 100))
    for i in range(n):
        kind = draw(st.sampled_from([*TYPES, RegisterType.string]))
        length = draw(st.integers(1, 20)) if kind is RegisterType.string else None
        reg = Register(address=address, type=kind, length=length)
        registers[f"r{i}"] = reg
        address += reg.words + draw(st.sampled_from([0, 0, 1, 2, 5, 9, 17, 40]))
    return Profile(
        name="random",
        kind="meter",
        max_read_words=draw(st.integers(20, 125)),
        max_gap_words=draw(st.integers(0, 30)),
        registers=registers,
    )


def uncovered_runs(profile: Profile, block: Block) -> list[int]:
    """Lengths of the runs of addresses in ``block`` that no member register covers."""
    covered = set()
    for name in block.names:
        reg = profile.registers[name]
        covered.update(range(reg.address, reg.address + reg.words))
    runs, run = [], 0
    for a in range(block.start, block.end):
        if a in covered:
            if run:
                runs.append(run)
            run = 0
        else:
            run += 1
    if run:
        runs.append(run)
    return runs


@given(profiles(), st.data())
@settings(max_examples=60, deadline=None)
def test_plan_respects_device_limits_and_covers_every_register(
    profile: Profile, data: st.DataObject
) -> None:
    names = data.draw(st.lists(st.sampled_from(sorted(profile.registers)), min_size=1, unique=True))
    blocks = plan_reads(profile, names)
    seen: list[str] = []
    for block in blocks:
        assert 1 <= block.count <= profile.max_read_words
        assert all(gap <= profile.max_gap_words for gap in uncovered_runs(profile, block))
        for name in block.names:
            reg = profile.registers[name]
            assert block.start <= reg.address
            assert reg.address + reg.words <= block.end
        # The block is no wider than its members need.
        assert block.start == min(profile.registers[n].address for n in block.names)
        assert block.end == max(
            profile.registers[n].address + profile.registers[n].words for n in block.names
        )
        seen.extend(block.names)
    assert sorted(seen) == sorted(names)
    assert len(blocks) <= len(plan_single(profile, names))


@given(profiles())
@settings(max_examples=60, deadline=None)
def test_plan_joins_neighbours_it_may_join(profile: Profile) -> None:
    """Two consecutive blocks could not have been one: the gap or the length forbids it."""
    blocks = plan_reads(profile)
    for a, b in itertools.pairwise(blocks):
        assert b.start - a.end > profile.max_gap_words or (
            max(a.end, b.end) - a.start > profile.max_read_words
        )


@given(profiles())
@settings(max_examples=60, deadline=None)
def test_pick_decodes_each_register_from_its_block(profile: Profile) -> None:
    memory: dict[int, int] = {}
    expected: dict[str, object] = {}
    for name, reg in sorted(profile.registers.items(), key=lambda kv: kv[1].address):
        value = "ab" if reg.type is RegisterType.string else 7
        for i, word in enumerate(encode(reg, value)):
            memory[reg.address + i] = word
        expected[name] = value
    blocks = plan_reads(profile)
    replies = [[memory.get(a, 0) for a in range(b.start, b.end)] for b in blocks]
    values = pick(profile, blocks, replies)
    assert set(values) == set(profile.registers)
    for name, reg in profile.registers.items():
        words = [memory.get(a, 0) for a in range(reg.address, reg.address + reg.words)]
        assert words == encode(reg, values[name])


def test_shipped_profiles_plan_into_few_reads() -> None:
    powerpack = builtin_profile("tesla-powerpack")
    acuvim = builtin_profile("acuvim-ii")
    assert [(b.start, b.end) for b in plan_reads(powerpack)] == [
        (100, 147),
        (200, 219),
        (1000, 1003),
        (1020, 1028),
    ]
    assert len(plan_reads(powerpack, ["soe", "target_power", "available_blocks"])) == 1
    # frequency sits 14 words before the voltage, beyond the meter's 8-word gap limit
    assert [(b.start, b.end) for b in plan_reads(acuvim)] == [
        (12288, 12290),
        (12304, 12348),
        (16456, 16464),
        (17952, 17964),
    ]
