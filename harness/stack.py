"""The stack under test, seen from outside: launching it, readiness, and its idle probe.

The harness never imports stack code (ARCHITECTURE principle 4): it starts a command with
environment variables, and talks to it over HTTP like any other client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlencode, urljoin

import orjson

from simulators.common.sender import IDLE_REUSE_S, Sender, SendFailed

REFERENCE_STACK_CMD = [sys.executable, "-m", "reference_stack"]
HEALTH_PATH = "/_stack/health"  # the route a stack answers once it is ready (`run --health-path`)
# The idle probe is asked with ?wait_ms=: a stack may hold a busy answer that long and answer
# the moment it goes idle (one request instead of ask-sleep-ask); one that ignores it answers
# at once, and one that refuses it (400, 422) or does not answer it as a probe (a route matched
# with its query string) is asked without it from then on.
LONG_POLL_MS = 50
PROBE_TIMEOUT_S = 5.0  # a probe (or health check) unanswered this long: the stack is down
PROBE_BODY_KEPT = 65_536  # an idle answer is a short JSON object; more is not an answer
PROBE_USER_AGENT = "twinyard-probe/1"


class StackError(Exception):
    """The stack cannot be used (unreachable, exited early, never ready): exit code 2."""


class Idle(Enum):
    YES = "idle"
    NO = "busy"
    UNKNOWN = "no probe"  # the stack has no idle probe: fall back to a settle window
    DOWN = "down"  # the stack does not answer at all


FIXED_PORTS_FROM = 20_000  # where a port chosen for a later bind is looked for
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A free loopback port for a process that binds it later (the stack, Locust's web UI).

    Looked for below the kernel's ephemeral range: a port found with ``bind(0)`` and let go
    goes back to that pool, and the next ``bind(0)`` on the machine (another run's simulator,
    under ``pytest -n``) may get it before the stack listens; measured in CI, where a stack
    found its port taken and a simulator answered its webhooks. A random port outside the
    pool is only taken by someone who asks for it by number."""
    low = _ephemeral_low()
    if low - FIXED_PORTS_FROM >= 1_000:
        rng = random.SystemRandom()
        for _ in range(64):
            port = rng.randrange(FIXED_PORTS_FROM, low)
            if _bindable(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when unreadable)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def spawn_logged(
    argv: list[str], env: dict[str, str], log_path: Path, *, append: bool = False
) -> tuple[subprocess.Popen[bytes], BinaryIO]:
    """A child process of the harness (the stack, Locust) with its output in ``log_path``,
    which dies with the harness however the harness dies. OSError: it could not start."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab" if append else "wb")
    try:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    except OSError:
        log.close()
        raise
    return proc, log


class Launched(Protocol):
    """A stack the harness started: a process (``StackProcess``) or a container
    (``harness.containers.ContainerStack``); the runner needs no more than this of either."""

    log_path: Path

    @property
    def pid(self) -> int | None: ...

    def exited(self) -> int | None: ...

    def stop(self, timeout_s: float = 10.0) -> None: ...


class StackProcess:
    """A stack the harness launched; its output goes to a log file in the report folder."""

    def __init__(self, cmd: str | list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = shlex.split(cmd) if isinstance(cmd, str) else cmd
        self.env = env
        self.log_path = log_path
        self._spawn(append=False)

    def _spawn(self, append: bool) -> None:
        try:
            self.proc, self._log = spawn_logged(self.argv, self.env, self.log_path, append=append)
        except OSError as exc:
            raise StackError(
                f"cannot start the stack command {self.argv[0]!r}: {exc.strerror}"
            ) from None

    def halt(self, kind: str, timeout_s: float = 10.0) -> int | None:
        """Take it down as a ``crash`` (SIGKILL: nothing flushed, no shutdown code) or a
        ``deploy`` (SIGTERM, SIGKILL after ``timeout_s``); its exit code. Blocks: call it off
        the event loop, which serves the simulators its shutdown may still call."""
        if self.proc.poll() is None:
            if kind == "crash":
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def start_again(self) -> None:
        """What its supervisor does after a crash or a deploy: the same command, environment
        and files; its output appended to the same log. StackError: it could not start."""
        self._spawn(append=True)

    @property
    def pid(self) -> int | None:
        """The root of its process tree, for the lockstep's process watch (``ContainerStack``
        has the same, None when the kernel here cannot see it)."""
        return self.proc.pid

    def exited(self) -> int | None:
        return self.proc.poll()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.halt("deploy", timeout_s)


class ProcessWatch:
    """Whether a stack the harness launched is doing anything, read from the kernel: the CPU
    time its threads (and its children's) have used, and whether any is running or in
    uninterruptible I/O. The harness reads /proc as ``top`` would; it never looks inside.

    For a stack with no idle probe this is the next best thing: a process that has not run
    for a millisecond, with nothing in flight at any simulator, has nothing left to do now
    (unless it defers work on a timer of its own; ``harness.timers`` covers retries)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @staticmethod
    def available() -> bool:
        return os.path.exists(f"/proc/{os.getpid()}/schedstat")

    def sample(self) -> tuple[int, bool]:
        """(nanoseconds of CPU used by the whole tree, whether any thread is running now),
        read in one walk: each task's children, CPU time and state."""
        used, running, pids = 0, False, [self.pid]
        while pids:
            pid = pids.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for task in tasks:
                base = f"/proc/{pid}/task/{task}"
                # ``children`` is absent on kernels built without it: the tree is then one process
                with contextlib.suppress(OSError), open(f"{base}/children", "rb") as f:
                    pids.extend(int(c) for c in f.read().split())
                try:
                    with open(f"{base}/schedstat", "rb") as f:
                        used += int(f.read().split()[0])
                    with open(f"{base}/stat", "rb") as f:
                        state = f.read().rsplit(b")", 1)[1].split()[0]
                except (OSError, IndexError, ValueError):
                    continue
                running = running or state in (b"R", b"D")
        return used, running


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the harness dies, however it dies (even
    SIGKILL), so a killed run never leaves a stack behind holding ports and its database."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _answers_idle(status: int, body: bytes) -> bool:
    """An idle probe's answer: 200 with a JSON object that says ``idle``."""
    if status != 200:
        return False
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and "idle" in answer


BROKEN_IN_A_ROW = 3  # answers of a probe that does not answer as one, before it is not asked


class StackProbe:
    def __init__(self, base_url: str, idle_path: str, health_path: str = HEALTH_PATH) -> None:
        self.base_url = base_url.rstrip("/")
        self.idle_path = idle_path
        self.health_path = health_path
        self._sender: Sender | None = None
        self.has_probe = True
        self.scheduled = 0  # work the stack holds for a retry timer, by its last idle answer
        self.reports_scheduled = False  # its probe says how much it holds for timers
        self.process: ProcessWatch | None = None  # set when the harness launched the stack
        self.offline = False  # the harness took it down (a scenario's stack_restarts)
        self.long_poll = True  # ask with ?wait_ms= until the stack shows it refuses the query
        self.held = False  # the last busy answer was held for a long-poll: no need to sleep
        self.asked = 0  # idle probes sent
        self.broken = 0  # of which answered 5xx or not as a probe answers (taken as busy)
        self.first_broken = ""  # the first such answer, for the verdict's note
        self._broken_in_a_row = 0

    async def _get(self, path: str, params: dict[str, int] | None = None) -> tuple[int, bytes]:
        """GET ``path`` (joined to the base URL as a browser joins it) through the lean
        sender the webhooks use: the probe is asked at every lockstep step, and while it is
        asked the stack waits (simulators.common.sender)."""
        if self._sender is None:
            self._sender = Sender(
                timeout_s=PROBE_TIMEOUT_S,
                idle_reuse_s=IDLE_REUSE_S,
                user_agent=PROBE_USER_AGENT,
                body_kept=PROBE_BODY_KEPT,
            )
        url = urljoin(f"{self.base_url}/", path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return await self._sender.get(url)

    async def wait_ready(self, timeout_s: float, process: Launched | None = None) -> None:
        """Until the stack answers its health route (503 means: still starting)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        last = "no answer"
        while asyncio.get_running_loop().time() < deadline:
            if process is not None and (code := process.exited()) is not None:
                raise StackError(
                    f"the stack exited with code {code} before it was ready "
                    f"(its output: {process.log_path})"
                )
            try:
                status, _ = await self._get(self.health_path)
                if status != 503 and status < 500:
                    return
                last = f"HTTP {status}"
            except (SendFailed, TimeoutError) as exc:
                last = str(exc) or type(exc).__name__
            await asyncio.sleep(0.05)
        raise StackError(
            f"the stack at {self.base_url} was not ready after {timeout_s:.0f} s "
            f"(GET {self.health_path}: {last})"
        )

    def note(self) -> str | None:
        """What the verdict says of a probe that did not answer as one: lockstep took each
        such answer as busy and still played the day, slower, so nothing else would show it."""
        if not self.broken:
            return None
        stopped = (
            f"; after {BROKEN_IN_A_ROW} in a row it was no longer asked, and quiet was judged "
            "as for a stack without one"
            if not self.has_probe
            else ""
        )
        return (
            f"the idle probe ({self.idle_path}) did not answer as a probe {self.broken} of "
            f"{self.asked} times (first: {self.first_broken}); each was taken as busy{stopped}"
        )

    def distrust(self) -> None:
        """Stop asking the probe: it said busy while nothing happened for a whole step
        watchdog, so quiet is judged as for a stack without one (silence, process rest)."""
        self.has_probe = False
        self.scheduled, self.reports_scheduled = 0, False

    async def idle(self) -> Idle:
        if self.offline:
            return Idle.YES  # taken down on purpose: there is nothing of its to wait for
        if not self.has_probe:
            return Idle.UNKNOWN
        asked = time.monotonic()
        try:
            if self.long_poll:
                status, body = await self._get(self.idle_path, {"wait_ms": LONG_POLL_MS})
                if not _answers_idle(status, body):
                    # a stack that refuses the parameter, or matches its route with the query
                    # string in it: ask plainly, and from then on if that is understood
                    plain = await self._get(self.idle_path)
                    if _answers_idle(*plain) or status in (400, 422):
                        self.long_poll = False
                    status, body = plain
            else:
                status, body = await self._get(self.idle_path)
        except (SendFailed, TimeoutError):
            # taken down while it was asked (a crash during one of its calls): on purpose
            return Idle.YES if self.offline else Idle.DOWN
        # a stack that ignores wait_ms answers at once; one that honours it held a busy answer
        self.held = self.long_poll and time.monotonic() - asked >= LONG_POLL_MS / 2000
        if status == 404:
            self.has_probe = False
            return Idle.UNKNOWN
        self.asked += 1
        if not _answers_idle(status, body):
            self.broken += 1
            self._broken_in_a_row += 1
            if not self.first_broken:
                said = body[:120].decode(errors="replace").strip()
                self.first_broken = f"HTTP {status}" + (f": {said!r}" if said else "")
            if self._broken_in_a_row >= BROKEN_IN_A_ROW:
                self.distrust()  # judged as a stack without a probe: no slower than that
                return Idle.UNKNOWN
        else:
            self._broken_in_a_row = 0
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Idle.NO
        if not isinstance(answer, dict):
            return Idle.NO
        self.reports_scheduled = "scheduled" in answer
        try:
            self.scheduled = max(0, int(answer.get("scheduled") or 0))
        except (TypeError, ValueError):
            self.scheduled = 0
        return Idle.YES if answer.get("idle") else Idle.NO

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()
