"""Locust, the engine of a load run: its command line and its process.

Locust runs as ``python -m locust`` in a process of its own (gevent's monkey-patching and the
harness's asyncio loop do not share a process), with its output in the report folder's
``locust.log``. ``--processes N`` forks a master and N workers on this machine; their port is
chosen free per run, so runs side by side (pytest-xdist) do not meet on Locust's 5557.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.stack import free_port, spawn_logged

LOCUSTFILE = Path(__file__).with_name("locustfile.py")  # what loadtests/peak_season.py uses
WEB_AUTOQUIT_S = 60  # with --web, Locust's UI stays up this long after the day


class EngineError(Exception):
    """Locust cannot run as asked (not installed, a locustfile missing): exit code 2."""


@dataclass
class EngineOptions:
    """How Locust runs: the options ``twinyard load`` passes on."""

    locustfile: Path = LOCUSTFILE
    processes: int | None = None  # None: one process; N: a master and N workers
    web: bool = False  # Locust's UI (started at once) instead of headless
    web_port: int = 8089
    csv: Path | None = None  # Locust's --csv prefix
    html: Path | None = None  # Locust's --html report
    extra: list[str] = field(default_factory=list)  # more Locust options, as given


def available() -> bool:
    """Is Locust installed next to this Python?"""
    import importlib.util

    return importlib.util.find_spec("locust") is not None


def command(options: EngineOptions, erp_url: str, feed_url: str) -> list[str]:
    """The Locust command line: the ERP is Locust's host; the feed is where the locustfile
    reads its plan and the flows."""
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(options.locustfile),
        "--host",
        erp_url,
        "--twinyard-feed",
        feed_url,
        "--loglevel",
        "INFO",
    ]
    if options.web:
        argv += ["--autostart", "--autoquit", str(WEB_AUTOQUIT_S)]
        argv += ["--web-host", "127.0.0.1", "--web-port", str(options.web_port)]
    else:
        argv += ["--headless", "--only-summary"]
    if options.csv is not None:
        argv += ["--csv", str(options.csv)]
    if options.html is not None:
        argv += ["--html", str(options.html)]
    if options.processes:
        port = free_port()
        argv += ["--processes", str(options.processes)]
        argv += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
        argv += ["--master-host", "127.0.0.1", "--master-port", str(port)]
    return argv + list(options.extra)


class LocustProcess:
    """Locust started by the harness; it dies with the harness, however the harness dies."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.argv = argv
        try:
            self.proc, self._log = spawn_logged(argv, env, log_path)
        except OSError as exc:
            raise EngineError(f"cannot start Locust ({argv[0]}): {exc.strerror}") from None

    def exited(self) -> int | None:
        return self.proc.poll()

    async def wait(self, timeout_s: float) -> int | None:
        """Locust's exit code, or None if it is still running after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (code := self.proc.poll()) is None and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return code

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Stop it (SIGINT first: Locust writes its reports on the way out)."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 8) -> str:
        """The end of Locust's output, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])
