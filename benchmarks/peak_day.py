"""The peak day as a user runs it: wall, CPU and peak RSS per process, CPU per exchange.

    .venv/bin/python benchmarks/peak_day.py [--runs 3] [--scenario scenarios/peak_day.yaml]
                                            [--set demand.orders=500 ...] [--against REV]
                                            [--json FILE]

Issue 15's measuring instrument. Each run is ``python -m harness run SCENARIO --quiet
--report-dir TMP`` in a subprocess; the harness launches the reference stack as its child,
exactly as for a user. While a run goes, the harness and every descendant are sampled from
/proc every 0.2 s: CPU seconds (utime + stime, the last value seen per pid, since a child can
end before its parent) and peak RSS (VmHWM, last seen). The descendant whose command line
holds ``reference_stack`` is the stack; any other descendant is "other". The harness is
reaped with wait4, whose rusage (the harness plus every descendant it reaped) makes the CPU
split exact: what the samples miss of the stack's last 0.2 s is read from the harness's
cutime, not charged to the harness.

Per run it prints the verdict (verdict.json), wall s, CPU s of harness and stack, HTTP
exchanges journalled (verdict.json counts.exchanges), CPU ms per exchange (harness, stack,
both), peak RSS MB of each and the 1-minute load average at start and end; then the median of
the runs per code version. Once per invocation it times a bare aiohttp -> Starlette (uvicorn,
loopback) JSON POST round trip in this process (client and server CPU together, as
benchmarks/http_clients.py does) and prints CPU per exchange / bare round trip.

``--against REV`` plays the same day with the code of an older commit too, from a temporary
``git worktree`` (PYTHONPATH and cwd set to it), alternating old and new runs so the
machine's other load falls on both alike; the worktree is removed at the end, also on Ctrl-C.

Exit 1 when a run failed (no verdict.json, or an exit code other than 0 and 1) or a verdict
was FAIL: a figure from a day that did not pass every oracle is not the figure issue 15 asks.
On a shared 2-core machine keep the load average in view: it is printed beside each run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import Receiver, serving

ROOT = Path(__file__).resolve().parent.parent

SAMPLE_S = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
BODY = b'{"id":"EV-1","type":"order.picked","data":{"order_ref":"SO-1","lines":[]}}'
HEADERS = {"content-type": "application/json"}
BARE_REQUESTS = 3000
STDERR_TAIL = 15


@dataclass
class Code:
    """A version of the code under measurement: where it runs from and under what label."""

    label: str
    cwd: Path
    pythonpath: str | None = None


@dataclass
class Seen:
    """The last /proc figures seen of one process."""

    role: str
    cpu_s: float = 0.0
    children_cpu_s: float = 0.0  # cutime + cstime: descendants it has reaped
    hwm_kib: int = 0


@dataclass
class RunFigures:
    code: str
    run: int
    verdict: str  # PASS, FAIL or ERROR
    exit_code: int | None
    wall_s: float
    harness_cpu_s: float
    stack_cpu_s: float
    other_cpu_s: float
    exchanges: int
    harness_peak_mb: float
    stack_peak_mb: float
    load_start: float
    load_end: float
    failed_oracles: list[str] = field(default_factory=list)

    def ms_per_exchange(self, cpu_s: float) -> float:
        return 1000 * cpu_s / self.exchanges if self.exchanges else float("nan")

    @property
    def both_cpu_s(self) -> float:
        return self.harness_cpu_s + self.stack_cpu_s


# --- /proc --------------------------------------------------------------------------------


def read_stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces
    ticks = [int(f) for f in fields[11:15]]  # utime, stime, cutime, cstime
    return int(fields[1]), (ticks[0] + ticks[1]) / CLK_TCK, (ticks[2] + ticks[3]) / CLK_TCK


def read_hwm_kib(pid: int) -> int:
    """VmHWM of a process in KiB; 0 when gone (or a zombie, which has no memory left)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def is_stack(pid: int) -> bool:
    try:
        return b"reference_stack" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (a scan of /proc: this kernel has no children file)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))):
            children.setdefault(stat[0], []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def sample(root: int, seen: dict[int, Seen]) -> None:
    """Update ``seen`` with the harness ``root`` and its descendants as they are now."""
    for pid in [root, *descendants(root)]:
        stat = read_stat(pid)
        if stat is None:
            continue
        if pid not in seen:
            seen[pid] = Seen("harness" if pid == root else "other")
        one = seen[pid]
        if one.role == "other" and is_stack(pid):  # re-read: a fork runs the parent's argv
            one.role = "stack"  # until it execs
        one.cpu_s, one.children_cpu_s = stat[1], stat[2]
        one.hwm_kib = max(one.hwm_kib, read_hwm_kib(pid))


# --- one run ------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the harness before exec: SIGTERM when this benchmark dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_harness(code: Code, argv: list[str], out_dir: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if code.pythonpath:
        env["PYTHONPATH"] = code.pythonpath
    with (out_dir / "stdout.txt").open("wb") as out, (out_dir / "stderr.txt").open("wb") as err:
        return subprocess.Popen(
            argv,
            cwd=code.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # Ctrl-C reaches this benchmark, which stops the harness
            preexec_fn=_die_with_parent,
        )


def watch(proc: subprocess.Popen[bytes], seen: dict[int, Seen]) -> resource.struct_rusage:
    """Sample until the harness ends; reap it with wait4 and return its rusage."""
    while True:
        sample(proc.pid, seen)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage
        time.sleep(SAMPLE_S)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a harness cut short: SIGINT (it stops its stack), then SIGKILL after 15 s."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def split_cpu(seen: dict[int, Seen], usage: resource.struct_rusage) -> tuple[float, float, float]:
    """(harness, stack, other) CPU seconds. wait4's rusage counts the harness and every
    descendant it reaped; the harness's cutime is what those descendants used in full."""
    harness = next(s for s in seen.values() if s.role == "harness")
    stack = sum(s.cpu_s for s in seen.values() if s.role == "stack")
    other = sum(s.cpu_s for s in seen.values() if s.role == "other")
    missed = max(0.0, harness.children_cpu_s - stack - other)  # the stack's unsampled tail
    stack += missed
    total = usage.ru_utime + usage.ru_stime
    return max(harness.cpu_s, total - stack - other), stack, other


def peaks_mb(seen: dict[int, Seen], usage: resource.struct_rusage) -> tuple[float, float]:
    """(harness, stack) peak RSS. wait4's ru_maxrss is the largest peak in the tree: when
    it is above every descendant's, it is the harness's, perhaps from after the last sample."""
    harness = next(s for s in seen.values() if s.role == "harness").hwm_kib
    stack = max((s.hwm_kib for s in seen.values() if s.role == "stack"), default=0)
    others = max((s.hwm_kib for s in seen.values() if s.role != "harness"), default=0)
    if usage.ru_maxrss > others:
        harness = max(harness, usage.ru_maxrss)
    return harness / 1024, stack / 1024


def read_verdict(report_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((report_dir / "verdict.json").read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int = STDERR_TAIL) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return "\n".join(f"    | {line}" for line in text.splitlines()[-lines:])


def play(code: Code, number: int, args: argparse.Namespace, work: Path) -> RunFigures:
    """One day with ``code``, watched from /proc."""
    run_dir = work / f"{code.label.split()[0]}-{number}"
    report_dir = run_dir / "report"
    run_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "harness", "run", str(args.scenario), "--quiet"]
    argv += ["--report-dir", str(report_dir)]
    for override in args.set:
        argv += ["--set", override]
    seen: dict[int, Seen] = {}
    load_start, started = os.getloadavg()[0], time.perf_counter()
    proc = start_harness(code, argv, run_dir)
    try:
        usage = watch(proc, seen)
    finally:
        stop(proc)
    wall, load_end = time.perf_counter() - started, os.getloadavg()[0]
    harness_cpu, stack_cpu, other_cpu = split_cpu(seen, usage)
    harness_mb, stack_mb = peaks_mb(seen, usage)
    verdict = read_verdict(report_dir)
    ok = verdict is not None and proc.returncode in (0, 1)
    return RunFigures(
        code=code.label,
        run=number,
        verdict=("PASS" if verdict["passed"] else "FAIL") if ok and verdict else "ERROR",
        exit_code=proc.returncode,
        wall_s=wall,
        harness_cpu_s=harness_cpu,
        stack_cpu_s=stack_cpu,
        other_cpu_s=other_cpu,
        exchanges=int((verdict or {}).get("counts", {}).get("exchanges", 0)),
        harness_peak_mb=harness_mb,
        stack_peak_mb=stack_mb,
        load_start=load_start,
        load_end=load_end,
        failed_oracles=[o["name"] for o in (verdict or {}).get("oracles", []) if not o["passed"]],
    )


# --- the bare round trip ------------------------------------------------------------------


async def bare_round_trip(n: int) -> float:
    """CPU seconds of this process (client and server) per aiohttp -> Starlette JSON POST."""
    receiver = Receiver()
    async with (
        serving(receiver.app) as base,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session,
    ):

        async def post(count: int) -> None:
            for _ in range(count):
                async with session.post(f"{base}/hook", data=BODY, headers=HEADERS) as answer:
                    await answer.read()

        await post(200)  # warm-up: connections, first-call caches
        receiver.requests.clear()
        cpu = time.process_time()
        await post(n)
        return (time.process_time() - cpu) / n


# --- versions of the code -----------------------------------------------------------------


def git(*argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *argv], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextlib.contextmanager
def old_code(rev: str, work: Path) -> Iterator[Code]:
    """A detached worktree of ``rev``, removed on the way out however it is left."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = work / "old-code"
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        yield Code(f"old {commit[:7]}", tree, pythonpath=str(tree))
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )


def schedule(codes: list[Code], runs: int) -> list[tuple[Code, int]]:
    """Old and new alternating, run by run."""
    return [(code, number) for number in range(1, runs + 1) for code in codes]


# --- printing -----------------------------------------------------------------------------

HEADER = (
    f"{'code':18} {'run':>3} {'verdict':7} {'wall s':>7} {'CPU s h':>7} {'CPU s st':>8} "
    f"{'exchanges':>9} {'ms/ex h':>7} {'ms/ex st':>8} {'ms/ex both':>10} "
    f"{'MB h':>6} {'MB st':>6} {'load start-end':>14}"
)


def row(r: RunFigures, run: str) -> str:
    return (
        f"{r.code:18} {run:>3} {r.verdict:7} {r.wall_s:>7.1f} {r.harness_cpu_s:>7.1f} "
        f"{r.stack_cpu_s:>8.1f} {r.exchanges:>9,} {r.ms_per_exchange(r.harness_cpu_s):>7.3f} "
        f"{r.ms_per_exchange(r.stack_cpu_s):>8.3f} {r.ms_per_exchange(r.both_cpu_s):>10.3f} "
        f"{r.harness_peak_mb:>6.0f} {r.stack_peak_mb:>6.0f} "
        f"{r.load_start:>6.2f} -{r.load_end:>6.2f}"
    )


def print_run(r: RunFigures, work: Path) -> None:
    print(row(r, str(r.run)), flush=True)
    if r.other_cpu_s:
        print(f"    other descendants: {r.other_cpu_s:.1f} CPU s")
    if r.verdict == "FAIL":
        print(f"    failed oracles: {', '.join(r.failed_oracles) or '(see verdict.json)'}")
    if r.verdict == "ERROR":
        run_dir = work / f"{r.code.split()[0]}-{r.run}"
        print(f"    harness exit code {r.exit_code}, no usable verdict.json; stderr ends:")
        print(tail(run_dir / "stderr.txt") or tail(run_dir / "stdout.txt") or "    | (empty)")


def median_run(runs: list[RunFigures]) -> RunFigures | None:
    """A run of the median figures (ms per exchange from the median CPU and exchanges)."""
    good = [r for r in runs if r.verdict != "ERROR"]
    if not good:
        return None
    med: dict[str, Any] = {
        name: statistics.median(getattr(r, name) for r in good)
        for name in (
            "wall_s", "harness_cpu_s", "stack_cpu_s", "other_cpu_s", "exchanges",
            "harness_peak_mb", "stack_peak_mb", "load_start", "load_end",
        )
    }  # fmt: skip
    med["exchanges"] = round(med["exchanges"])
    verdict = "PASS" if all(r.verdict == "PASS" for r in runs) else "FAIL"
    return RunFigures(code=good[0].code, run=0, verdict=verdict, exit_code=None, **med)


def print_summary(results: dict[str, list[RunFigures]], bare_s: float) -> dict[str, Any]:
    print(f"\nmedian of runs (PASS only when every run passed); bare round trip "
          f"{bare_s * 1e6:.0f} us CPU")  # fmt: skip
    print(HEADER)
    summary: dict[str, Any] = {}
    for label, runs in results.items():
        med = median_run(runs)
        if med is None:
            print(f"{label:18} no run finished")
            continue
        print(row(med, "med"))
        ratio = med.ms_per_exchange(med.both_cpu_s) / 1000 / bare_s
        summary[label] = {**asdict(med), "both_cpu_per_exchange_over_bare": ratio}
    for label, figures in summary.items():
        print(f"{label}: CPU per exchange (both) / bare round trip = "
              f"{figures['both_cpu_per_exchange_over_bare']:.1f}x")  # fmt: skip
    return summary


# --- main ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


def measure(args: argparse.Namespace, codes: list[Code], work: Path) -> int:
    bare_s = uvloop.run(bare_round_trip(BARE_REQUESTS))
    print(f"peak day: {args.scenario}" + "".join(f" --set {s}" for s in args.set))
    print(f"bare aiohttp -> Starlette round trip: {bare_s * 1e6:.0f} us CPU (client + server)")
    print("h = harness, st = stack; CPU s and MB (peak RSS) per process; load = 1-min average")
    print(HEADER)
    results: dict[str, list[RunFigures]] = {code.label: [] for code in codes}
    for code, number in schedule(codes, args.runs):
        figures = play(code, number, args, work)
        results[code.label].append(figures)
        print_run(figures, work)
    summary = print_summary(results, bare_s)
    if args.json:
        runs = [asdict(r) for rs in results.values() for r in rs]
        document = {"bare_round_trip_s": bare_s, "runs": runs, "median": summary}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    bad = [r for rs in results.values() for r in rs if r.verdict != "PASS"]
    if bad:
        print(f"{len(bad)} run(s) did not PASS; their reports are kept under {work}")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "peak_day.yaml")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="to harness run --set"
    )
    parser.add_argument("--against", metavar="REV", help="also run an older commit's code")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    args.scenario = args.scenario.absolute()
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="twinyard-peak-day-"))
    new = Code(f"new {git('describe', '--always', '--dirty')}", ROOT)
    status = 130
    try:
        with contextlib.ExitStack() as stack:
            codes = [stack.enter_context(old_code(args.against, work))] if args.against else []
            status = measure(args, [*codes, new], work)
    except KeyboardInterrupt:
        print("\ninterrupted: harness stopped, worktree removed", file=sys.stderr)
    except subprocess.CalledProcessError as exc:
        print(f"git {' '.join(exc.cmd[3:])}: {exc.stderr.strip()}", file=sys.stderr)
        status = 2
    finally:
        if status != 1:  # a run that did not pass keeps its reports
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
