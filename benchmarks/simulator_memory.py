"""Memory of one simulator process: RSS growth per 100k exchanges, and the peak for 100 MB
bodies (one, and five at once). Issue 14 measured 57.8 MB per 100k journal entries with no cap,
and 483 MB (969 MB for five) for a 100 MB JSON body.

Measures one source tree, or two side by side: "before" from a worktree of the commit to
compare with, "after" from this checkout. The same script serves both; ``--source-root`` puts
a tree first on the server's import path (it prints the file it imported from, to be sure):

    git worktree add /tmp/mem-before HEAD
    .venv/bin/python benchmarks/simulator_memory.py --before /tmp/mem-before
    git worktree remove /tmp/mem-before

Each figure comes from a fresh process serving the ERP simulator as ``twinyard run`` serves it
(``harness.hosting``, uvloop), on a clock running ``--factor`` times wall time (default 3600: a
virtual day in 24 wall seconds, the pace of a lockstep run; with 1 nothing expires during the
run). The mix, per order: create with an Idempotency-Key, the same create again (a replay),
release with a key (one webhook delivery to a receiver in this process), read it: five
exchanges. RSS growth counts from after a warm-up of ``--warmup`` exchanges; it includes the
ERP's orders, which are business state and kept on purpose. The peak is VmHWM over the RSS
before the bodies were sent (``/proc/PID/clear_refs`` resets it). A few minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
MB = 1_000_000
MIB = 1024 * 1024
SKU = "A-100"
ORDER = json.dumps(
    {
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "ship_to": {
            "name": "Ada Lovelace",
            "street": "12 Analytical Way",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "service_level": "express",
        "lines": [{"sku": SKU, "qty": 1}],
    }
).encode()
EXCHANGES_PER_ORDER = 5  # create, replay, release, its delivery, read


# -- the server (runs from --source-root) ------------------------------------------------------
class FastClock:
    """Virtual time = wall time x ``factor`` since start (the Clock protocol of both trees)."""

    mode = "realtime"

    def __init__(self, factor: float) -> None:
        from simulators.common.clock import IsoFormatter

        self.factor = factor
        self.epoch = datetime(2026, 11, 23, tzinfo=UTC)
        self._start = time.monotonic()
        self._iso = IsoFormatter(self.epoch)

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.factor

    def iso(self, t: float | None = None) -> str:
        return self._iso(self.now() if t is None else t)

    async def sleep_until(self, t: float) -> None:
        delay = (t - self.now()) / self.factor
        if delay > 0:
            await asyncio.sleep(delay)

    def call_at(self, t: float, callback: Callable[[], None]) -> None:
        delay = max((t - self.now()) / self.factor, 0.0)
        asyncio.get_running_loop().call_later(delay, callback)

    def wall_seconds(self, virtual_s: float) -> float:
        return virtual_s / self.factor


def serve(source_root: Path, factor: float) -> None:
    """Serve the ERP from ``source_root``; print its port; stop when stdin closes."""
    sys.path.insert(0, str(source_root))
    import uvloop

    import simulators
    from harness import hosting

    async def main() -> None:
        sim = simulators.build("erp", FastClock(factor), stock={SKU: 10**9})
        hosted = await hosting.serve([sim], [0])
        print(json.dumps({"port": hosted[0].port, "source": simulators.__file__}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await hosting.shutdown(hosted)

    uvloop.run(main())


# -- the driver --------------------------------------------------------------------------------
@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    source: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self, key: str) -> float:
        """A ``/proc/PID/status`` figure in MB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / MB
        raise KeyError(key)

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(source_root: Path, factor: float) -> Server:
    command = [sys.executable, str(HERE), "--serve", "--source-root", str(source_root)]
    command += ["--factor", str(factor)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINYARD_LIMIT_")}
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/", env=env
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the simulator from {source_root} did not start")
    hello = json.loads(line)
    return Server(process, hello["port"], hello["source"])


@dataclass
class Receiver:
    """Takes webhook deliveries, answers 200."""

    count: int = 0
    runner: Any = field(default=None, repr=False)
    url: str = ""

    async def start(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            await request.read()
            self.count += 1
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def orders(server: Server, receiver: Receiver, first: int, count: int, tasks: int) -> None:
    """``count`` order cycles (five exchanges each) from ``tasks`` clients at once."""
    import aiohttp

    numbers = iter(range(first, first + count))
    json_type = {"content-type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        for n in numbers:
            create = {**json_type, "idempotency-key": f"create-{n}", "x-correlation-id": f"c{n}"}
            async with session.post("/orders", data=ORDER, headers=create) as answer:
                order = await answer.json()
            async with session.post("/orders", data=ORDER, headers=create) as answer:
                await answer.read()
            release = {"idempotency-key": f"release-{n}", "x-correlation-id": f"c{n}"}
            async with session.post(f"/orders/{order['id']}/release", headers=release) as answer:
                await answer.read()
            async with session.get(f"/orders/{order['id']}") as answer:
                await answer.read()

    connector = aiohttp.TCPConnector(limit=tasks)
    async with aiohttp.ClientSession(server.url, connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(tasks)))
    deadline = time.monotonic() + 60
    while receiver.count < first + count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def mix(source_root: Path, args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    server = start(source_root, args.factor)
    receiver = Receiver()
    await receiver.start()
    try:
        subscription = {"url": receiver.url, "events": ["order.released"], "secret": "s3cr3t"}
        async with (
            aiohttp.ClientSession(server.url) as session,
            session.post("/webhooks", json=subscription) as answer,
        ):
            assert answer.status == 201, await answer.text()
        warm = args.warmup // EXCHANGES_PER_ORDER
        await orders(server, receiver, 0, warm, args.tasks)
        rss_start = server.status("VmRSS")
        measured = args.exchanges // EXCHANGES_PER_ORDER
        started = time.perf_counter()
        await orders(server, receiver, warm, measured, args.tasks)
        wall = time.perf_counter() - started
        rss_end = server.status("VmRSS")
        exchanges = measured * EXCHANGES_PER_ORDER
        return {
            "source": server.source,
            "growth_per_100k": (rss_end - rss_start) / exchanges * 100_000,
            "rss_end": rss_end,
            "peak": server.status("VmHWM"),
            "wall_s": wall,
            "rate": exchanges / wall,
            "deliveries": receiver.count - warm,
        }
    finally:
        await receiver.stop()
        server.stop()


async def send_big(port: int, size: int) -> str:
    """POST a ``size``-byte JSON body a MiB at a time; the answer's status (or what broke)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    prefix, suffix = b'{"customer": {"name": "', b'"}}'
    piece = b"x" * MIB
    try:
        writer.write(head.encode() + prefix)
        left = size - len(prefix) - len(suffix)
        while left > 0:
            writer.write(piece[: min(left, MIB)])
            left -= min(left, MIB)
            await writer.drain()
        writer.write(suffix)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 120)
        return status_line.split()[1].decode() if status_line else "closed"
    except (ConnectionError, TimeoutError) as exc:
        return type(exc).__name__
    finally:
        writer.close()


async def big_bodies(source_root: Path, count: int, size: int, factor: float) -> dict[str, Any]:
    server = start(source_root, factor)
    try:
        await asyncio.sleep(0.5)  # let start-up settle before the baseline
        server.reset_peak()
        baseline = server.status("VmRSS")
        started = time.perf_counter()
        statuses = await asyncio.gather(*(send_big(server.port, size) for _ in range(count)))
        wall = time.perf_counter() - started
        return {
            "peak_above": server.status("VmHWM") - baseline,
            "statuses": "/".join(sorted(set(statuses))),
            "wall_s": wall,
        }
    finally:
        server.stop()


async def measure(source_root: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"measuring {source_root} ...", file=sys.stderr, flush=True)
    found = await mix(source_root, args)
    size = args.body_mb * MB
    one = await big_bodies(source_root, 1, size, args.factor)
    five = await big_bodies(source_root, 5, size, args.factor)
    return found | {
        "one_peak": one["peak_above"],
        "one_status": one["statuses"],
        "five_peak": five["peak_above"],
        "five_status": five["statuses"],
    }


ROWS: list[tuple[str, str, str]] = [
    ("RSS growth per 100k exchanges (MB)", "growth_per_100k", "{:.1f}"),
    ("RSS at the end of the mix (MB)", "rss_end", "{:.0f}"),
    ("peak RSS during the mix (MB)", "peak", "{:.0f}"),
    ("exchanges per wall second", "rate", "{:.0f}"),
    ("webhook deliveries received", "deliveries", "{}"),
    ("peak above baseline, one {body} MB body (MB)", "one_peak", "{:.0f}"),
    ("  its answer", "one_status", "{}"),
    ("peak above baseline, five at once (MB)", "five_peak", "{:.0f}"),
    ("  their answers", "five_status", "{}"),
]


def table(columns: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    names = list(columns)
    width = 46
    lines = [
        f"ERP simulator, one process; {args.exchanges} exchanges after {args.warmup} of "
        f"warm-up, {args.tasks} clients, clock x{args.factor:g}",
        f"{'measure':<{width}}" + "".join(f"{n:>14}" for n in names),
    ]
    for label, key, fmt in ROWS:
        cells = "".join(f"{fmt.format(columns[n][key]):>14}" for n in names)
        lines.append(f"{label.format(body=args.body_mb):<{width}}{cells}")
    lines += [f"{n}: {columns[n]['source']}" for n in names]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-root", type=Path, default=ROOT, help="the tree to measure")
    parser.add_argument("--before", type=Path, help="also measure this tree, as 'before'")
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--tasks", type=int, default=16, help="clients at once")
    parser.add_argument("--factor", type=float, default=3600.0, help="virtual s per wall s")
    parser.add_argument("--body-mb", type=int, default=100)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.source_root.resolve(), args.factor)
        return
    columns: dict[str, dict[str, Any]] = {}
    trees = [("before", args.before), ("after", args.source_root)] if args.before else []
    for name, tree in trees or [("measured", args.source_root)]:
        columns[name] = asyncio.run(measure(tree.resolve(), args))
    print(table(columns, args))


if __name__ == "__main__":
    main()
