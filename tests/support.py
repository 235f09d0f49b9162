"""Test helpers: a real HTTP receiver on an ephemeral loopback port, an event loop on a thread
for servers that blocking clients call into, and vendors played in process for the reference
stack's vendor client (``MockVendors``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import orjson
import uvloop
from multidict import CIMultiDict, CIMultiDictProxy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from yarl import URL

from harness.hosting import bind, start_server
from simulators.common.sender import Answer, Sender

T = TypeVar("T")


class Receiver:
    """Records every POST; answers with the statuses it is given, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.raw_headers: list[list[tuple[bytes, bytes]]] = []  # as sent: a name given twice
        self.on_request: Callable[[], None] | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        self.raw_headers.append(list(request.headers.raw))
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


# -- vendors played in process for the reference stack's client -------------------------------
@dataclass(frozen=True)
class Sent:
    """A request as the client handed it to its sender: its URL (with the query), the headers
    it set (and its sender's Accept; not Host, User-Agent or Content-Length) and its body's
    bytes."""

    method: str
    url: URL
    headers: CIMultiDictProxy[str]
    content: bytes


@dataclass(frozen=True)
class VendorAnswer:
    """A vendor's answer as a route gives it (``answer`` makes one)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def payload(self) -> Any:
        """The body as JSON (None when there is none)."""
        return orjson.loads(self.body) if self.body else None

    def as_sent(self) -> Answer:
        """As the sender hands an answer over: headers by lower-case name."""
        return Answer(self.status, {k.lower(): v for k, v in self.headers.items()}, self.body)


Effect = VendorAnswer | BaseException | Callable[[Sent], Any]


def answer(
    status: int = 200,
    *,
    json: Any = None,
    content: bytes = b"",
    headers: dict[str, str] | None = None,
) -> VendorAnswer:
    """A vendor's answer: ``json`` (serialised) or ``content`` (raw bytes), with ``headers``."""
    sent = dict(headers or {})
    if json is not None:
        content = orjson.dumps(json)
        sent.setdefault("Content-Type", "application/json")
    return VendorAnswer(status, sent, content)


class VendorRoute:
    """One method and URL of a vendor: it answers what ``respond`` last said, unless a
    ``side_effect`` is set: an answer or exception, a list of them (one per call, in turn), or a
    function of the ``Sent`` request (sync or async) that returns an answer or raises. Every
    request it took is in ``calls``, including those its side effect raised for."""

    def __init__(self, method: str, url: str | re.Pattern[str]) -> None:
        self.method = method
        self.url = url
        self.calls: list[Sent] = []
        self._answer = answer(200)
        self._effect: Effect | Iterator[Effect] | None = None

    def __repr__(self) -> str:
        return f"<route {self.method} {self.url}>"

    @property
    def side_effect(self) -> Effect | Iterator[Effect] | None:
        return self._effect

    @side_effect.setter
    def side_effect(self, effect: Effect | list[Effect] | None) -> None:
        self._effect = iter(effect) if isinstance(effect, list | tuple) else effect

    def respond(self, status: int = 200, **kwargs: Any) -> VendorRoute:
        """Answer every call so from now on (any side effect is dropped); ``answer``'s keywords."""
        self._answer, self._effect = answer(status, **kwargs), None
        return self

    def matches(self, method: str, url: URL) -> bool:
        """A string URL matches whatever the query; a pattern matches from the URL's start."""
        if method != self.method:
            return False
        if isinstance(self.url, re.Pattern):
            return self.url.match(str(url)) is not None
        return url.with_query(None) == URL(self.url)

    async def take(self, request: Sent) -> VendorAnswer:
        self.calls.append(request)
        effect = self._effect
        if isinstance(effect, Iterator):
            effect = next(effect, None)
            assert effect is not None, f"{self} was called more often than it has side effects"
        if effect is None:
            return self._answer
        if isinstance(effect, BaseException):
            raise effect
        if callable(effect):
            result = effect(request)
            return await result if inspect.isawaitable(result) else result
        return effect


class MockVendors:
    """Vendors played in place of every request the reference stack's client makes (while
    entered): ``Sender.request`` is patched, as aioresponses patches aiohttp, so no socket is
    opened; webhook deliveries and probes (``Sender.post``/``get``) are left alone. Routes can
    change mid-test (the stack's tests were written for respx's):
    ``mock.post(url).respond(201, json=...)``, ``route.side_effect``, ``route.calls``, and
    ``mock.calls``, every routed request in order. A request no route takes fails loudly
    (AssertionError), never quietly as a connection error the client would retry.
    """

    def __init__(self) -> None:
        self.routes: list[VendorRoute] = []
        self.calls: list[Sent] = []
        self._patch = mock.patch.object(Sender, "request", self._taker())

    def __enter__(self) -> MockVendors:
        self._patch.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.__exit__(*exc)

    def route(self, method: str, url: str | re.Pattern[str]) -> VendorRoute:
        """The route of ``method`` and ``url``: made on the first ask, the same one after."""
        for route in self.routes:
            if (route.method, route.url) == (method, url):
                return route
        self.routes.append(route := VendorRoute(method, url))
        return route

    def get(self, url: str | re.Pattern[str]) -> VendorRoute:
        return self.route("GET", url)

    def post(self, url: str | re.Pattern[str]) -> VendorRoute:
        return self.route("POST", url)

    def put(self, url: str | re.Pattern[str]) -> VendorRoute:
        return self.route("PUT", url)

    def patch(self, url: str | re.Pattern[str]) -> VendorRoute:
        return self.route("PATCH", url)

    def _taker(self) -> Callable[..., Awaitable[Answer]]:
        routes, calls = self.routes, self.calls

        async def take(
            sender: Sender,
            method: str,
            url: str,
            body: bytes | None = None,
            headers: Any = (),
        ) -> Answer:
            pairs = [("Accept", sender.accept), *headers]
            request = Sent(method, URL(url), CIMultiDictProxy(CIMultiDict(pairs)), body or b"")
            for route in routes:
                if route.matches(method, request.url):
                    calls.append(request)
                    return (await route.take(request)).as_sent()
            raise AssertionError(f"no vendor route takes {method} {url}")

        # a plain function, so patched onto the class it is called as a method (self: sender)
        return take
