"""The checked-in site files and the checked-in JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config.commands import SCHEMA_COMMENT, schema_text
from reconciler.config.loader import check_site_file, load_site

ROOT = Path(__file__).resolve().parents[2]
SITES = sorted((ROOT / "sites").glob("*.yaml"))


def test_the_three_real_sites_and_the_demo_exist() -> None:
    assert {p.stem for p in SITES} >= {"wlce", "hmce", "lfce", "demo"}


@pytest.mark.parametrize("path", SITES, ids=[p.stem for p in SITES])
def test_every_site_file_validates(path: Path) -> None:
    site, problems = check_site_file(path)
    assert [str(p) for p in problems if p.severity == "error"] == []
    assert site is not None
    assert site.site.id == path.stem


@pytest.mark.parametrize("path", SITES, ids=[p.stem for p in SITES])
def test_every_site_file_names_the_schema_first(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_COMMENT


@pytest.mark.parametrize("stem", ["wlce", "hmce", "lfce"])
def test_real_sites_have_no_warnings_and_use_private_addresses(stem: str) -> None:
    path = ROOT / "sites" / f"{stem}.yaml"
    site, problems = check_site_file(path)
    assert [str(p) for p in problems] == []
    assert site is not None
    hosts = [site.devices.battery.host, *(m.host for m in site.devices.meters.values())]
    assert all(h.startswith("10.") for h in hosts)


def test_reference_values_of_the_real_sites() -> None:
    wlce = load_site(ROOT / "sites" / "wlce.yaml")
    hmce = load_site(ROOT / "sites" / "hmce.yaml")
    assert (wlce.site.homes, hmce.site.homes) == (33, 54)
    assert wlce.devices.battery.nameplate_energy_kwh == 1609
    assert wlce.devices.battery.nameplate_power_kw == 565
    assert (wlce.limits.site_import_kw, wlce.limits.site_export_kw) == (220, 490)
    assert hmce.devices.battery.nameplate_energy_kwh == 1280


def test_checked_in_schema_is_current() -> None:
    checked_in = (ROOT / "schemas" / "site.schema.json").read_text(encoding="utf-8")
    assert checked_in == schema_text(), "schemas/site.schema.json is stale: run `flux schema`"


def test_schema_is_deterministic_and_describes_the_sections() -> None:
    import json

    assert schema_text() == schema_text()
    schema = json.loads(schema_text())
    assert set(schema["required"]) == {"site", "devices", "limits"}
    assert schema["additionalProperties"] is False


VARIANTS = sorted((ROOT / "sites" / "variants").glob("*.yaml"))


@pytest.mark.parametrize("path", VARIANTS, ids=[p.stem for p in VARIANTS])
def test_every_variant_validates_and_differs_from_its_site_only_in_the_schedule(
    path: Path,
) -> None:
    site, problems = check_site_file(path)
    assert [str(p) for p in problems if p.severity == "error"] == []
    assert site is not None
    base = load_site(ROOT / "sites" / f"{site.site.id}.yaml")
    assert site.model_dump(exclude={"schedule"}) == base.model_dump(exclude={"schedule"})
    assert site.schedule[1:] == base.schedule
