"""Configuration from the environment (README "Point it at your own stack") and planted bugs."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

SYSTEMS = ("erp", "wms", "tms", "carrier")

BUGS = {
    "cursor-before-commit": "the cursor is saved before the batch is processed; a failure ends it",
    "partial-batch": "a batch's cursor is committed even when one of its records failed",
    "same-second": "the change list is read with `>` on one-second stamps (updated_since + 1 s)",
    "first-page-only": "one page per cycle, then the cursor jumps to the end of the feed",
    "own-clock": "the change list's next updated_since is our own clock when the poll started "
    "(GET /_sim/clock, twinyard's virtual time, our datetime.now()), not the newest stamp read",
    "look-at-once": "a WMS create our timeout cut off is looked for (and sent again) on the next "
    "cycle, not 30 s after it was sent, while it may still land",
    "lacking-field-dead": "a 2xx answer that lacks a field a flow reads sets the record aside as "
    "a dead letter (which this stack cannot replay), instead of trying it again later",
}


@dataclass(frozen=True)
class Config:
    """Everything the stack reads from its environment."""

    urls: dict[str, str]
    port: int
    interval_s: float
    page_limit: int
    run_dir: Path | None
    bugs: frozenset[str]


def fail(message: str) -> None:
    """A configuration error: one line on stderr, exit code 2."""
    print(f"pollstack: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load(env: dict[str, str] | None = None) -> Config:
    """Read and check the environment."""
    env = dict(os.environ if env is None else env)
    urls = {}
    for system in SYSTEMS:
        url = env.get(f"TWINYARD_{system.upper()}_URL", "").rstrip("/")
        if not url.startswith(("http://", "https://")):
            fail(f"TWINYARD_{system.upper()}_URL must be an http(s) URL, got {url!r}")
        urls[system] = url
    try:
        port = int(env.get("TWINYARD_STACK_PORT", "8710"))
        interval = float(env.get("POLLSTACK_INTERVAL_S", "2.0"))
        limit = int(env.get("POLLSTACK_PAGE_LIMIT", "100"))
    except ValueError as exc:
        fail(f"bad number in the environment: {exc}")
    if interval <= 0 or not 1 <= limit <= 500:
        fail("POLLSTACK_INTERVAL_S must be > 0 and POLLSTACK_PAGE_LIMIT in 1..500")
    bugs = frozenset(b.strip() for b in env.get("POLLSTACK_BUGS", "").split(",") if b.strip())
    if unknown := bugs - BUGS.keys():
        fail(f"unknown POLLSTACK_BUGS {sorted(unknown)}; known: {sorted(BUGS)}")
    run_dir = env.get("TWINYARD_RUN_DIR")
    return Config(urls, port, interval, limit, Path(run_dir) if run_dir else None, bugs)
