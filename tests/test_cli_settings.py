"""Options from the command line, TWINYARD_<COMMAND>_<OPTION> variables and pyproject.toml,
in that order, with a bad value named by where it came from; and run's stack options
(--health-path, --ready-timeout), which are read like every other option."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness import scenario, settings
from harness.cli import main
from harness.runner import URL_READY_S, ConfigError, RunConfig, run
from harness.stack import StackError, StackProbe
from tests.support import LoopThread, four_free_ports, serving

TINY_DAY = 'name: tiny\nseed: 3\ndemand: {orders: 2, open: "08:00", close: "09:00"}\n'


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project folder as the current folder, no TWINYARD_* variable set."""
    for name in [n for n in os.environ if n.upper().startswith("TWINYARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pyproject(folder: Path, text: str) -> None:
    (folder / "pyproject.toml").write_text(f'[project]\nname = "mine"\n{text}')


def one_error(capsys) -> str:
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("twinyard: error: ")
    return line.removeprefix("twinyard: error: ")


def validate_format(capsys) -> str:
    """Which format `twinyard validate` printed in: the observable end of the precedence."""
    Path("ok.yaml").write_text(TINY_DAY)
    assert main(["validate", "ok.yaml"]) == 0
    out = capsys.readouterr().out
    return "json" if out.startswith("{") else "table"


def test_command_line_beats_variable_beats_pyproject_beats_default(project, monkeypatch, capsys):
    assert validate_format(capsys) == "table"
    pyproject(project, '[tool.twinyard.validate]\nformat = "json"\n')
    assert validate_format(capsys) == "json"
    monkeypatch.setenv("TWINYARD_VALIDATE_FORMAT", "table")
    assert validate_format(capsys) == "table"
    assert main(["validate", "ok.yaml", "--format", "json"]) == 0
    assert capsys.readouterr().out.startswith("{")
    monkeypatch.setenv("TWINYARD_VALIDATE_FORMAT", "")  # empty: as if unset
    assert validate_format(capsys) == "json"
    monkeypatch.setenv(settings.OFF, "1")  # neither variables nor the file
    assert validate_format(capsys) == "table"


def test_the_nearest_pyproject_counts_and_its_relative_paths_start_beside_it(
    project, monkeypatch, capsys
):
    pyproject(project, '[tool.twinyard.trace]\nrun = "reports/day1"\n')
    deeper = project / "src" / "pkg"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    assert main(["trace", "SO-000001"]) == 2
    assert one_error(capsys).startswith(f"no run in {project / 'reports' / 'day1'} ")
    pyproject(project / "src", "")  # a nearer pyproject.toml without [tool.twinyard]: none
    assert main(["trace", "SO-000001"]) == 2
    assert one_error(capsys).startswith("no run in reports/latest ")


def test_a_bad_value_names_its_variable_or_its_pyproject_key(project, monkeypatch, capsys):
    monkeypatch.setenv("TWINYARD_RUN_PORT_BASE", "70000")
    assert main(["run"]) == 2
    assert one_error(capsys).startswith("TWINYARD_RUN_PORT_BASE (--port-base): ")
    monkeypatch.delenv("TWINYARD_RUN_PORT_BASE")
    pyproject(project, '[tool.twinyard.contracts.fuzz]\nurl = "localhost:8700"\n')
    assert main(["contracts", "fuzz", "--secret", "s"]) == 2
    where = f"{project / 'pyproject.toml'} [tool.twinyard.contracts.fuzz] url (--url): "
    assert one_error(capsys) == f"{where}localhost:8700 is not an http(s) URL, e.g. " + (
        "http://localhost:8700"
    )
    monkeypatch.setenv("TWINYARD_CONTRACTS_VERIFY_VERBOSE", "maybe")
    assert main(["contracts", "verify"]) == 2
    assert one_error(capsys).startswith("TWINYARD_CONTRACTS_VERIFY_VERBOSE (--verbose): ")
    monkeypatch.delenv("TWINYARD_CONTRACTS_VERIFY_VERBOSE")
    monkeypatch.setenv("TWINYARD_LIMIT_BODY_BYTES", "abc")  # a simulator limit (docs/limits.md)
    assert main(["run"]) == 2
    assert one_error(capsys) == "TWINYARD_LIMIT_BODY_BYTES must be a positive int, not 'abc'"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[tool.twinyard.rnu]\nseed = 1\n", "[tool.twinyard.rnu]: twinyard has no such command"),
        ("[tool.twinyard.run]\nstak_url = 1\n", "[tool.twinyard.run] stak_url: no such option"),
        ("[tool.twinyard.contracts]\nurl = 1\n", "[tool.twinyard.contracts.url]: twinyard has"),
        ("[tool.twinyard]\nrun = 1\n", "[tool.twinyard.run]: must be a table"),
        ("[tool.twinyard.run\n", "pyproject.toml: not valid TOML"),
    ],
)
def test_a_pyproject_twinyard_does_not_understand_is_one_line_exit_2(text, words, project, capsys):
    pyproject(project, text)
    assert main(["validate", "x.yaml"]) == 2
    assert words in one_error(capsys)


def test_every_command_reads_them_without_code_of_its_own(project, monkeypatch, capsys):
    monkeypatch.setenv("TWINYARD_SIMS_CARRIER_API_VERSION", "v9")  # checked inside `sims`
    assert main(["sims"]) == 2
    assert "'v9'" in one_error(capsys)
    monkeypatch.setenv("TWINYARD_SELFTEST_DEFECT", "no-such-bug, nor-this")  # a list
    assert main(["selftest"]) == 2
    assert one_error(capsys).startswith("unknown defect(s) no-such-bug, nor-this;")


def test_the_webhook_secret_variable_still_works_and_wins(project, monkeypatch, capsys):
    seen: list[tuple[str, str]] = []

    def fuzz(url, secret, *args, **kwargs):
        from harness.contracts.fuzz import FuzzError

        seen.append((url, secret))
        raise FuzzError("stopped here by the test")

    monkeypatch.setattr("harness.contracts.fuzz.run", fuzz)
    monkeypatch.setenv("TWINYARD_CONTRACTS_FUZZ_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TWINYARD_CONTRACTS_FUZZ_SECRET", "generic")
    assert main(["contracts", "fuzz"]) == 2
    monkeypatch.setenv("TWINYARD_WEBHOOK_SECRET", "shared")  # the older name, its own variable
    assert main(["contracts", "fuzz"]) == 2
    assert main(["contracts", "fuzz", "--secret", "typed"]) == 2
    capsys.readouterr()
    assert seen == [
        ("http://127.0.0.1:9", "generic"),
        ("http://127.0.0.1:9", "shared"),
        ("http://127.0.0.1:9", "typed"),
    ]


@pytest.mark.e2e
def test_the_runs_selftest_plays_ignore_the_users_run_settings(project, monkeypatch, capsys):
    """A user's TWINYARD_RUN_STACK_URL must not send selftest's clean runs to their stack."""
    library = project / "library"
    library.mkdir()
    (library / "tiny.yaml").write_text(TINY_DAY)
    monkeypatch.setenv("TWINYARD_RUN_STACK_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TWINYARD_RUN_READY_TIMEOUT", "0.2")
    argv = ["selftest", "--scenarios", str(library), "--clean-only", "--jobs", "1"]
    main([*argv, "--report-dir", str(project / "r"), "--format", "json"])
    (cell,) = json.loads(capsys.readouterr().out)["cells"]
    assert cell["exit_code"] in (0, 1), cell["error"]  # played on the reference stack
    assert settings.OFF not in os.environ  # and put back after


# --- run's stack options: --health-path and --ready-timeout, for a stack given by URL ---


class FakeStack:
    """A stack that is ready only at ``ready``, always idle, and refuses the rest (503)."""

    def __init__(self, ready: str) -> None:
        self.ready = ready
        self.asked: list[str] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.answer, methods=["GET", "POST"])])

    async def answer(self, request: Request) -> Response:
        path = request.url.path
        self.asked.append(path)
        if path == "/_stack/idle":
            return JSONResponse({"idle": True})
        return Response(status_code=200 if path == self.ready else 503)


@pytest.fixture
def fake_stack() -> Iterator[tuple[FakeStack, str]]:
    stack, thread = FakeStack("/custom/ready"), LoopThread()
    served = serving(stack.app)
    url = thread.run(served.__aenter__())
    try:
        yield stack, url
    finally:
        thread.run(served.__aexit__(None, None, None))
        thread.close()


def test_health_path_and_ready_timeout_from_settings_govern_a_stack_by_url(
    fake_stack, project, monkeypatch, capsys
):
    stack, url = fake_stack
    (project / "day.yaml").write_text(TINY_DAY)
    monkeypatch.setenv("TWINYARD_RUN_HEALTH_PATH", "/custom/starting")  # always 503
    argv = ["run", "day.yaml", "--stack-url", url, "--port-base", str(four_free_ports())]
    started = time.monotonic()
    assert main([*argv, "--ready-timeout", "0.4", "--quiet", "--report-dir", "r"]) == 2
    waited = time.monotonic() - started
    error = one_error(capsys)
    assert error.startswith(f"the stack at {url} was not ready after 0 s")
    assert error.endswith("(GET /custom/starting: HTTP 503)")
    assert set(stack.asked) == {"/custom/starting"}
    assert 0.4 <= waited < URL_READY_S  # its own timeout, not the 3 s default for a URL


async def test_a_stack_by_url_is_ready_at_its_health_path(fake_stack, tmp_path):
    stack, url = fake_stack

    class Played(Exception):
        pass

    def first_step(world, process):
        raise Played  # ready, subscribed and stepping: enough

    config = RunConfig(
        scenario=scenario.parse(TINY_DAY),
        stack_url=url,
        report_dir=tmp_path,
        health_path="/custom/ready",
        on_step=first_step,
    )
    with pytest.raises(Played):
        await run(config)
    assert stack.asked[0] == "/custom/ready"


@pytest.mark.parametrize(("given", "used"), [(None, URL_READY_S), (42.0, 42.0)])
async def test_ready_timeout_is_not_capped_for_a_stack_by_url(given, used, monkeypatch, tmp_path):
    waits: list[tuple[float, str]] = []

    async def wait_ready(probe, timeout_s, process=None):
        waits.append((timeout_s, probe.health_path))
        raise StackError("stopped here by the test")

    monkeypatch.setattr(StackProbe, "wait_ready", wait_ready)
    config = RunConfig(
        scenario=scenario.parse(TINY_DAY),
        stack_url="http://127.0.0.1:9",
        report_dir=tmp_path,
        ready_timeout_s=given,
        health_path="/up",
    )
    with pytest.raises(ConfigError, match="stopped here"):
        await run(config)
    assert waits == [(used, "/up")]
