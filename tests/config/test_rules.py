"""Cross-field rules that the corpus does not cover: warnings and subtler overlaps."""

from __future__ import annotations

from pathlib import Path

from reconciler.config.loader import check_site_text

BASE = (Path(__file__).parent / "corpus" / "duplicate_key.yaml").read_text(encoding="utf-8")
BASE = BASE.replace("  homes: 12\n", "")


def _problems(text: str) -> list[str]:
    _site, problems = check_site_text(text, "s.yaml")
    return [f"{p.severity}: {p}" for p in problems]


def test_base_is_valid() -> None:
    site, problems = check_site_text(BASE, "s.yaml")
    assert site is not None
    assert problems == []


def test_duplicate_host_and_port_is_a_warning() -> None:
    text = BASE.replace("host: 10.0.0.22", "host: 10.0.0.21")
    assert _problems(text) == [
        "warning: s.yaml:26:13: devices.meters.solar.host: 10.0.0.21:502 is also used by "
        "'boundary'; fine behind one gateway with different unit ids, otherwise one of "
        "them is wrong"
    ]
    site, _ = check_site_text(text, "s.yaml")
    assert site is not None


def test_niv_chase_without_a_price_source_is_a_warning() -> None:
    text = BASE.replace("      default_price: 10\n", "").replace(
        "markets:\n  modo:\n    api_key_env: FLUX_MODO_API_KEY\n", ""
    )
    assert _problems(text) == [
        "warning: s.yaml:47:11: schedule[1].mode: never active without a price: configure "
        "markets.modo or set params.default_price"
    ]


def test_target_outside_soe_limits_is_a_warning() -> None:
    text = BASE.replace("target_soe: 400", "target_soe: 20")
    assert _problems(text) == [
        "warning: s.yaml:61:19: schedule[2].params.target_soe: 20 kWh is outside the SoE "
        "limits [50, 500] kWh; the battery will stop at the limit"
    ]


def test_windows_over_midnight_overlap_the_next_morning() -> None:
    text = BASE.replace(
        "  - mode: import_avoidance\n",
        "  - mode: import_avoidance\n"
        '    windows: [{days: [fri], start: "22:00", end: "02:00"}]\n'
        "  - mode: import_avoidance\n"
        '    windows: [{days: [sat], start: "01:00", end: "03:00"}]\n',
    )
    assert _problems(text) == [
        "error: s.yaml:64:5: schedule[4]: 'import_avoidance#4' and 'import_avoidance#3' "
        "(schedule[3]) both have priority 30 and are both active at sat 01:00; give one a "
        "different priority or make the windows not overlap"
    ]


def test_equal_priority_in_disjoint_date_ranges_is_fine() -> None:
    text = BASE.replace(
        "  - mode: import_avoidance\n",
        "  - mode: import_avoidance\n"
        "    windows: [{dates: {from: 2024-01-01, to: 2024-03-31}}]\n"
        "  - mode: import_avoidance\n"
        "    windows: [{dates: {from: 2024-04-01, to: 2024-06-30}}]\n",
    )
    assert _problems(text) == []


def test_equal_priority_in_overlapping_date_ranges_names_the_date() -> None:
    text = BASE.replace(
        "  - mode: import_avoidance\n",
        "  - mode: import_avoidance\n"
        '    windows: [{dates: {from: 2024-01-01, to: 2024-03-31}, start: "10:00", '
        'end: "11:00"}]\n'
        "  - mode: import_avoidance\n"
        '    windows: [{dates: {from: 2024-03-31, to: 2024-06-30}, start: "10:30", '
        'end: "12:00"}]\n',
    )
    assert _problems(text) == [
        "error: s.yaml:64:5: schedule[4]: 'import_avoidance#4' and 'import_avoidance#3' "
        "(schedule[3]) both have priority 30 and are both active at 2024-03-31 10:30; give "
        "one a different priority or make the windows not overlap"
    ]


def test_site_profile_extension_resolves_and_is_used() -> None:
    text = BASE.replace(
        "limits:\n",
        "profiles:\n  acuvim-custom:\n    extends: acuvim-ii\n    registers:\n"
        "      thd_voltage: {address: 12400, type: f32, unit: '%'}\n\nlimits:\n",
    ).replace(
        "      role: solar\n      profile: acuvim-ii",
        "      role: solar\n      profile: acuvim-custom",
    )
    assert _problems(text) == []


def test_a_window_past_midnight_meets_the_next_date_range() -> None:
    text = BASE.replace(
        "  - mode: import_avoidance\n",
        "  - mode: import_avoidance\n"
        '    windows: [{dates: {from: 2024-01-01, to: 2024-03-31}, start: "22:00", '
        'end: "02:00"}]\n'
        "  - mode: import_avoidance\n"
        "    windows: [{dates: {from: 2024-04-01, to: 2024-06-30}}]\n",
    )
    assert _problems(text) == [
        "error: s.yaml:64:5: schedule[4]: 'import_avoidance#4' and 'import_avoidance#3' "
        "(schedule[3]) both have priority 30 and are both active at 2024-04-01 00:00; give "
        "one a different priority or make the windows not overlap"
    ]


def test_modo_polled_faster_than_its_rate_limit_is_a_warning() -> None:
    text = BASE.replace(
        "    api_key_env: FLUX_MODO_API_KEY\n",
        "    api_key_env: FLUX_MODO_API_KEY\n    poll_s: 30\n",
    )
    (line,) = _problems(text)
    assert line.startswith("warning: s.yaml:")
    assert "markets.modo.poll_s: Modo allows about one call a minute" in line
    assert "every 30 s will be rate limited" in line


def test_axle_configured_but_never_scheduled_is_a_warning() -> None:
    axle = (
        "  axle:\n    base_url: https://api.axle.energy\n    asset_id: a-1\n"
        "    username_env: AXLE_USER\n    password_env: AXLE_PASSWORD\n"
    )
    text = BASE.replace("markets:\n", "markets:\n" + axle)
    (line,) = _problems(text)
    assert "markets.axle: no schedule entry has mode axle" in line
    scheduled = text.replace("schedule:\n", "schedule:\n  - mode: axle\n", 1)
    assert _problems(scheduled) == []


def _with_frequency_response(params: str, ramp: str = "") -> str:
    text = BASE.replace(
        "schedule:\n",
        f"schedule:\n  - name: DC\n    mode: frequency_response\n    params: {params}\n",
        1,
    )
    return text.replace(
        "    nameplate_energy_kwh: 500\n", f"    nameplate_energy_kwh: 500\n{ramp}", 1
    )


def test_a_frequency_contract_the_battery_cannot_deliver_is_named() -> None:
    problems = _problems(_with_frequency_response("{low_kw: 300, high_kw: 100}"))
    assert any(
        p.startswith(
            "error: s.yaml:45:22: schedule[0].params.low_kw: 300 kW contracted but "
            "the battery may move only 250 kW that way"
        )
        for p in problems
    ), problems


def test_a_ramp_too_slow_for_the_contract_is_a_warning() -> None:
    slow = "    ramp_up_kw_per_s: 100\n"
    problems = _problems(_with_frequency_response("{low_kw: 200}", ramp=slow))
    assert [p for p in problems if "frequency" in p or "ramp" in p] == [
        "warning: s.yaml:46:22: schedule[0].params.low_kw: at devices.battery.ramp_up_kw_per_s "
        "100 the battery takes 2.0 s to reach 200 kW: too slow for delivery within 1 s once "
        "detection is added"
    ]
    assert [p for p in _problems(_with_frequency_response("{low_kw: 200}")) if "ramp" in p] == []


def test_a_band_that_cannot_hold_both_sides_is_an_error() -> None:
    # 450 kWh usable: 250 kW x 1 h above soe_min and 250 kW x 1 h x 0.85 below soe_max
    problems = _problems(_with_frequency_response("{low_kw: 250, high_kw: 250, duration_min: 60}"))
    assert any(
        "schedule[0].params.duration_min: no SoE can hold 60 min of both sides" in p
        for p in problems
    ), problems
