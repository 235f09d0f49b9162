"""What the commands print: ``--format json`` (the result alone on stdout, in the shapes
docs/cli.md documents, with the table's exit code), shell completion, and tables that keep
names whole when the output is a CI log rather than a terminal."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import bundled, scenario
from harness import settings as cli_settings
from harness.cli import main
from harness.oracles.base import Finding, OracleResult
from harness.report import terminal
from harness.runner import RunOutcome

CARRIER_V1 = str(bundled.OPENAPI / "carrier.yaml")
CARRIER_V2 = str(bundled.OPENAPI / "carrier.v2.yaml")
TINY_DAY = 'name: tiny\nseed: 3\ndemand: {orders: 2, open: "08:00", close: "09:00"}\n'


@pytest.fixture(autouse=True)
def no_settings(monkeypatch):
    """The developer's TWINYARD_* variables and pyproject.toml stay out of these runs."""
    monkeypatch.setenv(cli_settings.OFF, "1")


def run_json(argv: list[str], capsys) -> tuple[int, dict, str]:
    """Exit code, the parsed stdout (nothing but the JSON document), and stderr."""
    capsys.readouterr()
    code = main([*argv, "--format", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def table_code(argv: list[str], capsys) -> int:
    code = main([*argv, "--format", "table"])
    capsys.readouterr()
    return code


def test_contracts_diff_json_lists_every_change_breaking_first(capsys):
    argv = ["contracts", "diff", CARRIER_V1, CARRIER_V2]
    code, found, err = run_json(argv, capsys)
    assert err == ""
    assert set(found) == {"old", "new", "breaking", "non_breaking", "changes"}
    assert (found["old"], found["new"]) == (CARRIER_V1, CARRIER_V2)
    changes = found["changes"]
    assert found["breaking"] == sum(c["breaking"] for c in changes) > 0
    assert found["non_breaking"] == len(changes) - found["breaking"]
    assert all(set(c) == {"breaking", "operation", "where", "message"} for c in changes)
    flags = [c["breaking"] for c in changes]
    assert flags == sorted(flags, reverse=True)
    assert code == 1 == table_code(argv, capsys)


def test_contracts_check_json_has_every_interaction_with_its_problems(capsys):
    argv = ["contracts", "check", "--pacts", str(bundled.PACTS), "--openapi", CARRIER_V2]
    code, found, err = run_json([*argv, "--provider", "carrier"], capsys)
    assert err == ""
    assert set(found) == {"openapi", "passed", "counts", "pacts", "interactions"}
    assert [p["provider"] for p in found["pacts"]] == ["carrier"]
    counts, interactions = found["counts"], found["interactions"]
    assert (
        counts["total"] == len(interactions) == counts["broken"] + counts["ok"] + counts["skipped"]
    )
    keys = {"pact", "consumer", "provider", "description", "operation", "outcome", "skipped"}
    assert all(set(i) == keys | {"problems"} for i in interactions)
    broken = [i for i in interactions if i["outcome"] == "broken"]
    assert len(broken) == counts["broken"] > 0 and not found["passed"]
    assert all(any(p["breaking"] for p in i["problems"]) for i in broken)
    assert code == 1 == table_code([*argv, "--provider", "carrier"], capsys)


def test_validate_json_names_each_file_and_its_problems(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(TINY_DAY)
    bad.write_text("seed: x\ndemand: {orders: -1}\n")
    code, found, err = run_json(["validate", str(good), str(bad)], capsys)
    assert code == 2
    assert found["ok"] is False
    (first, second) = found["files"]
    assert first == {"path": str(good), "ok": True, "problems": []}
    assert second["path"] == str(bad) and not second["ok"] and len(second["problems"]) == 2
    assert all(p.startswith(f"{bad}:") for p in second["problems"])
    (line,) = err.splitlines()  # the usual error line, naming the first problem
    assert line.startswith(f"twinyard: error: {second['problems'][0]} (+1 more problem: ")
    assert table_code(["validate", str(good), str(bad)], capsys) == 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A two-order day played against the reference stack: a finished run to trace."""
    here = tmp_path_factory.mktemp("tiny")
    (here / "tiny.yaml").write_text(TINY_DAY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(cli_settings.OFF, "1")
        code = main(["run", str(here / "tiny.yaml"), "--quiet", "--report-dir", str(here / "r")])
    assert code in (0, 1)
    return here / "r"


@pytest.mark.e2e
def test_trace_json_is_the_order_in_each_system_and_its_exchanges(tiny_run, capsys):
    argv = ["trace", "SO-000001", "--run", str(tiny_run)]
    code, found, err = run_json(argv, capsys)
    assert code == 0 == table_code(argv, capsys) and err == ""
    assert set(found) == {
        "order_id",
        "order",
        "fulfilment_orders",
        "shipments",
        "labels",
        "correlation_ids",
        "exchanges",
    }
    assert found["order_id"] == found["order"]["id"] == "SO-000001"
    assert found["fulfilment_orders"] and found["exchanges"]
    times = [e["virtual_time"] for e in found["exchanges"]]
    assert times == sorted(times)
    assert {e["system"] for e in found["exchanges"]} >= {"erp", "wms"}


@pytest.mark.e2e
def test_selftest_json_is_the_matrix_on_stdout_and_progress_on_stderr(tmp_path, capsys):
    library = tmp_path / "library"
    library.mkdir()
    (library / "tiny.yaml").write_text(TINY_DAY)
    matrix_file = tmp_path / "matrix.json"
    argv = ["selftest", "--scenarios", str(library), "--clean-only", "--jobs", "1"]
    argv += ["--report-dir", str(tmp_path / "r"), "--json", str(matrix_file)]
    code, found, err = run_json(argv, capsys)
    assert "1 runs, 1 side by side" in err and "tiny--clean" in err
    assert set(found) == {
        "ok",
        "wall_s",
        "scenarios",
        "defects",
        "declared",
        "missed_defects",
        "missed_declared",
        "cells",
    }
    assert found["scenarios"] == ["tiny"] and found["defects"] == []
    (cell,) = found["cells"]
    assert cell["scenario"] == "tiny" and cell["defect"] is None
    assert cell["exit_code"] in (0, 1), cell["error"]  # judged, not refused: a clean run
    assert code == (0 if found["ok"] else 1)
    assert json.loads(matrix_file.read_text()) == found  # --json FILE still written


def test_show_completion_prints_the_script_of_the_shell_it_runs_in():
    """As a user types it in bash: the shell is detected from the parent process (under make's
    /bin/sh it would be sh, which click cannot complete)."""
    twinyard = Path(sys.executable).with_name("twinyard")
    done = subprocess.run(  # "; exit": bash stays the parent instead of exec-ing twinyard
        ["bash", "-c", f"{twinyard} --show-completion; exit $?"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    script = done.stdout
    assert "_twinyard_completion()" in script and "_TWINYARD_COMPLETE=complete_bash" in script
    assert "complete " in script and " twinyard" in script


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("twinyard ", {"run", "trace", "selftest", "contracts", "validate"}),
        ("twinyard contracts ", {"diff", "check", "fuzz", "verify"}),
        ("twinyard run --st", {"--stack-url", "--stack-cmd"}),
    ],
)
def test_bash_completion_protocol_completes_commands_and_options(
    words, expected, monkeypatch, capsys
):
    monkeypatch.setenv("_TWINYARD_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    assert main([]) == 0
    assert expected <= set(capsys.readouterr().out.split())


LONG = "one_wms_order_per_erp_order_even_when_the_release_is_redelivered_twice"


def _outcome() -> RunOutcome:
    finding = Finding("SO-000001", "two WMS orders hold the ERP order after a redelivery")
    return RunOutcome(
        scenario=scenario.Scenario(name="wide"),
        scenario_path=None,
        results=[OracleResult(LONG, "one order, once", 200, [finding])],
        counts={},
        wall_s=1.0,
        virtual_s=3600.0,
        steps=1,
    )


def test_a_ci_log_gets_whole_oracle_names(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    log = io.StringIO()  # not a terminal, as in CI
    terminal.render(_outcome(), terminal.console(file=log))
    assert LONG in log.getvalue()
    assert "…" not in log.getvalue()


def test_columns_is_honoured_and_a_narrow_table_folds_names_rather_than_cutting_them(
    monkeypatch,
):
    monkeypatch.setenv("COLUMNS", "60")
    log = io.StringIO()
    console = terminal.console(file=log)
    assert console.width == 60
    terminal.render(_outcome(), console)
    text = log.getvalue()
    assert "…" not in text
    cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert "".join(cells).startswith(LONG)  # every piece of the name, in order
