"""Stateful throughput of one simulator process (WMS: create a fulfilment order + read one).

Runs wrk (Debian package ``wrk``) against ``twinyard sims`` and, in the same run, against a
bare Starlette + uvicorn "return 200" app: the ceiling any Python simulator here could reach.
Figures vary +-25% on this shared 2-core machine; compare the two columns, not runs.

    .venv/bin/python benchmarks/simulator_throughput.py [--seconds 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import _wrk  # benchmarks/_wrk.py: this folder is first on sys.path when run as a script
import httpx

ORDER = (
    '{"order_ref":"SO-BENCH","service_level":"standard",'
    '"ship_to":{"name":"A","street":"B 1","city":"C","postal_code":"10115","country":"DE"},'
    '"lines":[{"line":1,"sku":"SKU-00001","qty":1},{"line":2,"sku":"SKU-00002","qty":2}]}'
)
MIXED_LUA = textwrap.dedent(
    """
    local n = 0
    request = function()
      n = n + 1
      if n %% 2 == 0 then
        return wrk.format("GET", "/fulfilment-orders/FO-000001")
      end
      return wrk.format("POST", "/fulfilment-orders", {["Content-Type"] = "application/json"}, '%s')
    end
    """
)
BARE_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    async def ok(request):
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")
    app = Starlette(routes=[Route("/{p:path}", ok, methods=["GET", "POST"])])
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"nothing answered at {url}")


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, str]:
    run = _wrk.run(url, script, seconds, connections)
    return {
        "req/s": f"{run.requests_per_s:,.0f}" if run.requests_per_s is not None else "?",
        "p99": run.p99 or "?",
        "non-2xx": str(run.non_2xx),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (or: make bench)")
    workdir = Path(tempfile.mkdtemp(prefix="twinyard-bench-"))
    script = workdir / "mixed.lua"
    script.write_text(MIXED_LUA % ORDER)
    (workdir / "bare.py").write_text(BARE_APP)
    python = sys.executable
    results = {}

    sims_port = free_port()
    sims = subprocess.Popen(
        [python, "-m", "harness", "sims", "--port-base", str(sims_port)],
        stdout=subprocess.DEVNULL,
    )
    wms = f"http://127.0.0.1:{sims_port + 1}"
    try:
        wait_up(f"{wms}/_sim/health")
        httpx.post(f"{wms}/fulfilment-orders", content=ORDER).raise_for_status()  # FO-000001
        results["twinyard WMS (create+read, stateful)"] = wrk(
            wms, script, args.seconds, args.connections
        )
        state = httpx.get(f"{wms}/_sim/state", timeout=30).json()
        created = len(state["orders"])
    finally:
        sims.terminate()
        sims.wait()

    bare_port = free_port()
    bare = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            "bare:app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(workdir)},
    )
    try:
        wait_up(f"http://127.0.0.1:{bare_port}/")
        results["starlette+uvicorn return 200 (ceiling)"] = wrk(
            f"http://127.0.0.1:{bare_port}", script, args.seconds, args.connections
        )
    finally:
        bare.terminate()
        bare.wait()

    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, half POST create / half GET read")
    print(f"{'target':42} {'req/s':>10} {'p99':>10} {'non-2xx':>8}")
    for name, row in results.items():
        print(f"{name:42} {row['req/s']:>10} {row['p99']:>10} {row['non-2xx']:>8}")
    print(f"fulfilment orders held in the WMS after the run: {created:,}")


if __name__ == "__main__":
    main()
