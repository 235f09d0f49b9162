"""CPU per request of the two async HTTP clients twinyard uses, side by side in one run.

Each client POSTs a webhook-sized JSON body to the same local uvicorn receiver; the figure
is this process's CPU (client and server together) per request, and requests per second.
It is why the harness's hot paths (webhook delivery, idle probe) use aiohttp.

    .venv/bin/python benchmarks/http_clients.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import Receiver, serving

BODY = b'{"id":"EV-1","type":"order.picked","data":{"order_ref":"SO-1","lines":[]}}'
HEADERS = {"content-type": "application/json"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def with_httpx(url: str, n: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                await client.post(url, content=BODY, headers=HEADERS)

        await asyncio.gather(*(one() for _ in range(n)))


async def with_aiohttp(url: str, n: int, concurrency: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate, session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(n)))


async def main(n: int) -> None:
    clients: dict[str, Callable[[str, int, int], Awaitable[None]]] = {
        "httpx": with_httpx,
        "aiohttp": with_aiohttp,
    }
    receiver = Receiver()
    print(f"{'client':8} {'concurrency':>11} {'CPU us/request':>15} {'requests/s':>11}")
    async with serving(receiver.app) as base:
        for concurrency in (1, 8):
            for name, run in clients.items():
                cpu, wall = cpu_seconds(), time.perf_counter()
                await run(f"{base}/hook", n, concurrency)
                used, elapsed = cpu_seconds() - cpu, time.perf_counter() - wall
                print(f"{name:8} {concurrency:>11} {used / n * 1e6:>15.0f} {n / elapsed:>11.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    uvloop.run(main(parser.parse_args().requests))
