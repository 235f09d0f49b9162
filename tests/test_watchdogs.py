"""No run without an end: a request stuck in flight is named and let go, a body or headers that
never come are answered 408, a step that cannot get quiet says what held it, and --max-wall
stops a whole run. Real sockets throughout; the limits are lowered so each test takes seconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import simpy
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import simulators
from harness import hosting, scenario
from harness.cli import main
from harness.clock import LockstepClock
from harness.lockstep import Lockstep
from harness.pytest_plugin import _seconds
from harness.runner import ConfigError, RunConfig, run
from harness.stack import Idle, StackProbe
from simulators.common.clock import DEFAULT_EPOCH
from simulators.common.faults import Fault
from simulators.common.simulator import Simulator
from tests.support import serving, until, world_events

pytest_plugins = ("pytester",)

STUCK_HEAD = (
    "POST /fulfilment-orders HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 100\r\n"
    "X-Correlation-Id: SO-000042\r\n"
    "\r\n"
)
FIRST_TEN = b'{"order_re'  # the body stops here, 90 bytes short


class Probe:
    """A stack's idle probe that says what it is told."""

    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.app = Starlette(routes=[Route("/_stack/idle", self._idle)])

    async def _idle(self, request: Request) -> JSONResponse:
        return JSONResponse({"idle": not self.busy})


@contextlib.asynccontextmanager
async def served(sim: Simulator) -> AsyncIterator[hosting.Hosted]:
    hosted = await hosting.serve([sim], [0])
    try:
        yield hosted[0]
    finally:
        await hosting.shutdown(hosted)


async def stuck_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Headers announcing 100 bytes of body, 10 of them, then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(STUCK_HEAD.encode() + FIRST_TEN)
    await writer.drain()
    return reader, writer


async def response(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, bytes]:
    """The next response's status and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = re.search(rb"content-length: (\d+)", head, re.I)
    assert length is not None, head
    body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), timeout)
    return int(head.split()[1]), body


async def answer(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server closed the connection after it."""
    status, body = await response(reader, timeout)
    closed = await asyncio.wait_for(reader.read(1), timeout) == b""
    return status, body, closed


def lockstep(sim: Simulator, clock: LockstepClock, probe: StackProbe, **limits: float):
    env, log = simpy.Environment(), []
    world_events(env, [100.0], log)
    driver = Lockstep(env, clock, [sim], probe, horizon_s=1_000, settle_s=0.01, **limits)
    return driver, log


# -- the request watchdog ----------------------------------------------------------------------
async def test_a_body_stuck_mid_way_is_in_flight_until_the_request_watchdog_names_it():
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = simulators.build("wms", clock)
    async with served(sim) as item, serving(Probe().app) as stack:
        reader, writer = await stuck_client(item.port)
        client_port = writer.get_extra_info("sockname")[1]
        # uvicorn hands the request to the app once its headers are in: it counts as in
        # flight while the simulator waits for the rest of its body
        await until(lambda: sim.inflight == 1)
        (request,) = sim.requests.values()
        await until(lambda: request.received == 10)
        assert request.reading and request.expected == 100

        probe = StackProbe(stack, "/_stack/idle")
        driver, log = lockstep(sim, clock, probe, request_watchdog_s=0.5)
        started = time.monotonic()
        await asyncio.wait_for(driver.run(), 10)
        assert time.monotonic() - started < 3  # not the 60 s of the step watchdog
        await probe.close()
        assert log == [100.0]  # the day went on without it
        (note,) = driver.stalls
        assert note.startswith(
            f"wms POST /fulfilment-orders from 127.0.0.1:{client_port} (correlation SO-000042) "
            "in flight for "
        ), note
        assert note.endswith(
            "s wall at 00:00:00 (day 0), waiting for its body (10 of 100 bytes received); "
            "advanced without it"
        ), note
        assert sim.inflight == 0 and sim.quiet() and request.excused

        # the rest of the body comes after all: answered and journalled, counted once
        writer.write(b"x" * 90)
        status, body = await response(reader)
        writer.close()
    assert status == 400 and orjson.loads(body)["error"]["code"] == "malformed_json"
    (entry,) = sim.journal.entries
    assert (entry.correlation_id, entry.status, entry.error) == ("SO-000042", 400, "malformed_json")
    assert sim.inflight == 0 and not sim.requests


async def test_a_delay_the_vendor_makes_on_purpose_is_waited_for_not_let_go():
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = simulators.build("wms", clock)
    sim.faults.add(Fault(system="wms", kind="latency", ms=1200))  # longer than the watchdog
    async with (
        served(sim) as item,
        serving(Probe().app) as stack,
        httpx.AsyncClient(base_url=item.url) as http,
    ):
        slow = asyncio.create_task(http.get("/inventory"))
        await until(lambda: sim.inflight == 1)
        probe = StackProbe(stack, "/_stack/idle")
        driver, log = lockstep(sim, clock, probe, request_watchdog_s=0.3)
        await asyncio.wait_for(driver.run(), 10)
        await probe.close()
        assert slow.done() and (await slow).status_code == 200  # waited for, answered
    assert log == [100.0] and driver.stalls == []


# -- slow-connection limits on the listeners ---------------------------------------------------
@pytest.mark.parametrize("path", ["/fulfilment-orders", "/_sim/faults"])
async def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(monkeypatch, path):
    monkeypatch.setattr("simulators.common.simulator.BODY_TIMEOUT_S", 0.5)
    sim = simulators.build("wms", LockstepClock(DEFAULT_EPOCH))
    async with served(sim) as item:
        reader, writer = await asyncio.open_connection("127.0.0.1", item.port)
        writer.write(STUCK_HEAD.replace("/fulfilment-orders", path).encode() + FIRST_TEN)
        started = time.monotonic()
        status, body, closed = await answer(reader)
        waited = time.monotonic() - started
        writer.close()
    assert 0.4 < waited < 3
    assert status == 408 and closed
    error = orjson.loads(body)["error"]
    assert error["code"] == "request_timeout"
    assert error["details"] == {"received": 10, "expected": 100}
    assert sim.inflight == 0 and not sim.requests
    (line,) = sim.slow_clients
    assert line.startswith(f"wms answered 408 request_timeout to POST {path} from 127.0.0.1:")
    assert line.endswith("(correlation SO-000042): 10 of 100 body bytes in 0.5 s")
    if path.startswith("/_sim/"):
        assert not sim.journal.entries  # the control plane is never journalled
    else:
        (entry,) = sim.journal.entries
        assert (entry.status, entry.error, entry.correlation_id) == (
            408,
            "request_timeout",
            "SO-000042",
        )


async def test_headers_that_never_end_and_a_silent_connection_are_let_go(monkeypatch):
    monkeypatch.setattr(hosting, "HEADER_TIMEOUT_S", 0.5)
    sim = simulators.build("wms", LockstepClock(DEFAULT_EPOCH))
    async with served(sim) as item:
        reader, writer = await asyncio.open_connection("127.0.0.1", item.port)
        writer.write(b"POST /fulfilment-orders HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end
        silent_reader, silent = await asyncio.open_connection("127.0.0.1", item.port)
        status, body, closed = await answer(reader)
        assert status == 408 and closed
        assert orjson.loads(body)["error"]["code"] == "request_timeout"
        assert await asyncio.wait_for(silent_reader.read(), 5)  # a 408 and the end, too
        # a kept-alive connection is timed again from the first bytes of its next request
        reader, kept = await asyncio.open_connection("127.0.0.1", item.port)
        kept.write(b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await response(reader))[0] == 200
        kept.write(b"GET /_sim/health HTTP/1.1\r\n")  # the next request, cut short
        status, _, closed = await answer(reader)
        assert status == 408 and closed
        for w in (writer, silent, kept):
            w.close()
    assert len(sim.slow_clients) == 3
    assert all(
        re.fullmatch(
            r"wms closed a connection from 127\.0\.0\.1:\d+ that sent no complete request "
            r"headers within 0\.5 s \(408\)",
            line,
        )
        for line in sim.slow_clients
    ), sim.slow_clients
    assert not sim.journal.entries  # nothing reached the app


# -- the step watchdog -------------------------------------------------------------------------
async def test_a_step_that_cannot_get_quiet_names_the_delivery_on_the_wire():
    released = asyncio.Event()

    async def never_answers(request: Request) -> Response:
        await released.wait()
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", never_answers, methods=["POST"])])
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = simulators.build("erp", clock)
    await sim.start()
    try:
        async with serving(receiver) as hook, serving(Probe().app) as stack:
            sim.webhooks.subscribe(f"{hook}/hook", ["*"], "s3cr3t")
            env = simpy.Environment()

            def release_an_order():
                yield env.timeout(100.0)
                sim.webhooks.publish("order.released", {"order_id": "SO-000007"})

            env.process(release_an_order())
            probe = StackProbe(stack, "/_stack/idle")
            driver = Lockstep(
                env, clock, [sim], probe, horizon_s=1_000, settle_s=0.01, stall_timeout_s=0.5
            )
            started = time.monotonic()
            await asyncio.wait_for(driver.run(), 10)
            assert time.monotonic() - started < 3
            await probe.close()
            released.set()
    finally:
        await sim.stop()
    (note,) = driver.stalls
    assert re.fullmatch(
        r"not quiet within the step watchdog \(0\.5 s wall\) at 00:01:40 \(day 0\): "
        r"deliveries on the wire: erp order\.released DL-\d+ \(attempt 1\) to "
        + re.escape(f"{hook}/hook")
        + r" since 00:01:40 \(day 0\), \d+\.\d s on the wire; advanced anyway",
        note,
    ), note


async def test_a_step_held_by_a_busy_probe_says_so():
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = simulators.build("tms", clock)
    async with serving(Probe(busy=True).app) as stack:
        probe = StackProbe(stack, "/_stack/idle")
        driver, log = lockstep(sim, clock, probe, stall_timeout_s=0.3)
        await asyncio.wait_for(driver.run(), 10)
        await probe.close()
    assert log == [100.0]
    assert driver.stalls[0] == (
        "not quiet within the step watchdog (0.3 s wall) at 00:00:00 (day 0): the stack's "
        "probe (GET /_stack/idle) said busy; advanced anyway"
    )


async def test_a_probe_busy_with_nothing_on_the_wire_costs_one_watchdog_not_one_per_step():
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = simulators.build("tms", clock)
    env, log = simpy.Environment(), []
    world_events(env, [100.0, 200.0, 300.0], log)
    async with serving(Probe(busy=True).app) as stack:
        probe = StackProbe(stack, "/_stack/idle")
        driver = Lockstep(
            env, clock, [sim], probe, horizon_s=1_000, settle_s=0.01, stall_timeout_s=0.3
        )
        await asyncio.wait_for(driver.run(), 10)
        await probe.close()
    assert log == [100.0, 200.0, 300.0]
    assert len(driver.stalls) == 2, driver.stalls
    assert driver.stalls[0].startswith("not quiet within the step watchdog (0.3 s wall)")
    assert driver.stalls[1] == (
        "the stack's probe (GET /_stack/idle) said busy for a whole step watchdog while it "
        "called no simulator: from 00:00:00 (day 0) on, quiet is judged without it, as for a "
        "stack with no probe"
    )
    assert not probe.has_probe


async def test_a_wedged_stack_refusing_every_delivery_costs_one_watchdog_not_one_per_step():
    """A stack whose worker died says busy for ever and answers every webhook 500: the
    deliveries it refuses move the wire, but they are not its work."""
    clock = LockstepClock(DEFAULT_EPOCH)
    sim = simulators.build("erp", clock)
    stack_probe = Probe()

    async def wedged(request: Request) -> Response:
        stack_probe.busy = True  # its first event killed the worker: busy from now on
        return Response(status_code=500)

    receiver = Starlette(routes=[Route("/hook", wedged, methods=["POST"])])
    env, log = simpy.Environment(), []

    def release_orders():
        for n in (1, 2, 3):
            yield env.timeout(100.0)
            log.append(env.now)
            sim.webhooks.publish("order.released", {"order_id": f"SO-00000{n}"})

    env.process(release_orders())
    await sim.start()
    try:
        async with serving(receiver) as hook, serving(stack_probe.app) as stack:
            sim.webhooks.subscribe(f"{hook}/hook", ["*"], "s3cr3t")
            probe = StackProbe(stack, "/_stack/idle")
            driver = Lockstep(
                env, clock, [sim], probe, horizon_s=1_000, settle_s=0.01, stall_timeout_s=0.3
            )
            await asyncio.wait_for(driver.run(), 20)
            await probe.close()
    finally:
        await sim.stop()
    assert log == [100.0, 200.0, 300.0]
    assert any(e.direction == "out" and e.status == 500 for e in sim.journal.entries)
    watchdogs = [n for n in driver.stalls if n.startswith("not quiet within the step watchdog")]
    assert len(watchdogs) == 1, driver.stalls
    assert not probe.has_probe


# -- a whole run -------------------------------------------------------------------------------
TINY_DAY = """
name: tiny_day
seed: 3
horizon_days: 3
demand: {orders: 3}
"""


@pytest.mark.e2e  # the reference stack, as a process
def test_a_run_with_one_connection_stuck_forever_ends_with_a_note_naming_it(tmp_path, monkeypatch):
    hosted: dict[str, hosting.Hosted] = {}
    serve = hosting.serve

    async def keep(sims, ports, host=hosting.LOOPBACK):
        found = await serve(sims, ports, host)
        hosted.update({item.sim.system: item for item in found})
        return found

    monkeypatch.setattr(hosting, "serve", keep)
    stuck: list[socket.socket] = []
    ports: list[int] = []

    def open_a_stuck_connection(world, process):
        if not stuck:  # after the first step, while the stack works
            sock = socket.create_connection(("127.0.0.1", hosted["wms"].port))
            sock.sendall(STUCK_HEAD.replace("SO-000042", "STUCK-1").encode() + FIRST_TEN)
            stuck.append(sock)
            ports.append(sock.getsockname()[1])

    config = RunConfig(
        scenario=scenario.parse(TINY_DAY),
        report_dir=tmp_path,
        request_watchdog_s=0.5,
        on_step=open_a_stuck_connection,
    )
    try:
        outcome = uvloop.run(run(config))
    finally:
        for sock in stuck:
            sock.close()
    named = [n for n in outcome.notes if "(correlation STUCK-1)" in n]
    assert len(named) == 1, outcome.notes
    assert re.fullmatch(
        rf"wms POST /fulfilment-orders from 127\.0\.0\.1:{ports[0]} \(correlation STUCK-1\) "
        r"in flight for \d+\.\d s wall at \d\d:\d\d:\d\d \(day 0\), waiting for its body "
        r"\(10 of 100 bytes received\); advanced without it",
        named[0],
    ), named[0]
    assert outcome.wall_s < 20
    assert outcome.counts["delivered"] == 3, outcome.notes  # the day went on to its end
    assert outcome.passed, [r.name for r in outcome.results if not r.passed]
    # never answered: journalled all the same, when the simulators shut down (no answer)
    (entry,) = [e for e in outcome.journals["wms"] if e["correlation_id"] == "STUCK-1"]
    assert entry["status"] == 0


REALTIME_DAY = """
name: slow_day
seed: 3
horizon_days: 1
demand: {orders: 3}
clock: {mode: realtime, factor: 10}
"""


@pytest.mark.e2e  # the reference stack, as a process
def test_max_wall_stops_a_long_run_with_its_note_and_exit_1(tmp_path, capsys):
    path = tmp_path / "slow_day.yaml"
    path.write_text(REALTIME_DAY)  # a day of 8640 wall seconds
    report = tmp_path / "report"
    started = time.monotonic()
    code = main(["run", str(path), "--max-wall", "2", "--quiet", "--report-dir", str(report)])
    assert code == 1
    assert time.monotonic() - started < 20
    verdict = json.loads((report / "verdict.json").read_text())
    assert verdict["passed"] is False
    assert re.fullmatch(
        r"stopped at --max-wall after \d+\.\d s at virtual 00:00:\d\d \(day 0\); "
        r"the day was not finished",
        verdict["notes"][0],
    ), verdict["notes"]
    assert "stopped at --max-wall" in capsys.readouterr().out


@pytest.mark.e2e  # the reference stack, as a process
def test_max_wall_from_the_ini_file_fails_every_item_of_a_scenario_cut_short(
    pytester: pytest.Pytester,
):
    pytester.mkdir("scenarios").joinpath("slow_day.yaml").write_text(REALTIME_DAY)
    pytester.makeini("[pytest]\ntwinyard_max_wall = 2\n")
    result = pytester.runpytest_subprocess("scenarios/", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1 and "passed" not in outcomes, outcomes
    result.stdout.fnmatch_lines(
        ["*slow_day.yaml: stopped at --max-wall after * s at virtual *; the day was not finished"]
    )


def test_max_wall_is_checked_before_anything_starts(tmp_path, capsys):
    assert main(["run", "--max-wall", "0", "--report-dir", str(tmp_path)]) == 2
    assert "--max-wall" in capsys.readouterr().err
    assert _seconds(None) is None and _seconds("2.5") == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ConfigError):
            _seconds(bad)


# -- the probe's long-poll ---------------------------------------------------------------------
async def test_the_probe_is_long_polled_and_asked_plainly_by_a_stack_that_refuses_the_query():
    asked: list[dict[str, str]] = []

    async def strict_idle(request: Request) -> JSONResponse:
        asked.append(dict(request.query_params))
        if request.query_params:
            return JSONResponse({"error": "unknown query parameter"}, status_code=400)
        return JSONResponse({"idle": False})

    async with serving(Starlette(routes=[Route("/_stack/idle", strict_idle)])) as stack:
        probe = StackProbe(stack, "/_stack/idle")
        assert await probe.idle() is Idle.NO
        assert await probe.idle() is Idle.NO
        await probe.close()
    assert asked == [{"wait_ms": "50"}, {}, {}]
    assert not probe.long_poll and not probe.held


async def test_a_probe_that_ignores_the_wait_is_not_taken_for_a_held_one():
    async with serving(Probe(busy=True).app) as stack:
        probe = StackProbe(stack, "/_stack/idle")
        assert await probe.idle() is Idle.NO
        await probe.close()
    assert probe.long_poll and not probe.held


async def test_a_busy_answer_held_for_the_wait_is_known_as_held():
    async def holding_idle(request: Request) -> JSONResponse:
        await asyncio.sleep(int(request.query_params["wait_ms"]) / 1000)
        return JSONResponse({"idle": False})

    async with serving(Starlette(routes=[Route("/_stack/idle", holding_idle)])) as stack:
        probe = StackProbe(stack, "/_stack/idle")
        assert await probe.idle() is Idle.NO
        await probe.close()
    assert probe.held


async def test_a_stack_that_routes_on_the_raw_path_is_asked_plainly_from_then_on():
    asked: list[str] = []

    async def raw_path(request: Request) -> JSONResponse:  # like `if self.path == "/_stack/idle"`
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        asked.append(target)
        if target == "/_stack/idle":
            return JSONResponse({"idle": True})
        return JSONResponse({"status": "ok"})

    async with serving(Starlette(routes=[Route("/_stack/idle", raw_path)])) as stack:
        probe = StackProbe(stack, "/_stack/idle")
        assert await probe.idle() is Idle.YES
        assert await probe.idle() is Idle.YES
        await probe.close()
    assert asked == ["/_stack/idle?wait_ms=50", "/_stack/idle", "/_stack/idle"]
    assert not probe.long_poll
