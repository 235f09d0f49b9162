"""Test helpers: a real HTTP receiver on an ephemeral loopback port, and an event loop on a
thread for servers that blocking clients call into."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.hosting import bind, start_server

T = TypeVar("T")


class Receiver:
    """Records every POST; answers with the statuses it is given, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.on_request: Callable[[], None] | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)


@contextlib.asynccontextmanager
async def serving(app) -> AsyncIterator[str]:
    sock = bind("127.0.0.1", 0)
    server = await start_server(app, sock)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await server.shutdown(sockets=[sock])
        sock.close()


class LoopThread:
    """A uvloop event loop on a daemon thread, for servers a blocking client calls into.

    uvloop, not asyncio's default loop: on sockets made by ``hosting.bind`` the default loop
    leaves Nagle's algorithm on, and each response then waits ~40 ms for a delayed ACK.
    """

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def world_events(env: Any, at: list[float], log: list[float]) -> None:
    """A SimPy world that only logs the virtual times it was played at."""

    def happen(t: float):
        yield env.timeout(t)
        log.append(env.now)

    for t in at:
        env.process(happen(t))


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (briefly polling) until ``predicate`` holds; fail after ``timeout`` wall seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


def judge_one(name: str, snapshots: dict, journals: dict | None = None) -> Any:
    """One oracle's result on (possibly corrupted) snapshots."""
    from harness import oracles

    (result,) = oracles.judge(oracles.SystemsView(snapshots, journals), [name])
    return result


def only_finding(result: Any) -> Any:
    """The single finding of a failed oracle result."""
    assert not result.passed
    assert len(result.findings) == 1, result.findings
    return result.findings[0]


def play(scenario_path: str | Path, report_dir: Path, defects: str = "") -> Any:
    """Play a scenario against the reference stack (with ``defects`` switched on) and write
    every report ``twinyard run`` writes; the run's outcome."""
    from harness import scenario as scenarios
    from harness.report import html, junit, run_files, verdict_json
    from harness.runner import RunConfig, run

    config = RunConfig(
        scenario=scenarios.load(scenario_path),
        scenario_path=str(scenario_path),
        report_dir=report_dir,
        stack_env={"REFSTACK_DEFECTS": defects} if defects else {},
    )
    outcome = uvloop.run(run(config))
    for report in (verdict_json, junit, run_files, html):
        report.write(outcome, report_dir)
    return outcome


def four_free_ports(host: str = "127.0.0.1") -> int:
    """A port N with N..N+3 free just now (for --port-base), retried when another test's
    socket sits in the range."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((host, 0))
            base = probe.getsockname()[1]
        if base + 3 > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                socks.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no four consecutive free ports")


def snapshots_of(scenario_text: str) -> dict[str, dict[str, Any]]:
    """Every simulator's final state after the world alone played the day (no stack)."""
    from harness import scenario
    from harness.world.integrator import play

    played = play(scenario.parse(scenario_text))
    return {system: model.snapshot() for system, model in played.models.items()}
