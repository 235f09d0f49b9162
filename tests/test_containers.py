"""The yard in containers, for real: the image `make containers` builds, the compose file, and
`--stack-image`, against podman's Docker-compatible API (docs/containers.md).

`make test` builds the image and starts the API first (`make containers`); these tests only
use them. They are skipped only where podman cannot run at all (not Linux, or neither podman
nor any Docker API here); a machine with podman but no image or no API service fails them,
saying to run `make containers`. Each test has its own ports, names and compose project, so
they run side by side under pytest-xdist.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import containers, oracles
from harness.compare.play import Side, command
from harness.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
LOCAL_API = ROOT / ".containers" / "podman.sock"  # where `make containers` starts podman's API
IMAGE = containers.default_image()
TWINYARD = [sys.executable, "-m", "harness"]
LAUNCHED = 2 * 2  # happy_day launches two SKUs a day, two orders right behind each
pytest_plugins = ("pytester",)
RUN_TIMEOUT_S = 240  # a 20-order day takes seconds; this only stops a hung CI job


def engine_url() -> str:
    """DOCKER_HOST if set, else the API `make containers` started, else the usual sockets."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if LOCAL_API.exists():
        return f"unix://{LOCAL_API}"
    return containers.engine_url()


def why_no_containers() -> str | None:
    """Why no container can run on this machine at all (the only reason to skip), or None."""
    if not sys.platform.startswith("linux"):
        return "containers need Linux here (podman, or Docker Engine)"
    if shutil.which("podman") is None:
        try:
            containers.client()
        except containers.ContainerError:
            return "podman is not installed and no Docker API answers (make containers sets one up)"
    return None


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """The Docker API client, with DOCKER_HOST set for the commands the tests run; a skip only
    where no container can run at all."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", engine_url())
        if (why := why_no_containers()) is not None:
            pytest.skip(why)
        try:
            api = containers.client()
            containers.image_present(api, IMAGE)
            missing = None
        except containers.ContainerError as exc:
            missing = f"{exc}: run `make containers` first"
        if missing is not None:
            pytest.fail(missing, pytrace=False)
        yield api


def compose_command() -> list[str]:
    if found := shutil.which("docker-compose"):
        return [found]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor docker compose is installed: run `make containers`")


def of_harness(api: Any, pid: int) -> list[str]:
    """The ids of the containers a harness process started, stopped ones included (listed
    without inspecting each: one may be removed meanwhile)."""
    found = api.api.containers(all=True, filters={"label": f"{containers.HARNESS_PID}={pid}"})
    return [c["Id"] for c in found]


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).is_success
    except httpx.HTTPError:
        return False


def verdict(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "verdict.json").read_text())


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TWINYARD, *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=ROOT,
        check=False,
        **kwargs,
    )


# -- the image ---------------------------------------------------------------------------------
def test_the_image_runs_as_a_user_of_its_own_with_its_version_and_a_healthcheck(engine: Any):
    image = engine.images.get(IMAGE)
    config = image.attrs["Config"]
    assert config["User"] == "twinyard"
    assert config["Labels"]["org.opencontainers.image.version"] == IMAGE.split(":")[1]
    assert config["Labels"]["org.opencontainers.image.title"] == "twinyard"
    assert "/_stack/health" in " ".join(healthcheck(image.attrs)["Test"])
    assert config["Cmd"] == ["python", "-m", "reference_stack"]
    assert config["StopSignal"] == "SIGINT"


def healthcheck(attrs: dict[str, Any]) -> dict[str, Any]:
    """The image's HEALTHCHECK: podman 4.3's Docker API leaves it out, its own CLI has it."""
    if "Healthcheck" in attrs["Config"]:
        return attrs["Config"]["Healthcheck"]
    done = podman("image", "inspect", "--format", "{{json .HealthCheck}}", attrs["Id"])
    return json.loads(done.stdout)


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    """podman's own CLI, with the configuration `make containers` wrote."""
    conf = ROOT / ".containers" / "containers.conf"
    env = {**os.environ, **({"CONTAINERS_CONF": str(conf)} if conf.exists() else {})}
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


# -- run --stack-image -------------------------------------------------------------------------
def test_a_day_against_a_stack_image_passes_and_leaves_no_container(engine: Any, tmp_path: Path):
    report = tmp_path / "report"
    args = ["run", "scenarios/happy_day.yaml", "--set", "demand.orders=20"]
    process = subprocess.Popen(
        [*TWINYARD, *args, "--stack-image", IMAGE, "--report-dir", str(report), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0, out
    said = verdict(report)
    assert said["passed"] and said["run"]["stack"] == f"image:{IMAGE}"
    assert said["counts"]["released"] == 20 + LAUNCHED
    assert (report / "stack.log").exists()
    assert of_harness(engine, process.pid) == []


def test_a_stack_image_is_restarted_with_its_files_kept(engine: Any, tmp_path: Path):
    """A scenario's stack_restarts on a container: killed (or stopped) and started again, the
    same container with its TWINYARD_RUN_DIR kept (a tmpfs would start empty), so the
    reference stack's SQLite carries its work through every restart, mid-call ones too."""
    report = tmp_path / "report"
    args = ["run", "scenarios/incidents/middleware_restarts.yaml", "--stack-image", IMAGE]
    process = subprocess.Popen(
        [*TWINYARD, *args, "--report-dir", str(report), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    said = verdict(report)
    assert process.returncode == 0, out + "\n".join(said["notes"])
    restarted = [n for n in said["notes"] if n.startswith("stack restart:")]
    assert len([n for n in restarted if "started again" in n]) == 7, restarted
    assert len([n for n in restarted if " during " in n]) == 5, restarted
    assert said["diagnosis"] == []  # deliveries refused while it was down are not its doing
    assert of_harness(engine, process.pid) == []


def test_a_killed_harness_leaves_no_container_behind(engine: Any, tmp_path: Path):
    """SIGKILL runs no finally: the watchdog the harness started removes the container."""
    process = subprocess.Popen(
        [*TWINYARD, "run", "--stack-image", IMAGE, "--report-dir", str(tmp_path), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: of_harness(engine, process.pid), 60, "no stack container started")
    finally:
        process.kill()
        process.wait()
    wait_for(lambda: not of_harness(engine, process.pid), 30, "the container was not removed")


def test_the_next_run_reaps_what_a_killed_harness_and_its_watchdog_left(
    engine: Any, tmp_path: Path
):
    process = subprocess.Popen(
        [*TWINYARD, "run", "--stack-image", IMAGE, "--report-dir", str(tmp_path / "a")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (left,) = wait_for(lambda: of_harness(engine, process.pid), 60, "no container started")
        watchdog = wait_for(lambda: watchdog_of(process.pid, left), 10, "no watchdog")
        os.kill(watchdog, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert of_harness(engine, process.pid) == [left]  # nobody removed it
    again = ["run", "--set", "demand.orders=5", "--stack-image", IMAGE, "--quiet"]
    second = run([*again, "--report-dir", str(tmp_path / "b")])
    assert second.returncode == 0, second.stdout + second.stderr
    assert of_harness(engine, process.pid) == []


def watchdog_of(harness: int, container_id: str) -> int | None:
    """The pid of the harness's child that watches ``container_id`` (not podman's conmon,
    whose command line names the container too)."""
    children: list[bytes] = []
    for task in Path(f"/proc/{harness}/task").glob("*"):
        try:
            children += (task / "children").read_bytes().split()
        except OSError:
            continue
    for child in children:
        try:
            argv = Path(f"/proc/{int(child)}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if container_id.encode() in argv:
            return int(child)
    return None


def test_a_stack_that_dies_at_start_leaves_its_exit_code_and_its_output(
    engine: Any, tmp_path: Path
):
    """No auto_remove: the reason a stack would not start stays readable."""
    stack = containers.ContainerStack(IMAGE, {}, tmp_path / "stack.log")
    try:
        code = wait_for(stack.exited, 60, "the stack did not exit")
    finally:
        stack.stop()
    assert code == 2
    assert "missing environment variable" in (tmp_path / "stack.log").read_text()
    assert engine.api.containers(all=True, filters={"name": stack.name}) == []


def test_a_missing_image_is_one_line_and_exit_code_2(engine: Any, tmp_path: Path):
    done = run(["run", "--stack-image", f"twinyard-missing-{uuid.uuid4().hex[:8]}:0"])
    assert done.returncode == 2
    assert done.stderr.startswith("twinyard: error: no image 'twinyard-missing-")
    assert len(done.stderr.strip().splitlines()) == 1


# -- the compose file --------------------------------------------------------------------------
def yard_env(folder: Path) -> tuple[Path, dict[str, str]]:
    """An env file like yard.env.example's on free ports, with secrets of this test's own."""
    base, stack_port = containers._free_block(4), free_port()
    values = {
        "YARD_IMAGE": IMAGE,
        "YARD_PORT_BASE": str(base),
        **{
            f"TWINYARD_{system.upper()}_URL": f"http://127.0.0.1:{base + i}"
            for i, system in enumerate(("erp", "wms", "tms", "carrier"))
        },
        "TWINYARD_STACK_PORT": str(stack_port),
        "TWINYARD_WEBHOOK_SECRET": uuid.uuid4().hex,
        "TWINYARD_CONTROL_TOKEN": uuid.uuid4().hex,
        "YARD_RUN_ARGS": "--set demand.orders=20",
    }
    path = folder / "yard.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path, values


class Compose:
    """docker-compose on one test's project and env file: ``compose("up", "-d")``."""

    def __init__(self, folder: Path) -> None:
        env_file, self.values = yard_env(folder)
        project = f"twinyard-test-{uuid.uuid4().hex[:10]}"
        self.argv = [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "-p", project]
        self.argv += ["--env-file", str(env_file)]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            cwd=ROOT,
            check=False,
        )


@pytest.fixture
def compose(engine: Any, tmp_path: Path) -> Iterator[Compose]:
    project = Compose(tmp_path)
    try:
        yield project
    finally:
        project("down", "--timeout", "10")


def test_compose_up_serves_the_simulators_and_the_stack_subscribed_to_them(compose: Compose):
    values = compose.values
    up = compose("up", "-d")
    assert up.returncode == 0, up.stderr
    stack = f"http://127.0.0.1:{values['TWINYARD_STACK_PORT']}"
    wait_for(lambda: answers(f"{stack}/_stack/health"), 60, "the stack was not healthy")
    for system in ("erp", "wms", "tms", "carrier"):
        url = values[f"TWINYARD_{system.upper()}_URL"]
        hooks = httpx.get(f"{url}/webhooks", timeout=5).json()["items"]
        assert [h["url"] for h in hooks] == [f"{stack}/webhooks/{system}"]
    if shutil.which(
        "podman"
    ):  # Docker runs the image's HEALTHCHECK by itself; podman needs systemd
        for container in compose("ps", "-q").stdout.split():
            assert podman("healthcheck", "run", container).returncode == 0, container
    token = {"Authorization": f"Bearer {values['TWINYARD_CONTROL_TOKEN']}"}
    erp = values["TWINYARD_ERP_URL"]
    assert httpx.post(f"{erp}/_sim/reset", json={}, timeout=5).status_code == 401
    assert httpx.post(f"{erp}/_sim/reset", json={}, headers=token, timeout=5).is_success


def test_twinyard_run_by_stack_url_plays_a_day_against_the_compose_stack(
    compose: Compose, tmp_path: Path
):
    """The run's own simulators take the yard's ports; the stack container, started first,
    waits for them and subscribes to them as it would to the vendors."""
    values = compose.values
    report = tmp_path / "report"
    stack = f"http://127.0.0.1:{values['TWINYARD_STACK_PORT']}"
    secrets = {k: values[k] for k in ("TWINYARD_WEBHOOK_SECRET", "TWINYARD_CONTROL_TOKEN")}
    up = compose("up", "-d", "stack")
    assert up.returncode == 0, up.stderr
    time.sleep(2)  # the stack is up and waiting before the day's simulators exist
    day = ["run", "scenarios/happy_day.yaml", "--set", "demand.orders=20", "--stack-url", stack]
    day += ["--port-base", values["YARD_PORT_BASE"], "--ready-timeout", "90"]
    process = subprocess.Popen(
        [*TWINYARD, *day, "--report-dir", str(report), "--quiet"],
        cwd=ROOT,
        env={**os.environ, **secrets},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, out
    said = verdict(report)
    assert (
        said["passed"]
        and said["run"]["stack"] == stack
        and said["counts"]["released"] == 20 + LAUNCHED
    )


def test_compose_day_service_plays_a_judged_day_in_containers(compose: Compose):
    done = compose("run", "--rm", "day")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "verdict: PASS" in done.stdout
    assert f"{20 + LAUNCHED} orders released" in done.stdout


# -- the pytest fixture ------------------------------------------------------------------------
def test_twinyard_yard_fixture_serves_simulators_and_a_stack_image(engine: Any, twinyard_yard):
    assert set(twinyard_yard) == {"erp", "wms", "tms", "carrier", "stack"}
    assert answers(f"{twinyard_yard['stack']}/_stack/health")
    hooks = httpx.get(f"{twinyard_yard['wms']}/webhooks", timeout=5).json()["items"]
    assert [h["url"] for h in hooks] == [f"{twinyard_yard['stack']}/webhooks/wms"]
    reset = httpx.post(
        f"{twinyard_yard['erp']}/_sim/reset", json={}, headers=twinyard_yard.headers, timeout=5
    )
    assert reset.is_success


def test_users_tests_get_the_yard_and_scenarios_play_against_a_stack_image(
    engine: Any, pytester: pytest.Pytester
):
    """What a team's own suite does: scenario files as tests, and its own tests with the yard,
    both against the image given by --twinyard-stack-image."""
    (pytester.mkdir("scenarios") / "short_day.yaml").write_text(
        'name: short_day\nseed: 16\ndemand: {orders: 10, open: "08:00", close: "10:00"}\n'
    )
    pytester.makepyfile(
        test_mine="""
        import httpx

        def test_my_adapter_sees_the_yard(twinyard_yard):
            assert httpx.get(twinyard_yard["stack"] + "/_stack/health").status_code == 200
            assert httpx.get(twinyard_yard["erp"] + "/_sim/clock").status_code == 200
        """
    )
    result = pytester.runpytest_subprocess(
        "scenarios/", "test_mine.py", "--twinyard-stack-image", IMAGE, "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=len(oracles.REGISTRY) + 1)
    played = verdict(pytester.path / "reports" / "pytest" / "short_day")
    assert played["run"]["stack"] == f"image:{IMAGE}"


# -- without an engine -------------------------------------------------------------------------
def test_no_engine_is_one_line_and_exit_code_2(tmp_path: Path):
    done = run(
        ["run", "--stack-image", IMAGE, "--report-dir", str(tmp_path)],
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("twinyard: error: no Docker or podman API answers at unix://")
    assert len(done.stderr.strip().splitlines()) == 1


def test_compare_plays_an_image_side_as_run_stack_image(tmp_path: Path):
    argv = command(Path("s.yaml"), Side("a", f"image:{IMAGE}"), None, tmp_path)
    assert argv[argv.index("--stack-image") + 1] == IMAGE
    assert "--stack-cmd" not in argv and "--stack-url" not in argv
