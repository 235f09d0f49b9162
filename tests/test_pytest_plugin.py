"""The pytest plugin: scenario files are test items, one per oracle; fixtures for own tests."""

from __future__ import annotations

import pytest

from harness import oracles

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.e2e

SHORT_DAY = """
name: short_day
seed: 16
demand: {orders: 30, open: "08:00", close: "10:00"}
warehouse: {short_pick_rate: 0.3}
"""


def _scenarios(pytester: pytest.Pytester, **files: str) -> None:
    folder = pytester.mkdir("scenarios")
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)


def test_each_oracle_of_each_scenario_is_a_passing_test(pytester: pytest.Pytester):
    _scenarios(pytester, short_day=SHORT_DAY)
    result = pytester.runpytest_subprocess("scenarios/", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(oracles.REGISTRY))
    result.stdout.fnmatch_lines(["*short_day.yaml::short_becomes_backorder PASSED*"])


def test_a_broken_stack_fails_the_oracles_it_breaks_with_readable_evidence(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    _scenarios(pytester, short_day=SHORT_DAY)
    monkeypatch.setenv("REFSTACK_DEFECTS", "ordered-qty")
    result = pytester.runpytest_subprocess("scenarios/", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1 and outcomes["passed"] >= 10
    result.stdout.fnmatch_lines(
        [
            "*short_becomes_backorder (short_day)*",
            "short_becomes_backorder failed for * of * checked",
            "  protects: *",
            "  SO-0000* line *: FO-0000* picked * short; ERP backorders hold 0",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_broken_scenario_file_is_one_failing_item_naming_file_line_and_field(
    pytester: pytest.Pytester,
):
    _scenarios(pytester, typo="name: typo\ndemand: {orders: -3}\n")
    result = pytester.runpytest_subprocess("scenarios/", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*typo.yaml:2: demand.orders: *"])


def test_fixtures_serve_simulators_and_run_scenarios(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import httpx

        def test_sims(twinyard_sims):
            assert set(twinyard_sims) == {"erp", "wms", "tms", "carrier"}
            for url in twinyard_sims.values():
                assert httpx.get(f"{url}/_sim/health").status_code == 200

        def test_run(twinyard_run):
            outcome = twinyard_run(text="seed: 2\\ndemand: {orders: 10}")
            assert outcome.passed
            assert outcome.counts["released"] == 10
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_only_twinyard_scenarios_are_collected_under_scenarios(pytester: pytest.Pytester):
    _scenarios(
        pytester,
        deployment="apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n",
        ci="stages: [test]\nvariables: {A: b}\n",
        typo="name: typo\ndemand: {orders: -3}\n",  # a scenario, broken: still collected
    )
    result = pytester.runpytest_subprocess("scenarios/", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*typo.yaml::scenario*"])
    assert "deployment" not in result.stdout.str() and "ci.yaml" not in result.stdout.str()


def test_an_unplayable_scenario_is_played_once_and_fails_once(pytester: pytest.Pytester):
    _scenarios(pytester, short_day=SHORT_DAY)
    result = pytester.runpytest_subprocess(
        "scenarios/", "-p", "no:cacheprovider", "--twinyard-stack-url", "http://127.0.0.1:9"
    )
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    assert outcomes["skipped"] == len(oracles.REGISTRY) - 1
    result.stdout.fnmatch_lines(["*short_day.yaml could not be played: *not ready*"])
    assert "Traceback" not in result.stdout.str()


def test_options_come_from_the_ini_file_and_paths_from_the_rootdir(pytester: pytest.Pytester):
    _scenarios(pytester, short_day=SHORT_DAY)
    pytester.makeini("[pytest]\ntwinyard_report_dir = out/tw\n")
    sub = pytester.mkdir("elsewhere")
    result = pytester.runpytest_subprocess(
        str(pytester.path / "scenarios"), "-p", "no:cacheprovider", "-q", "--rootdir", "."
    )
    result.assert_outcomes(passed=len(oracles.REGISTRY))
    assert (pytester.path / "out" / "tw" / "short_day" / "verdict.json").is_file()
    assert not (sub / "out").exists()


@pytest.mark.twinyard_sims(skus=3, stock=7)
def test_twinyard_sims_takes_options_from_a_marker(twinyard_sims):
    import httpx

    stock = httpx.get(f"{twinyard_sims['wms']}/_sim/state").json()["stock"]
    assert len(stock) == 3 and set(stock.values()) == {7}


def test_twinyard_sims_has_a_session_scoped_form(twinyard_sims_session):
    import httpx

    assert httpx.get(f"{twinyard_sims_session['erp']}/_sim/health").status_code == 200
