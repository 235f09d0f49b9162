"""Serving the four simulators from one process, one event loop, one port each."""

from __future__ import annotations

import gc
import socket
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from simulators.common.simulator import Simulator

LOOPBACK = "127.0.0.1"


class PortInUse(Exception):
    """A port the user asked for is taken (a usage error, not a crash)."""


@dataclass
class Hosted:
    sim: Simulator
    server: uvicorn.Server
    sock: socket.socket

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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


async def serve(sims: list[Simulator], ports: list[int], host: str = LOOPBACK) -> list[Hosted]:
    """Start one uvicorn server per simulator on the running loop (port 0: any free port)."""
    socks = [bind(host, port) for port in ports]  # all bound before any starts: fail early
    hosted: list[Hosted] = []
    for sim, sock in zip(sims, socks, strict=True):
        server = await start_server(sim.app, sock)
        await sim.start()
        hosted.append(Hosted(sim, server, sock))
    tune_gc()
    return hosted


async def start_server(app: ASGIApp, sock: socket.socket) -> uvicorn.Server:
    """A uvicorn server on the running loop, without taking over signals (we own them)."""
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    return server


async def shutdown(hosted: list[Hosted]) -> None:
    for item in hosted:
        await item.sim.stop()
        item.server.should_exit = True
        await item.server.shutdown(sockets=[item.sock])
        item.sock.close()
