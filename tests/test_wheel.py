"""The built wheel carries its scenario library and contracts: installed into a fresh virtual
environment and run from an unrelated folder, ``run``, ``selftest --clean-only`` and
``contracts fuzz`` find their defaults through the package, not through a checkout.

The fresh environment gets the wheel itself; its dependencies are borrowed from the project's
environment through a ``.pth`` line (CI stays offline and fast; ``.pth`` lines are not followed
recursively, so the checkout's editable install stays out of reach and cannot hide a missing file).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support import LoopThread, serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding the wheel built from this checkout; returns its bin folder."""
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "dist"
    # Two xdist workers may each build this module's wheel: setuptools builds in the
    # checkout's build/, so two builds at once corrupt each other's wheel. One at a time.
    lock = tmp_path_factory.getbasetemp().parent / "wheel-build.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
            check=True,
            capture_output=True,
        )
    (wheel,) = wheels.glob("twinyard-*.whl")
    env_dir = base / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    fresh_python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [fresh_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(fresh_python), "install", "-q"]
    subprocess.run(
        [*pip, "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env_dir / "bin"


def twinyard(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [bin_dir / "twinyard", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_package_comes_from_the_wheel_not_the_checkout(installed, tmp_path):
    found = subprocess.run(
        [installed / "python", "-c", "import harness, reference_stack; print(harness.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(installed.parent) in found and str(ROOT) not in found


def test_run_plays_the_bundled_happy_day_from_another_folder(installed, tmp_path):
    done = twinyard(installed, tmp_path, "run", "--quiet", "--report-dir", "out")
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["scenario"]["name"] == "happy_day"
    assert verdict["passed"] is True


def test_selftest_finds_the_bundled_incident_library(installed, tmp_path):
    done = twinyard(
        installed, tmp_path, "selftest", "--clean-only", "--only", "label_response_lost"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "label_response_lost" in done.stdout


async def _accepting(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "accepted"}, 202)


def test_contracts_fuzz_uses_the_bundled_receiver_spec(installed, tmp_path):
    app = Starlette(routes=[Route("/{path:path}", _accepting, methods=["POST"])])
    loop = LoopThread()
    context = serving(app)
    try:
        url = loop.run(context.__aenter__())
        done = twinyard(
            installed,
            tmp_path,
            "contracts",
            "fuzz",
            "--url",
            url,
            "--secret",
            "s3cr3t",
            "--max-examples",
            "5",
        )
    finally:
        loop.run(context.__aexit__(None, None, None))
        loop.close()
    assert done.returncode in (0, 1), done.stdout + done.stderr  # findings are fine here
    assert "stack-webhooks.yaml" in done.stdout
    assert str(installed.parent) in done.stdout.replace("\n", "")
