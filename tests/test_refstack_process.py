"""The reference stack as a process: configuration errors, start-up, subscription, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reference_stack.config import Config, ConfigError

REPO = Path(__file__).resolve().parent.parent
GOOD_ENV = {
    "TWINYARD_ERP_URL": "http://127.0.0.1:9001",
    "TWINYARD_WMS_URL": "http://127.0.0.1:9002/",
    "TWINYARD_TMS_URL": "http://127.0.0.1:9003",
    "TWINYARD_CARRIER_URL": "http://127.0.0.1:9004",
    "TWINYARD_WEBHOOK_SECRET": "s3cr3t",
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINYARD_", "REFSTACK_"))}
    return env | extra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_defaults_and_trailing_slashes() -> None:
    config = Config.from_env(GOOD_ENV)
    assert config.vendor_urls["wms"] == "http://127.0.0.1:9002"
    assert (config.port, config.workers, config.max_attempts) == (8700, 16, 8)
    assert (config.retry_base_s, config.retry_max_s) == (0.2, 5.0)
    database = config.database()  # a fresh temporary folder per start
    assert database.name == "refstack.db"
    shutil.rmtree(database.parent)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"TWINYARD_TMS_URL": "tms:9003"}, "TWINYARD_TMS_URL must be an http(s) URL"),
        ({"REFSTACK_WORKERS": "many"}, "REFSTACK_WORKERS must be an integer"),
        ({"REFSTACK_RETRY_BASE_S": "-1"}, "REFSTACK_RETRY_BASE_S must be >= 0.0"),
        ({"TWINYARD_STACK_PORT": "70000"}, "TWINYARD_STACK_PORT must be between 1 and 65535"),
    ],
)
def test_malformed_values_are_named(override: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_env(GOOD_ENV | override)


def run_stack(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reference_stack"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_configuration_is_one_line_and_exit_2() -> None:
    result = run_stack(clean_env(TWINYARD_ERP_URL="http://127.0.0.1:9001"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "reference_stack: missing environment variable(s): TWINYARD_WMS_URL, TWINYARD_TMS_URL,"
        " TWINYARD_CARRIER_URL, TWINYARD_WEBHOOK_SECRET"
    ]


def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(**GOOD_ENV, TWINYARD_STACK_PORT=str(port), REFSTACK_DB=str(tmp_path / "db"))
        result = run_stack(env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"reference_stack: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


async def test_starts_subscribes_reports_healthy_and_stops_on_sigterm(tmp_path: Path) -> None:
    subscriptions: list[dict[str, object]] = []

    async def subscribe(request: Request) -> JSONResponse:
        subscriptions.append(await request.json())
        return JSONResponse({"id": f"WH-{len(subscriptions):04d}"}, 201)

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse({"items": []})

    simulators = Starlette(
        routes=[
            Route("/webhooks", subscribe, methods=["POST"]),
            Route("/webhooks", listing, methods=["GET"]),
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sim_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(simulators, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    port = free_port()
    env = clean_env(
        **{var: sim_url for var in GOOD_ENV if var.endswith("_URL")},
        TWINYARD_WEBHOOK_SECRET="s3cr3t",
        TWINYARD_STACK_PORT=str(port),
        REFSTACK_DB=str(tmp_path / "stack.db"),
    )
    stack = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reference_stack",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 30
            while True:
                assert stack.returncode is None, await stack.stderr.read()  # type: ignore[union-attr]
                try:
                    if (await client.get("/_stack/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the stack never became healthy"
                await asyncio.sleep(0.02)
            assert (await client.get("/_stack/idle")).json()["idle"] is True
        urls = sorted(str(s["url"]) for s in subscriptions)
        assert urls == [
            f"http://127.0.0.1:{port}/webhooks/{system}"
            for system in ("carrier", "erp", "tms", "wms")
        ]
        stack.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(stack.wait(), 15) == 0
        assert (tmp_path / "stack.db").exists()
    finally:
        if stack.returncode is None:
            stack.kill()
            await stack.wait()
        server.should_exit = True
        await serving
        sock.close()
