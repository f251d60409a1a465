"""The JSON Schema (what editors check) and `flux validate` agree on what a site file is.

Every corpus file, every shipped site and a set of one-line variants go through both: the
schema (``jsonschema``, formats checked) against the data as Flux reads the YAML, and Flux's
structural model. They must agree, apart from the documented exceptions below. Rules that
relate fields to each other (SoE min below max, one grid meter, ...) are beyond a schema:
a file that fails only those rules is schema-valid, and the test checks that too.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from reconciler.config.commands import schema_text
from reconciler.config.loader import check_site_text, read_site_yaml
from reconciler.config.model import Site

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
BASE = (ROOT / "sites" / "hmce.yaml").read_text(encoding="utf-8")

#: Where the two must differ, and why. Keys are case names; values: (schema_valid,
#: flux_valid, reason). Anything not listed must agree.
EXCEPTIONS: dict[str, tuple[bool, bool, str]] = {
    "bad_timezone.yaml": (
        True,
        False,
        "a schema cannot list the IANA zones this machine knows; flux checks the name",
    ),
    "whole_number_as_float": (
        True,
        False,
        "JSON Schema counts 10.0 as an integer; flux wants a whole number written as one",
    ),
}


def _variant(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


VARIANTS: dict[str, str] = {
    "ramp_is_true": _variant("ramp_up_kw_per_s: 100", "ramp_up_kw_per_s: true"),
    "port_is_text": _variant("port: 502", 'port: "502"'),
    "shadow_is_text": _variant("control:\n", 'control:\n  shadow: "no"\n'),
    "shadow_is_bool": _variant("control:\n", "control:\n  shadow: true\n"),
    "nameplate_is_text": _variant("nameplate_power_kw: 565", 'nameplate_power_kw: "565"'),
    "float_where_int": _variant("port: 502", "port: 502.5"),
    "whole_number_as_float": _variant("port: 502", "port: 502.0"),
    "int_where_float": _variant("nameplate_power_kw: 565", "nameplate_power_kw: 565"),
    "soe_percent": _variant("soe_min: 5%", "soe_min: 7.5%"),
    "soe_not_energy": _variant("soe_min: 5%", "soe_min: lots"),
    "soe_over_100": _variant("soe_min: 5%", "soe_min: 101%"),
    "time_no_colon": _variant('start: "17:00"', 'start: "1700"'),
    "time_24": _variant('end: "19:00"', 'end: "24:00"'),
    "time_25": _variant('end: "19:00"', 'end: "25:00"'),
    "env_lowercase": _variant(
        "control:\n", "markets:\n  modo:\n    api_key_env: modo_key\ncontrol:\n"
    ),
    "date_as_number": _variant(
        '{days: weekdays, start: "17:00"',
        '{dates: {from: 20260101, to: 2026-02-01}, start: "17:00"',
    ),
    "date_text": _variant(
        '{days: weekdays, start: "17:00"',
        '{dates: {from: 2026-01-01, to: 2026-02-01}, start: "17:00"',
    ),
    "date_time": _variant(
        '{days: weekdays, start: "17:00"',
        '{dates: {from: 2026-01-01T00:00:00, to: 2026-02-01}, start: "17:00"',
    ),
    "days_empty": _variant('{days: weekdays, start: "17:00"', '{days: [], start: "17:00"'),
    "unit_id_text": _variant("port: 502", 'port: 502\n    unit_id: "1"'),
    "device_name_caps": _variant("name: bess", "name: Bess"),
    "day_ahead_url": _variant(
        "control:\n", "markets:\n  day_ahead: {url: https://p.test/da}\ncontrol:\n"
    ),
    "day_ahead_not_http": _variant(
        "control:\n", "markets:\n  day_ahead: {url: p.test/da}\ncontrol:\n"
    ),
    "modo_url_ftp": _variant(
        "FLUX_MODO_API_KEY\n", "FLUX_MODO_API_KEY\n    base_url: ftp://m.test/v1\n"
    ),
    "elexon_url_no_host": _variant("  elexon: {}\n", "  elexon: {base_url: 'https:///v1'}\n"),
    "elexon_url_local": _variant(
        "  elexon: {}\n", "  elexon: {base_url: 'http://127.0.0.1:15030/elexon'}\n"
    ),
}


def _cases() -> list[tuple[str, str]]:
    files = sorted([*CORPUS.glob("*.yaml"), *(ROOT / "sites").glob("*.yaml")])
    out = []
    for path in files:
        try:
            out.append((path.name, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # not text: nothing a schema could be given
    return out + sorted(VARIANTS.items())


VALIDATOR = jsonschema.Draft202012Validator(
    json.loads(schema_text()), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def _flux_structure_valid(data: object) -> bool:
    try:
        Site.model_validate(data)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("name", "text"), _cases(), ids=[n for n, _ in _cases()])
def test_schema_and_flux_agree(name: str, text: str) -> None:
    data, yaml_problems = read_site_yaml(text, name)
    if yaml_problems or not isinstance(data, dict):
        # Not YAML Flux reads (duplicate keys, anchors, tags, tabs, two documents, ...):
        # flux rejects it before any schema could be applied.
        assert check_site_text(text, name)[0] is None
        return
    schema_valid = VALIDATOR.is_valid(data)
    flux_valid = _flux_structure_valid(data)
    expected = EXCEPTIONS.get(name)
    if expected is None:
        errors = [e.message for e in VALIDATOR.iter_errors(data)][:3]
        assert schema_valid == flux_valid, f"schema {schema_valid} ({errors}), flux {flux_valid}"
    else:
        assert (schema_valid, flux_valid) == expected[:2], expected[2]


def test_the_variants_cover_both_verdicts() -> None:
    verdicts = {_flux_structure_valid(read_site_yaml(t, n)[0]) for n, t in VARIANTS.items()}
    assert verdicts == {True, False}


def test_every_exception_is_a_case() -> None:
    assert set(EXCEPTIONS) <= {name for name, _ in _cases()}
