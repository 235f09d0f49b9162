"""Serving the four simulators from one process, one event loop, one port each.

Hosting owns the sockets, so it plays the outages that happen at the connection level (an
``outage`` fault with ``mode: down``, a vendor whose process crashed): when the window opens
on the simulator's clock the listener is closed, so new connections are refused, and every
open connection is reset; when it closes the simulator listens again on the same port, with
its state as it was. Faults of the scenario are armed when serving starts, faults added live
through ``POST /_sim/faults`` through ``Simulator.on_fault_added``.

Every listener has slow-connection limits (wall seconds), so no client can hold a connection,
and through it a lockstep step, forever: a request's line and headers must arrive within
``HEADER_TIMEOUT_S`` of its first byte (or of the connection opening), else it is answered
``408 request_timeout`` and closed; its body within the simulator's ``BODY_TIMEOUT_S``
(``simulators.common.simulator``: h11 and httptools have no body timeout); an idle kept-alive
connection is closed after ``KEEP_ALIVE_S``; and at shutdown a request still being received
is reset, others get ``SHUTDOWN_GRACE_S`` to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from simulators.common.coalesce import CoalescingTransport
from simulators.common.errors import SimError
from simulators.common.faults import Fault
from simulators.common.guard import is_loopback
from simulators.common.simulator import Simulator

LOOPBACK = "127.0.0.1"
REBIND_PAUSE_S = 0.05  # wall seconds between tries when the port is not free to listen again
REBIND_TRIES = 100
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN
HEADER_TIMEOUT_S = 30.0  # a request line and headers, from the first byte (read when armed)
KEEP_ALIVE_S = 30  # an idle kept-alive connection is closed after this
SHUTDOWN_GRACE_S = 1  # at shutdown, requests being handled get this long to finish

logger = logging.getLogger(__name__)


class PortInUse(Exception):
    """A port the user asked for is taken (a usage error, not a crash)."""


class Unprotected(Exception):
    """Asked to listen beyond loopback with a control plane that has no token."""


@dataclass(eq=False)
class Hosted:
    sim: Simulator
    server: uvicorn.Server
    sock: socket.socket  # the listening socket: a new one each time the simulator comes back
    host: str = field(init=False)
    port: int = field(init=False)
    down: int = 0  # down outages open now; not listening while above 0
    closed: bool = False  # shut down: never listens again
    _generation: int = 0  # one per coming back: an older opening still under way gives up
    _openings: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.host, self.port = self.sock.getsockname()[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- outages at the connection level ------------------------------------------------
    def arm_outages(self) -> None:
        """Arm the down outages already in the plan, and from now on those added live."""
        for index, fault in enumerate(self.sim.faults.faults):
            self.arm(index, fault)
        self.sim.on_fault_added = self.arm

    def arm(self, index: int, fault: Fault) -> None:
        """Down at ``at``, back at ``at + for``, on the simulator's clock (at once when the
        window is open already); counted on the plan as ``outage:down`` when it opens."""
        if not fault.is_down:
            return
        clock = self.sim.clock
        until = fault.until
        assert until is not None  # the model refuses a down outage without for
        if until <= clock.now():
            return  # the window has passed already
        opened = False

        def go_down() -> None:
            nonlocal opened
            plan = self.sim.faults
            if self.closed or index >= len(plan.faults) or plan.faults[index] is not fault:
                return  # shut down, or the plan was cleared before the window opened
            opened = True
            plan.count(index, "outage:down")
            self.take_down()

        def come_back() -> None:
            if opened:
                self.bring_back()

        clock.call_at(fault.at, go_down)
        clock.call_at(until, come_back)

    def take_down(self) -> None:
        self.down += 1
        if self.down == 1:
            self._silence()

    def bring_back(self) -> None:
        self.down -= 1
        if self.down or self.closed:
            return
        self._generation += 1
        try:  # listening at once: a connection made now waits in the backlog, not refused
            sock: socket.socket | None = bind(self.host, self.port)
        except PortInUse:
            sock = None  # tried again from the opening task
        task = asyncio.get_running_loop().create_task(self._listen(sock, self._generation))
        self._openings.add(task)
        task.add_done_callback(self._openings.discard)

    def _silence(self) -> None:
        """Stop listening (connections are refused) and reset every open connection."""
        for server in self.server.servers:
            server.close()  # closes its listening socket too
        self.sock.close()
        for connection in list(self.server.server_state.connections):
            _reset(connection)

    async def _listen(self, sock: socket.socket | None, generation: int) -> None:
        """Serve again on the same port (uvicorn's startup with the new socket)."""

        def wanted() -> bool:
            return generation == self._generation and not self.down and not self.closed

        tries = 0
        while sock is None and wanted() and tries < REBIND_TRIES:
            tries += 1
            await asyncio.sleep(REBIND_PAUSE_S)
            with contextlib.suppress(PortInUse):
                sock = bind(self.host, self.port)
        if sock is None:
            if wanted():
                logger.error(
                    "%s could not listen on %s again: it stays down", self.sim.system, self.url
                )
            return
        if not wanted():
            sock.close()
            return
        await self.server.startup(sockets=[sock])
        self.sock = sock
        if not wanted():
            self._silence()  # down again, or shut down, while it was opening

    async def settle(self) -> None:
        """Wait for openings under way (before shutting down)."""
        while self._openings:
            await asyncio.gather(*self._openings, return_exceptions=True)


def _reset(connection: object) -> None:
    """Abort a uvicorn connection with a TCP reset, as a crashed process's socket would."""
    transport = getattr(connection, "transport", None)
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


class _Connection(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol with a limit on how long a request's line and headers may take:
    armed when the connection opens and when a request's first bytes come, disarmed when its
    headers are complete (uvicorn has then started a new request cycle). Its answers leave
    in one send each (simulators.common.coalesce)."""

    on_slow: Callable[[str], None] | None = None  # told of each connection let go

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))  # one send per answer
        self._headers_timer: asyncio.TimerHandle | None = None
        self._armed_for: object = None
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:
            self._headers_came()
        elif self._headers_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._await_headers()  # the first bytes of the next request

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_came()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._armed_for = self.cycle
        self._headers_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late)

    def _headers_came(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_late(self) -> None:
        self._headers_timer = None
        cycle = self.cycle
        if cycle is not self._armed_for or (cycle is not None and not cycle.response_complete):
            return  # a request came after all, and is being handled
        if self.transport.is_closing():
            return
        body = orjson.dumps(
            SimError(
                408,
                "request_timeout",
                f"the request headers did not arrive within {HEADER_TIMEOUT_S:g} s",
            ).body()
        )
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + body)
        self.transport.close()
        if self.on_slow is not None:
            peer = f" from {self.client[0]}:{self.client[1]}" if self.client else ""
            self.on_slow(
                f"closed a connection{peer} that sent no complete request headers within "
                f"{HEADER_TIMEOUT_S:g} s (408)"
            )


def connection_class(on_slow: Callable[[str], None] | None = None) -> type[asyncio.Protocol]:
    """The protocol a listener serves with, telling ``on_slow`` of connections it let go."""
    return type("Connection", (_Connection,), {"on_slow": staticmethod(on_slow)})


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets whose proto says TCP; with proto 0 each answer waited ~40 ms for a delayed ACK
    # under the default loop (uvloop sets it either way).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def tune_gc() -> None:
    """Keep the collector off the request path.

    Simulator state only grows during a run (orders, journal entries), and CPython's
    generational collector then re-walks it on every gen-2 pass: p99 latency of a stateful
    POST went from ~150 ms to a few ms with start-up objects frozen and rarer collections.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for a burst of long-lived allocations: the end of a day
    (snapshots, the oracles' indexes and documents, the reports). It finds nothing to free
    among them but walks them all: one gen-1 pass took 437 ms of the 10,000-order day's
    judging, 0.6 s of collections in all. What judging throws away is freed by reference
    counts (the peak RSS is unchanged with it paused); the collector is back on after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def serve(sims: list[Simulator], ports: list[int], host: str = LOOPBACK) -> list[Hosted]:
    """Start one uvicorn server per simulator on the running loop (port 0: any free port).

    Beyond loopback only with a control-plane token on every simulator (``Unprotected``)."""
    if not is_loopback(host) and any(sim.guard.token is None for sim in sims):
        raise Unprotected(
            f"listening on {host} needs a control-plane token: anyone who can reach the "
            "port could reset the simulators or break them"
        )
    socks = [bind(host, port) for port in ports]  # all bound before any starts: fail early
    hosted: list[Hosted] = []
    for sim, sock in zip(sims, socks, strict=True):
        server = await start_server(sim.app, sock, on_slow=_noting(sim))
        await sim.start()
        hosted.append(Hosted(sim, server, sock))
    tune_gc()
    for item in hosted:
        item.arm_outages()
    return hosted


def _noting(sim: Simulator) -> Callable[[str], None]:
    def note(line: str) -> None:
        sim.slow_clients.append(f"{sim.system} {line}")

    return note


async def start_server(
    app: ASGIApp,
    sock: socket.socket,
    on_slow: Callable[[str], None] | None = None,
    *,
    own_headers: bool = True,
) -> uvicorn.Server:
    """A uvicorn server on the running loop, without taking over signals (we own them), with
    the slow-connection limits of this module. ``own_headers=False``: no Server or Date header
    of uvicorn's (a proxy passes on the upstream's instead of doubling them)."""
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # no proxy in front: a request's client is the socket's peer
        http=connection_class(on_slow),
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        server_header=own_headers,
        date_header=own_headers,
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    return server


async def shutdown(hosted: list[Hosted]) -> None:
    for item in hosted:
        item.closed = True  # a down outage's window may end later: it stays closed
        item.sim.on_fault_added = None
        await item.settle()
        await item.sim.stop()
        item.server.should_exit = True
        connections = item.server.server_state.connections
        for connection in list(connections):
            if _receiving(connection):  # a body that may never come: not waited for
                _reset(connection)
        await item.server.shutdown(sockets=[item.sock])
        item.sock.close()
        for connection in list(connections):  # still open after the grace: let go
            _reset(connection)


def _receiving(connection: object) -> bool:
    """A uvicorn connection whose request's body is still being received."""
    cycle = getattr(connection, "cycle", None)
    return cycle is not None and not cycle.response_complete and cycle.more_body
