"""Broken scenario files get one clear line each: file, line, field path, what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import scenario
from harness.cli import main

BROKEN = Path(__file__).parent / "scenarios_broken"
SHIPPED = Path(__file__).parent.parent / "scenarios"

EXPECTED = {
    "wrong_type.yaml": ("3", "demand.orders", "valid integer"),
    "unknown_key.yaml": ("4", "warehouse.short_pick_rat", "unknown field"),
    "negative_rate.yaml": ("3", "warehouse.short_pick_rate", "greater than or equal to 0"),
    "bad_yaml.yaml": ("3", None, "not valid YAML"),
    "closed_window.yaml": ("2", "demand", "close must be after open"),
    "unknown_event.yaml": ("4", "faults.0", "carrier sends no event 'tracking.updatd'"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_scenario_names_file_line_and_field(name, capsys):
    line, field, words = EXPECTED[name]
    assert main(["validate", str(BROKEN / name)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"twinyard: error: {BROKEN / name}:{line}: ")
    if field:
        assert f": {field}: " in err
    assert words in err
    assert "Traceback" not in err


def test_every_shipped_scenario_validates(capsys):
    files = sorted(SHIPPED.rglob("*.yaml"))
    assert len(files) >= 14  # the two days and the incident library
    assert files
    assert main(["validate", *map(str, files)]) == 0


def test_missing_scenario_file_is_one_line_exit_2(capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"twinyard: error: {tmp_path / 'nope.yaml'}: no such scenario file"


def test_unknown_option_is_one_line_exit_2(capsys):
    assert main(["run", "--no-such-option"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_schema_is_json_schema_of_the_scenario(capsys):
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert '"demand"' in out and '"additionalProperties": false' in out


def test_defaults_fill_an_almost_empty_scenario():
    loaded = scenario.parse("name: tiny\ndemand:\n  orders: 3\n", "tiny.yaml")
    assert loaded.demand.orders == 3 and loaded.warehouse.pickers == 8
    assert loaded.with_seed(7).seed == 7


def test_unquoted_times_are_times_not_base_60_numbers():
    # YAML 1.1 would read 17:00 as 1020; a cut-off or a fault window would move to 00:17
    loaded = scenario.parse(
        "warehouse:\n  cutoff: 17:00\nfaults:\n  - {system: wms, kind: outage, at: 9:30}\n"
    )
    assert loaded.warehouse.cutoff.hour == 17 and loaded.warehouse.cutoff.minute == 0
    assert loaded.faults[0].at == 9 * 3600 + 30 * 60


def test_a_time_of_day_given_as_a_number_is_refused_not_guessed(capsys):
    try:
        scenario.parse("warehouse:\n  cutoff: 1020\n", "numbers.yaml")
    except scenario.ScenarioError as exc:
        (line,) = exc.lines
        assert line.startswith("numbers.yaml:2: warehouse.cutoff: ")
        assert line.endswith("write a time of day as HH:MM, like 06:00")
    else:
        raise AssertionError("a number was taken for a time of day")


# -- what the safe loader still reads (docs/scenario-loading.md) ----------------------------
def test_anchors_and_aliases_within_the_limits_still_work():
    loaded = scenario.parse(
        "name: shared\nfaults:\n"
        "  - &outage {system: wms, kind: outage, at: '10:00', for: 600}\n"
        "  - *outage\n"
        "  - {system: erp, kind: outage, at: '12:00', for: 600}\n"
    )
    assert len(loaded.faults) == 3 and loaded.faults[0] == loaded.faults[1]


def test_core_tags_and_dates_are_read_as_before():
    loaded = scenario.parse("name: !!str 123\nseed: !!int '7'\nstart: 2026-11-23\n")
    assert loaded.name == "123" and loaded.seed == 7
    assert loaded.start.isoformat() == "2026-11-23T00:00:00+00:00"


def test_a_quoted_yes_is_a_key_like_any_other():
    loaded = scenario.parse('name: keys\ndescription: "yes"\n"seed": 3\n')
    assert loaded.description == "yes" and loaded.seed == 3


@pytest.mark.parametrize("seed", [0, 2**63 - 1])
def test_seeds_at_both_ends_of_the_range_are_valid(seed):
    assert scenario.parse(f"name: s\nseed: {seed}\n").seed == seed
    assert scenario.parse("name: s\n").with_seed(seed).seed == seed


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64 + 1])
def test_a_seed_out_of_range_is_refused_in_the_file_on_the_command_line_and_in_code(
    seed, capsys, tmp_path
):
    with pytest.raises(scenario.ScenarioError, match=r"^s\.yaml:2: seed: "):
        scenario.parse(f"name: s\nseed: {seed}\n", "s.yaml")
    with pytest.raises(ValueError, match="from 0 to 9223372036854775807"):
        scenario.parse("name: s\n").with_seed(seed)
    report = tmp_path / "report"
    assert main(["run", "--seed", str(seed), "--report-dir", str(report)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--seed" in err and "Traceback" not in err
    assert not report.exists()


def test_a_fault_just_before_the_horizon_is_accepted_and_one_at_it_refused():
    text = "name: edge\nhorizon_days: 1\nfaults:\n  - {{system: wms, kind: error, at: {at}}}\n"
    assert scenario.parse(text.format(at=86_399)).faults[0].at == 86_399
    with pytest.raises(scenario.ScenarioError, match=r"day\.yaml:4: faults\.0\.at: opens at 86400"):
        scenario.parse(text.format(at=86_400), "day.yaml")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n", "---\n"])
def test_an_empty_scenario_is_refused(text):
    with pytest.raises(scenario.ScenarioError, match="empty scenario: give at least a name"):
        scenario.parse(text, "empty.yaml")


# -- --set overrides -------------------------------------------------------------------------
def test_set_overrides_fields_makes_sections_and_names_itself_when_wrong(tmp_path):
    path = tmp_path / "day.yaml"
    path.write_text(
        "seed: 3\ncarrier:\ndemand: {orders: 10}\n"
        "faults:\n  - {system: wms, route: POST /, kind: error, rate: 0.1}\n"
    )
    loaded = scenario.load(
        path,
        ("carrier.api_version=v2", "demand.orders=25", "faults.0.rate=0.5", "warehouse.pickers=2"),
    )
    assert loaded.carrier.api_version == "v2" and loaded.demand.orders == 25
    assert loaded.faults[0].rate == 0.5 and loaded.warehouse.pickers == 2
    for override, said in (
        ("demand.orders=many", "--set demand.orders=many: demand.orders: Input should be"),
        ("faults.3.rate=1", "--set faults.3.rate=1: faults has no field 3"),
        ("seed.x=1", "--set seed.x=1: seed has no field x"),
        ("demand.orders", "--set demand.orders: give KEY=VALUE"),
        ("demand..orders=1", "--set demand..orders=1: give KEY=VALUE"),
        ("demand.orders=[1", "--set demand.orders=[1: the value is not valid YAML"),
    ):
        with pytest.raises(scenario.ScenarioError) as caught:
            scenario.load(path, (override,))
        assert caught.value.lines[0].startswith(said), caught.value.lines
