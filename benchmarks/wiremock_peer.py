"""The WMS simulator side by side with WireMock 3.x, the peer teams use for hand-rolled stubs.

One run, one load generator (wrk), the same request mix as simulator_throughput.py (half POST
/fulfilment-orders, half GET /fulfilment-orders/FO-000001), the same connections and duration,
one target after the other: ``twinyard sims`` (WMS), WireMock (a cold round straight after its
start, then ``--rounds`` warm rounds, since its JIT needs warming), and the bare Starlette +
uvicorn ceiling. Per target and round: req/s, p50/p99 (wrk --latency), errors (non-2xx,
socket errors) and the resident memory of the server's process tree, read from /proc every
0.2 s during the round. Figures vary +-25% on this shared 2-core machine: compare lines of the
same run, not runs.

    .venv/bin/python benchmarks/wiremock_peer.py [--seconds 10] [--connections 64] [--threads 2]
        [--rounds 2] [--container-threads 25] [--wiremock-jar JAR]

WireMock comes from the npm package ``wiremock`` (it carries the standalone jar), installed on
first use into ~/.cache/twinyard-bench/wiremock (never into the repo), and runs on the
machine's Java 17. Its stubs answer the bodies the simulator answered, byte for byte, but they
are static: the simulator validates each order, allocates stock and keeps every order (the
POSTs of a round create thousands). That makes the comparison conservative for the
simulator. WireMock's request journal stays ON (its default; the simulator journals every
request too), unbounded as shipped, and is cleared between rounds so each round starts as the
simulator's did.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import _wrk
import httpx
from simulator_throughput import BARE_APP, MIXED_LUA, ORDER, free_port

WIREMOCK_PACKAGE = "wiremock@3"  # the npm package; its build/ holds wiremock-standalone-X.jar
DEFAULT_CONTAINER_THREADS = 25  # WireMock 3's own default (Options.DEFAULT_CONTAINER_THREADS)
SAMPLE_EVERY_S = 0.2


# -- processes ------------------------------------------------------------------------------
@contextlib.contextmanager
def started(command: list[str], log: Path, **popen: object) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` in a session of its own, its stderr to ``log`` (a pipe nobody reads
    would fill and stall it), and stop its whole group on the way out, whatever the way out is
    (an error, Ctrl-C, SIGTERM): no server outlives the benchmark."""
    with log.open("wb") as err:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            **popen,  # type: ignore[call-overload]
        )
    try:
        yield process
    finally:
        for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Wait until ``url`` answers; fail at once, with the server's stderr, if it died. (The
    JVM takes seconds to start, more than simulator_throughput.wait_up allows.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"the server for {url} exited ({process.returncode}):\n{err}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered at {url} within {timeout_s:.0f} s")


# -- memory -----------------------------------------------------------------------------------
def tree_rss_kb(root: int) -> int:
    """VmRSS of ``root`` and all its descendants, in kB, from /proc (0 once all are gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


class PeakRss:
    """The highest process-tree RSS seen while the block runs, sampled on a thread of its own
    (a server's peak lasts milliseconds; one reading at the end would miss it)."""

    def __init__(self, root: int, every_s: float = SAMPLE_EVERY_S) -> None:
        self.root = root
        self.every_s = every_s
        self.start_kb = tree_rss_kb(root)
        self.peak_kb = self.start_kb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-peak", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, tree_rss_kb(self.root))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.root))


# -- one round ------------------------------------------------------------------------------
@dataclass
class Row:
    target: str
    round: str
    run: _wrk.WrkRun
    rss_start_kb: int
    rss_peak_kb: int


def measure(
    target: str, label: str, url: str, pid: int, script: Path, args: argparse.Namespace
) -> Row:
    """One wrk round against ``url`` while the RSS of ``pid``'s tree is watched."""
    with PeakRss(pid) as rss:
        run = _wrk.run(url, script, args.seconds, args.connections, args.threads)
    return Row(target, label, run, rss.start_kb, rss.peak_kb)


# -- WireMock -------------------------------------------------------------------------------
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "twinyard-bench" / "wiremock"


def wiremock_jar(explicit: Path | None) -> Path:
    """The standalone jar: ``--wiremock-jar``, else the cached npm package, installed on first
    use with ``npm install --prefix`` into the cache (outside the repo)."""
    if explicit is not None:
        if not explicit.is_file():
            raise SystemExit(f"--wiremock-jar {explicit}: no such file")
        return explicit
    prefix = cache_dir()
    build = prefix / "node_modules" / "wiremock" / "build"
    jars = sorted(build.glob("wiremock-standalone-*.jar"))
    if not jars:
        if not shutil.which("npm"):
            raise SystemExit("npm is missing: apt-get install npm (or pass --wiremock-jar)")
        prefix.mkdir(parents=True, exist_ok=True)
        print(f"installing {WIREMOCK_PACKAGE} from the npm registry into {prefix} ...", flush=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                WIREMOCK_PACKAGE,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        jars = sorted(build.glob("wiremock-standalone-*.jar"))
    if not jars:
        raise SystemExit(f"no wiremock-standalone-*.jar under {build}")
    return jars[-1]


def java_version() -> str:
    if not shutil.which("java"):
        raise SystemExit("java is missing: apt-get install openjdk-17-jre-headless")
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=True)
    return (out.stderr or out.stdout).splitlines()[0]


def register_stubs(admin: str, created: str, read: str) -> None:
    """The mix's two stubs, answering the simulator's own bodies; static by nature."""
    json_type = {"Content-Type": "application/json"}
    stubs = [
        {
            "request": {"method": "POST", "url": "/fulfilment-orders"},
            "response": {"status": 201, "body": created, "headers": json_type},
        },
        {
            "request": {"method": "GET", "url": "/fulfilment-orders/FO-000001"},
            "response": {"status": 200, "body": read, "headers": json_type},
        },
    ]
    for stub in stubs:
        httpx.post(f"{admin}/mappings", json=stub, timeout=10).raise_for_status()


def journal_total(admin: str) -> int:
    """How many requests WireMock's journal holds (proof that it is on)."""
    answer = httpx.get(f"{admin}/requests", params={"limit": 1}, timeout=30).json()
    if answer.get("requestJournalDisabled"):
        raise SystemExit("WireMock's request journal is off: the comparison would be unfair")
    return int(answer["meta"]["total"])


# -- report ---------------------------------------------------------------------------------
def ms(latency: str | None) -> str:
    value = _wrk.to_ms(latency)
    return "?" if value is None else f"{value:.1f}"


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'target':40} {'round':7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        f" {'sock err':>8} {'RSS MiB start':>13} {'peak':>6}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        rps = row.run.requests_per_s
        print(
            f"{row.target:40} {row.round:7} {f'{rps:,.0f}' if rps is not None else '?':>8}"
            f" {ms(row.run.p50):>8} {ms(row.run.p99):>8} {row.run.non_2xx:>8,}"
            f" {row.run.socket_error_total:>8,} {row.rss_start_kb / 1024:>13.0f}"
            f" {row.rss_peak_kb / 1024:>6.0f}"
        )
    for row in rows:
        errors = {k: v for k, v in row.run.socket_errors.items() if v}
        if errors:
            detail = ", ".join(f"{k} {v:,}" for k, v in errors.items())
            print(f"  socket errors, {row.target} {row.round}: {detail}")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an exception, so the ``finally`` blocks stop every server."""
    raise SystemExit(128 + signum)


# -- the three targets -----------------------------------------------------------------------
@dataclass
class Simulated:
    row: Row
    orders: int  # fulfilment orders the WMS held after its round
    created: str  # its answer to the seeding POST and GET: the bodies WireMock's stubs answer
    read: str


def run_simulator(workdir: Path, script: Path, args: argparse.Namespace) -> Simulated:
    """``twinyard sims``, started and seeded (FO-000001) as simulator_throughput.py does."""
    port = free_port()
    command = [sys.executable, "-m", "harness", "sims", "--port-base", str(port)]
    log = workdir / "sims.log"
    with started(command, log) as sims:
        wms = f"http://127.0.0.1:{port + 1}"
        wait_http(f"{wms}/_sim/health", sims, log, 30)
        created = httpx.post(f"{wms}/fulfilment-orders", content=ORDER)  # FO-000001
        created.raise_for_status()
        read = httpx.get(f"{wms}/fulfilment-orders/FO-000001")
        read.raise_for_status()
        row = measure("twinyard WMS sim (stateful)", "-", wms, sims.pid, script, args)
        orders = len(httpx.get(f"{wms}/_sim/state", timeout=60).json()["orders"])
    return Simulated(row, orders, created.text, read.text)


def run_wiremock(
    jar: Path, sim: Simulated, workdir: Path, script: Path, args: argparse.Namespace
) -> tuple[list[Row], list[int]]:
    """A cold round straight after start, then warm rounds; the rows and the journal's size
    at the end of each round (cleared after each, so every round starts empty)."""
    port = free_port()
    root = workdir / "wiremock"  # its mappings/ and __files/, never the current folder
    root.mkdir()
    command = ["java", "-jar", str(jar), "--port", str(port), "--bind-address", "127.0.0.1"]
    command += ["--root-dir", str(root), "--disable-banner"]
    command += ["--container-threads", str(args.container_threads)]
    command += ["--disable-request-logging"]  # no per-request notifier lines; journal stays on
    log = workdir / "wiremock.log"
    rows: list[Row] = []
    journals: list[int] = []
    with started(command, log, cwd=workdir) as wiremock:
        base = f"http://127.0.0.1:{port}"
        admin = f"{base}/__admin"
        wait_http(f"{admin}/health", wiremock, log, 60)
        register_stubs(admin, sim.created, sim.read)
        for n in range(args.rounds + 1):
            label = "cold" if n == 0 else f"warm {n}"
            rows.append(
                measure("WireMock 3 (static stubs)", label, base, wiremock.pid, script, args)
            )
            journals.append(journal_total(admin))
            httpx.delete(f"{admin}/requests", timeout=30).raise_for_status()
    return rows, journals


def run_ceiling(workdir: Path, script: Path, args: argparse.Namespace) -> Row:
    """simulator_throughput.py's bare Starlette + uvicorn app: the ceiling of Python here."""
    (workdir / "bare.py").write_text(BARE_APP)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare:app", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "PYTHONPATH": str(workdir)}
    log = workdir / "bare.log"
    with started(command, log, cwd=workdir, env=env) as bare:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/", bare, log, 30)
        return measure("starlette+uvicorn return 200 (ceiling)", "-", url, bare.pid, script, args)


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="each wrk round, s")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--rounds", type=int, default=2, help="warm WireMock rounds after its cold one"
    )
    parser.add_argument(
        "--container-threads",
        type=int,
        default=DEFAULT_CONTAINER_THREADS,
        help="WireMock's Jetty request threads [default: WireMock's own, 25]",
    )
    parser.add_argument("--wiremock-jar", type=Path, help="a wiremock-standalone 3.x jar to use")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare ASGI ceiling")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (or: make bench)")
    signal.signal(signal.SIGTERM, on_sigterm)
    java = java_version()
    jar = wiremock_jar(args.wiremock_jar)
    load_start = loadavg()
    workdir = Path(tempfile.mkdtemp(prefix="twinyard-wiremock-"))
    try:
        script = workdir / "mixed.lua"
        script.write_text(MIXED_LUA % ORDER)
        sim = run_simulator(workdir, script, args)
        wm_rows, journals = run_wiremock(jar, sim, workdir, script, args)
        rows = [sim.row, *wm_rows]
        if not args.no_ceiling:
            rows.append(run_ceiling(workdir, script, args))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_end = loadavg()

    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s --latency,"
        " half POST create / half GET read; one target at a time"
    )
    print(f"WireMock {jar.stem.removeprefix('wiremock-standalone-')} on {java};")
    print(
        f"  --container-threads {args.container_threads}, request journal ON (unbounded, its"
        " default; cleared between rounds), JVM default heap and GC"
    )
    print(f"load average at start: {load_start}")
    print_table(rows)
    print(f"load average at end:   {load_end}")
    print(f"fulfilment orders held in the WMS after its round: {sim.orders:,}")
    print(
        "WireMock journal entries at the end of each round: "
        + ", ".join(f"{n:,}" for n in journals)
    )
    print(
        "WireMock's stubs are static (same body every time); the simulator keeps real state"
        " (validation, stock, a new order per POST, its journal): conservative for the simulator."
    )
    print(
        "The simulator serves on one Python event loop (one core); WireMock's JVM may use both"
        " cores, as wrk does."
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every process this benchmark started is stopped", file=sys.stderr)
        sys.exit(130)
