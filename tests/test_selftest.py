"""The scenario library catches every known defect, and the clean stack passes all of it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import uvloop

from harness import selftest
from harness.cli import DEFAULT_LIBRARY, main

# How many seeds beyond their own the clean library runs on here (0 in CI: each scenario's
# own seed is played clean by test_library_under_xdist.py, pytest -n 2 over the library, and
# a second clean pass cost CI two minutes). The false-alarm sweep is TWINYARD_CLEAN_SEEDS=20
# (or `twinyard selftest --clean-only --seeds 20`).
CLEAN_SEEDS = int(os.environ.get("TWINYARD_CLEAN_SEEDS", "0"))


def _result(scenario: str, defect: str, code: int, failed=None) -> selftest.Result:
    return selftest.Result(selftest.Cell(Path(f"{scenario}.yaml"), defect), code, 1.0, failed or {})


def test_the_matrix_fails_on_a_false_alarm_a_missed_defect_or_a_missed_declared_catch():
    good = [
        _result("a", selftest.CLEAN, 0),
        _result("a", "x", 1, {"orders_terminal": ["SO-1"]}),
        _result("a", "y", 0),
        _result("b", selftest.CLEAN, 0),
        _result("b", "x", 0),
        _result("b", "y", 1, {"stock_reconciled": ["SKU-1"]}),
    ]
    matrix = selftest.Matrix(["a", "b"], ["x", "y"], good, {"a": ["x"], "b": ["y"]})
    assert matrix.ok
    alarm = selftest.Matrix(["a", "b"], ["x", "y"], [*good[1:], _result("a", "", 1)], {})
    assert not alarm.ok and alarm.clean_failures()
    missed = selftest.Matrix(["a", "b"], ["x", "y"], [*good[:5], _result("b", "y", 0)], {})
    assert missed.missed_defects() == ["y"] and not missed.ok
    undeclared = selftest.Matrix(["a", "b"], ["x", "y"], good, {"b": ["x"]})
    assert undeclared.missed_declared() == [("b", "x")] and not undeclared.ok


def test_every_defect_is_declared_by_some_library_scenario():
    declared = selftest.declared_catches(selftest.library(DEFAULT_LIBRARY))
    assert {d for ds in declared.values() for d in ds} == set(selftest.DEFECTS)
    assert len(declared) >= 10


@pytest.mark.long(125)
@pytest.mark.e2e
def test_each_scenario_catches_its_defects_and_the_clean_stack_passes_its_seeds(tmp_path):
    files = selftest.library(DEFAULT_LIBRARY)
    declared = selftest.declared_catches(files)
    seeds: list[int | None] = list(range(1, CLEAN_SEEDS + 1))
    cells = [selftest.Cell(f, selftest.CLEAN, s) for s in seeds for f in files]
    cells += [selftest.Cell(f, d) for f in files for d in declared[f.stem]]
    results = uvloop.run(selftest.run_cells(cells, tmp_path, jobs=5))
    errors = [(r.cell.name, r.error) for r in results if not r.judged]
    assert not errors
    false_alarms = [(r.cell.name, r.failed) for r in results if not r.cell.defect and not r.passed]
    assert not false_alarms
    missed = [r.cell.name for r in results if r.cell.defect and not r.caught]
    assert not missed
    for r in results:
        if r.cell.defect:  # a catch names the oracle and the entities that broke it
            assert r.failed and all(entities for entities in r.failed.values())


def test_selftest_misuse_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["selftest", "--scenarios", str(tmp_path / "nowhere")]) == 2
    assert main(["selftest", "--defect", "no-such-bug"]) == 2
    assert main(["selftest", "--only", "no_such_scenario"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no_such_scenario" in err[2] and "label_response_lost" in err[2]
    assert len(err) == 3 and all(line.startswith("twinyard: error: ") for line in err)


async def test_a_run_that_crashes_without_a_verdict_is_an_error_not_a_catch(tmp_path, monkeypatch):
    crash = tmp_path / "crash.py"  # a "twinyard run" that dies with a traceback: exit 1
    crash.write_text("raise RuntimeError('boom')\n")
    python = tmp_path / "python-crash"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {crash}\n")
    python.chmod(0o755)
    monkeypatch.setattr(selftest.sys, "executable", str(python))
    result = await selftest.run_cell(selftest.Cell(Path("x.yaml"), "no-dedup"), tmp_path)
    assert result.exit_code == 1 and "RuntimeError: boom" in result.error
    assert not result.caught and not result.passed
    matrix = selftest.Matrix(["x"], ["no-dedup"], [result], {"x": ["no-dedup"]})
    assert matrix.errors() == [result] and not matrix.ok
