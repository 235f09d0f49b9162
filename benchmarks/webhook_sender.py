"""CPU per webhook delivery of the sender the simulators use, beside aiohttp, in one run.

    .venv/bin/python benchmarks/webhook_sender.py [--requests 5000] [--rounds 3]

The receiver (uvicorn with httptools, a Starlette route answering 200 {}) runs in a child
process, so this process's CPU is the client's alone: building the request, the write, parsing
the answer, the connection pool. Each round sends ``--requests`` signed-size JSON POSTs with
8 in flight (the dispatcher's workers), first with ``aiohttp.ClientSession`` as the
dispatcher used it until 2026-12-07, then with ``simulators.common.sender.Sender``;
rounds alternate so the machine's other load falls on both. Prints us of CPU per request and
requests per second per round, then the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.stack import free_port
from simulators.common.sender import Sender

BODY = b'{"id":"EV-WMS-000001","type":"order.picked","source":"wms","data":{"order_ref":"SO-1"}}'
HEADERS = {
    "x-twinyard-timestamp": "1796620013",
    "x-twinyard-signature": "v1=" + "ab" * 32,
    "content-type": "application/json",
    "x-twinyard-event-id": "EV-WMS-000001",
    "x-twinyard-event-type": "order.picked",
    "x-correlation-id": "corr-1",
}
IN_FLIGHT = 8


def serve(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hook(request):
        await request.body()
        return JSONResponse({})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    uvicorn.run(app, port=port, log_level="error", loop="uvloop", http="httptools")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(send: Callable[[], Awaitable[int]], n: int) -> None:
    left = iter(range(n))

    async def worker() -> None:
        for _ in left:
            assert await send() == 200

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def with_aiohttp(url: str, n: int) -> None:
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT, keepalive_timeout=4.0)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send() -> int:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                return response.status

        await drive(send, n)


async def with_sender(url: str, n: int) -> None:
    sender = Sender(timeout_s=10.0, idle_reuse_s=4.0)
    pairs = list(HEADERS.items())

    async def send() -> int:
        status, _ = await sender.post(url, BODY, pairs)
        return status

    try:
        await drive(send, n)
    finally:
        await sender.close()


async def measure(client: Callable[[str, int], Awaitable[None]], url: str, n: int):
    await client(url, 200)  # warm: connections, code paths
    cpu, wall = cpu_seconds(), time.perf_counter()
    await client(url, n)
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    return cpu / n * 1e6, n / wall


async def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise SystemExit(f"the receiver never listened on {port}")


async def main(requests: int, rounds: int) -> None:
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    try:
        await wait_listening(port)
        url = f"http://127.0.0.1:{port}/hook"
        clients = {"aiohttp": with_aiohttp, "Sender": with_sender}
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        print(f"{'round':>5} {'client':<14} {'us CPU/request':>15} {'requests/s':>11}")
        for number in range(1, rounds + 1):
            for name, client in clients.items():
                us, rate = await measure(client, url, requests)
                figures[name].append((us, rate))
                print(f"{number:>5} {name:<14} {us:>15.1f} {rate:>11,.0f}")
        print("medians:")
        for name, rows in figures.items():
            us = statistics.median(r[0] for r in rows)
            rate = statistics.median(r[1] for r in rows)
            print(f"      {name:<14} {us:>15.1f} {rate:>11,.0f}")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(main(args.requests, args.rounds))
