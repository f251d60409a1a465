# ruff: noqa: E501  (the table holds exact messages; wrapping them would hide what is asserted)
"""The bad-input corpus: one defect per file, each with its exact positional message.

Each row names a file under corpus/ and the exact problems (after ``<path>:``) that
validation must report, in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config.loader import MAX_BYTES, Problem, SiteFileError, check_site_file, load_site

CORPUS = Path(__file__).parent / "corpus"

CASES: list[tuple[str, list[str]]] = [
    (
        "allow_rollback_not_bool.yaml",
        ["70:19: control.allow_rollback: expected true or false; got 'yes'"],
    ),
    (
        "anchors.yaml",
        [
            "12:11: anchors and aliases are not allowed in site files; write the values out",
            "20:13: anchors and aliases are not allowed in site files; write the values out",
        ],
    ),
    (
        "axle_without_market.yaml",
        [
            "63:11: schedule[4].mode: mode axle needs markets.axle (base_url, asset_id, username_env, password_env)"
        ],
    ),
    (
        "bad_day_set.yaml",
        [
            "59:22: schedule[2].windows[0].days: 'sometimes' is not a set of days; write all, weekdays, weekends or a list such as [mon, wed]"
        ],
    ),
    (
        "bad_site_id.yaml",
        [
            "3:7: site.id: 'Corpus Site' is not a slug: use lower-case letters, digits and - (e.g. wlce)"
        ],
    ),
    (
        "bad_time.yaml",
        [
            "59:34: schedule[2].windows[0].start: '25:00' is not a local time; write HH:MM from 00:00 to 24:00"
        ],
    ),
    (
        "bad_timezone.yaml",
        [
            "5:13: site.timezone: unknown timezone 'Europe/Londn'; use an IANA name such as Europe/London"
        ],
    ),
    (
        "bad_weekday.yaml",
        [
            "59:16: schedule[2].windows[0].days: 'funday' is not a day; use mon, tue, wed, thu, fri, sat, sun"
        ],
    ),
    ("binary.yaml", ["2:8: binary file (contains NUL bytes); a site file is UTF-8 YAML text"]),
    (
        "charge_above_nameplate.yaml",
        ["29:22: limits.battery_charge_kw: 300 kW is above the battery's nameplate power 250 kW"],
    ),
    (
        "comments_only.yaml",
        ["1:1: the file is empty; a site file needs at least site, devices and limits"],
    ),
    ("curve_empty.yaml", ["53:7: schedule[1].params.discharge_curve: needs at least 1 item(s)"]),
    (
        "curve_soe_above_nameplate.yaml",
        [
            "50:31: schedule[1].params.charge_curve[0].soe: SoE 600 kWh is above the battery's nameplate energy 500 kWh"
        ],
    ),
    (
        "curve_soe_rises.yaml",
        [
            "53:7: schedule[1].params.discharge_curve: SoE must not rise as the price rises; got 100 after 50"
        ],
    ),
    (
        "dangling_battery_profile.yaml",
        [
            "11:14: devices.battery.profile: unknown profile 'tesla-powerpak'; did you mean 'tesla-powerpack'?"
        ],
    ),
    (
        "dates_backwards.yaml",
        [
            "59:16: schedule[2].windows[0].dates: dates run backwards: from 2025-03-01 is after to 2024-11-01"
        ],
    ),
    ("deep_nesting.yaml", ["21:41: nested deeper than 20 levels; a site file needs far fewer"]),
    (
        "duplicate_device_name.yaml",
        [
            "23:5: devices.meters.bess: device name 'bess' is also the battery's name; device names must be unique"
        ],
    ),
    ("duplicate_key.yaml", ["7:3: duplicate key 'homes' (first at line 6); keep one"]),
    (
        "empty_file.yaml",
        ["1:1: the file is empty; a site file needs at least site, devices and limits"],
    ),
    (
        "empty_window.yaml",
        ["40:53: rates[0].windows[0].end: window is empty: it starts and ends at 17:00"],
    ),
    (
        "env_name_lowercase.yaml",
        [
            "66:18: markets.modo.api_key_env: 'modo key' is not an environment variable name; use capitals, digits and _ (e.g. FLUX_MODO_API_KEY)"
        ],
    ),
    (
        "heartbeat_zero.yaml",
        ["14:26: devices.battery.heartbeat_timeout_s: must be at least 1; got 0"],
    ),
    (
        "tick_longer_than_heartbeat.yaml",
        [
            "69:11: control.tick_s: a 6 s tick is more than half the battery's heartbeat timeout (10 s): the battery would stop between ticks; shorten tick_s or lengthen devices.battery.heartbeat_timeout_s"
        ],
    ),
    (
        "poll_slower_than_max_age.yaml",
        [
            "15:22: devices.battery.poll_interval_s: polled every 30 s but readings older than limits.max_reading_age_s (12 s) are stale: control would always be stopped; poll more often or raise max_reading_age_s"
        ],
    ),
    (
        "invalid_date.yaml",
        ["59:30: schedule[2].windows[0].dates.from: '2024-02-30' is not a date on the calendar"],
    ),
    (
        "literal_secret.yaml",
        [
            "66:18: markets.modo.api_key_env: this looks like a literal secret; never put secrets in the site file: set it in the agent's environment and write the variable's name here (e.g. FLUX_AXLE_PASSWORD)"
        ],
    ),
    (
        "merge_key.yaml",
        ["24:7: anchors and aliases are not allowed in site files; write the values out"],
    ),
    (
        "meter_with_battery_profile.yaml",
        [
            "25:16: devices.meters.solar.profile: profile 'tesla-powerpack' is a battery profile; this device needs a meter profile"
        ],
    ),
    ("missing_mode.yaml", ["62:5: schedule[3]: missing required field 'mode'"]),
    ("missing_params.yaml", ["57:5: schedule[2]: missing required field 'params'"]),
    ("missing_section.yaml", ["2:1: missing required field 'limits'"]),
    (
        "nameplate_bool.yaml",
        ["14:25: devices.battery.nameplate_power_kw: expected a number; got 'yes'"],
    ),
    (
        "negative_import_limit.yaml",
        ["33:19: limits.site_import_kw: must be greater than 0; got -200"],
    ),
    (
        "no_grid_meter.yaml",
        [
            "16:3: devices.meters: no meter has role grid; exactly one meter must measure the site boundary"
        ],
    ),
    ("not_utf8.yaml", ["4:12: not UTF-8 text (byte 0xe9); save the file as UTF-8"]),
    (
        "overlapping_explicit_priority.yaml",
        [
            "57:5: schedule[2]: 'evening top-up' and 'NIV chase' (schedule[1]) both have priority 60 and are both active at mon 01:00; give one a different priority or make the windows not overlap"
        ],
    ),
    (
        "overlapping_windows.yaml",
        [
            "63:5: schedule[4]: 'second avoidance' and 'import_avoidance#3' (schedule[3]) both have priority 30 and are both active at sat 12:00; give one a different priority or make the windows not overlap"
        ],
    ),
    (
        "peak_end_before_start.yaml",
        ["66:17: schedule[3].params.peak_end: peak_end 17:00 must be after peak_start 19:00"],
    ),
    (
        "port_not_a_number.yaml",
        ["13:11: devices.battery.port: expected a whole number; got 'five-oh-two'"],
    ),
    (
        "profile_extends_unknown.yaml",
        [
            "30:14: profiles.acuvim-custom.extends: unknown profile 'acuvim-iii'; did you mean 'acuvim-ii'?"
        ],
    ),
    (
        "profile_new_register_without_type.yaml",
        [
            "32:7: profiles.acuvim-custom.registers.thd_voltage: register 'thd_voltage' is not in profile 'acuvim-ii'; a new register needs at least address and type"
        ],
    ),
    (
        "profile_override_invalid.yaml",
        [
            "32:7: profiles.powerpack-slow.registers.soe: a writable register needs both min and max (the allowed range)"
        ],
    ),
    (
        "profile_register_bad_name.yaml",
        [
            "32:7: profiles.acuvim-custom.registers.THD: 'THD' is not a register name: use lower-case letters, digits and _, starting with a letter"
        ],
    ),
    (
        "rate_direction.yaml",
        ["38:16: rates[0].direction: 'both' is not one of: 'import' or 'export'"],
    ),
    (
        "soe_max_above_nameplate.yaml",
        ["32:12: limits.soe_max: soe_max 600 kWh is above the battery's nameplate energy 500 kWh"],
    ),
    (
        "soe_min_above_max.yaml",
        ["31:12: limits.soe_min: soe_min (450 kWh) must be below soe_max (400 kWh)"],
    ),
    (
        "soe_not_an_energy.yaml",
        [
            "31:12: limits.soe_min: 'ten percent' is not an energy; write kWh as a number (e.g. 800) or a percentage of nameplate energy (e.g. '50%')"
        ],
    ),
    (
        "soe_percent_over_100.yaml",
        ["32:12: limits.soe_max: '120%' is more than 100% of nameplate energy"],
    ),
    ("tabs.yaml", ["6:1: tab in indentation; indent with spaces"]),
    (
        "top_level_list.yaml",
        [
            "1:1: a site file is a mapping of sections (site:, devices:, limits:, schedule:, ...); got a list"
        ],
    ),
    ("two_documents.yaml", ["67:1: a site file holds one YAML document; remove '---'"]),
    (
        "two_grid_meters.yaml",
        [
            "24:13: devices.meters.solar.role: meters 'boundary' and 'solar' both have role grid; exactly one may"
        ],
    ),
    (
        "unknown_key_typo.yaml",
        ["63:5: schedule[3].pririty: unknown field 'pririty'; did you mean 'priority'?"],
    ),
    (
        "unknown_mode.yaml",
        [
            "62:11: schedule[3].mode: unknown mode 'import_avoidence'; did you mean 'import_avoidance'?"
        ],
    ),
    (
        "unknown_section.yaml",
        [
            "2:1: missing required field 'limits'",
            "28:1: limitz: unknown field 'limitz'; did you mean 'limits'?",
        ],
    ),
    (
        "unsorted_curve.yaml",
        ["49:7: schedule[1].params.charge_curve: prices must increase; got 6 after 12"],
    ),
    (
        "yaml_syntax.yaml",
        ["46:3: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)"],
    ),
    (
        "yaml_tag.yaml",
        [
            "6:10: YAML tags (!!python/object:os.system) are not allowed in site files; write the plain value"
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_corpus_file_fails_with_its_exact_message(name: str, expected: list[str]) -> None:
    path = CORPUS / name
    site, problems = check_site_file(path)
    assert site is None
    errors = [str(p) for p in problems if p.severity == "error"]
    assert errors == [f"{path}:{line}" for line in expected]


def test_every_corpus_file_is_in_the_table() -> None:
    on_disk = sorted(p.name for p in CORPUS.glob("*.yaml"))
    assert on_disk == sorted(name for name, _ in CASES)
    assert len(on_disk) >= 40


def test_load_site_raises_with_every_error(tmp_path: Path) -> None:
    path = CORPUS / "unknown_section.yaml"
    with pytest.raises(SiteFileError) as info:
        load_site(path)
    assert [p.message for p in info.value.problems] == [
        "missing required field 'limits'",
        "unknown field 'limitz'; did you mean 'limits'?",
    ]
    assert all(isinstance(p, Problem) for p in info.value.problems)


def test_a_10_mb_file_is_too_large(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    line = "# " + "x" * 98 + "\n"
    path.write_text("site:\n  id: huge\n" + line * (10 * 1024 * 1024 // len(line)))
    assert path.stat().st_size > MAX_BYTES
    site, problems = check_site_file(path)
    assert site is None
    assert [str(p) for p in problems] == [
        f"{path}:1:1: file is too large (10.5 MB); a site file must be at most 1 MB"
    ]


def test_a_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert [str(p) for p in check_site_file(path)[1]] == [f"{path}:1:1: no such file"]


def test_very_deep_flow_nesting_is_reported_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("site: " + "[" * 50_000 + "]" * 50_000 + "\n")
    site, problems = check_site_file(path)
    assert site is None
    assert [str(p) for p in problems] == [
        f"{path}:1:26: nested deeper than 20 levels; a site file needs far fewer"
    ]


def test_all_duplicate_keys_and_other_errors_are_reported_together(tmp_path: Path) -> None:
    text = (CORPUS / "duplicate_key.yaml").read_text()
    text = text.replace("    port: 502\n", "    port: 502\n    port: 503\n").replace(
        "site_import_kw: 200", "site_import_kw: -1"
    )
    path = tmp_path / "many.yaml"
    path.write_text(text)
    assert [str(p).removeprefix(f"{path}:") for p in check_site_file(path)[1]] == [
        "7:3: duplicate key 'homes' (first at line 6); keep one",
        "15:5: duplicate key 'port' (first at line 14); keep one",
        "35:19: limits.site_import_kw: must be greater than 0; got -1",
    ]
