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
