"""Site files mean what they say: no coercion of booleans, text or numbers, and one run
reports every problem (an unknown field does not hide the rules' findings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config.loader import check_site_text

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "sites" / "hmce.yaml").read_text(encoding="utf-8")


def _errors(text: str) -> list[str]:
    site, problems = check_site_text(text, "s.yaml")
    assert site is None
    return [str(p) for p in problems if p.severity == "error"]


def _with(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "ramp_up_kw_per_s: 100",
            "ramp_up_kw_per_s: true",
            "s.yaml:21:23: devices.battery.ramp_up_kw_per_s: expected a number; got true",
        ),
        (
            "port: 502",
            'port: "15020"',
            "s.yaml:18:11: devices.battery.port: expected a whole number; got '15020'",
        ),
        (
            "control:\n",
            'control:\n  shadow: "no"\n',
            "s.yaml:137:11: control.shadow: expected true or false; got 'no'",
        ),
        (
            "nameplate_power_kw: 565",
            'nameplate_power_kw: "565"',
            "s.yaml:19:25: devices.battery.nameplate_power_kw: expected a number; got '565'",
        ),
        (
            "port: 502",
            "port: 502.0",
            "s.yaml:18:11: devices.battery.port: expected a whole number; got 502.0",
        ),
    ],
)
def test_values_are_not_coerced(old: str, new: str, expected: str) -> None:
    assert _errors(_with(old, new)) == [expected]


def test_the_real_types_still_load() -> None:
    # An int where a float is wanted is a number, not a coercion.
    site, _ = check_site_text(_with("control:\n", "control:\n  shadow: true\n"), "s")
    assert site is not None and site.control.shadow is True
    assert isinstance(site.devices.battery.nameplate_power_kw, float | int)


def test_an_unknown_field_does_not_hide_the_rules() -> None:
    text = _with("control:\n", "control:\n  shaddow: true\n")
    text = text.replace("soe_min: 5%", "soe_min: 99%", 1).replace("soe_max: 100%", "soe_max: 10%")
    errors = _errors(text)
    unknown = "s.yaml:137:3: control.shaddow: unknown field 'shaddow'; did you mean 'shadow'?"
    assert unknown in errors
    assert any("limits.soe_min: soe_min" in e and "must be below soe_max" in e for e in errors)


def test_an_unknown_field_in_a_schedule_entry_does_not_hide_the_rules() -> None:
    text = BASE.replace("soe_min: 5%", "soe_min: 99%", 1).replace("soe_max: 100%", "soe_max: 10%")
    text = text.replace("  - mode: ", "  - colour: red\n    mode: ", 1)
    errors = _errors(text)
    assert any("unknown field 'colour'" in e for e in errors)
    assert any("must be below soe_max" in e for e in errors)


def test_a_colon_in_a_flow_mapping_says_to_quote_it() -> None:
    errors = _errors(_with('start: "17:00"', "start: 17:00"))
    assert len(errors) == 1
    assert errors[0].startswith("s.yaml:59:41: invalid YAML: found unexpected ':'")
    assert errors[0].endswith('quote a value that holds a colon, e.g. start: "17:00"')


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # YAML reads a number too large for a float as infinity.
        (
            "site_import_kw: 220",
            "site_import_kw: 1e999",
            "s.yaml:49:19: limits.site_import_kw: must be a finite number; got inf",
        ),
        (
            "site_import_kw: 220",
            "site_import_kw: .nan",
            "s.yaml:49:19: limits.site_import_kw: must be a finite number; got nan",
        ),
        (
            "soe_min: 5%",
            "soe_min: .inf",
            "s.yaml:47:12: limits.soe_min: must be a finite number; got inf",
        ),
        (
            "{price: -.inf, soe: 1280}",
            "{price: .nan, soe: 1280}",
            "s.yaml:87:19: schedule[1].params.charge_curve[0].price: "
            "expected a price in p/kWh (or -.inf or .inf); got nan",
        ),
    ],
    ids=["1e999", "nan", "soe-inf", "curve-price-nan"],
)
def test_numbers_are_finite(old: str, new: str, expected: str) -> None:
    assert _errors(_with(old, new)) == [expected]


def test_a_site_profile_register_is_finite() -> None:
    text = BASE + "profiles:\n  pp:\n    extends: tesla-powerpack\n    registers:\n"
    text += "      soe: {scale: -.inf}\n"
    line = text.count("\n")
    assert _errors(text) == [
        f"s.yaml:{line}:20: profiles.pp.registers.soe.scale: must be a finite number; got -inf"
    ]


MODO_KEY = "    api_key_env: FLUX_MODO_API_KEY\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            MODO_KEY,
            MODO_KEY + "    base_url: not a url\n",
            "s.yaml:134:15: markets.modo.base_url: 'not a url'",
        ),
        (
            MODO_KEY,
            MODO_KEY + "    base_url: ftp://modo.test/v1\n",
            "s.yaml:134:15: markets.modo.base_url: 'ftp://modo.test/v1'",
        ),
        (
            "  elexon: {}\n",
            "  elexon: {base_url: 'https:///bmrs'}\n",
            "s.yaml:134:22: markets.elexon.base_url: 'https:///bmrs'",
        ),
        (
            "  elexon: {}\n",
            "  elexon: {}\n  axle: {base_url: axle.test, asset_id: a-1, username_env: AXLE_USER,"
            " password_env: AXLE_PASSWORD}\n",
            "s.yaml:135:20: markets.axle.base_url: 'axle.test'",
        ),
    ],
    ids=["modo-text", "modo-ftp", "elexon-no-host", "axle-no-scheme"],
)
def test_market_base_urls_are_http_urls_with_a_host(old: str, new: str, expected: str) -> None:
    assert _errors(_with(old, new)) == [
        f"{expected} is not an http:// or https:// URL with a host; "
        "write e.g. https://api.example.com/v1"
    ]
