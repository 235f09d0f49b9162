"""A run's report folder: one run at a time, and never last run's verdict left lying about.

Two runs writing into one folder (two ``twinyard run`` with one ``--report-dir``, two xdist
workers playing one scenario) would mix journals, databases and verdicts. A run claims its
folder with an advisory lock for as long as it plays; a second run is refused with a clear
message. On claiming, the previous run's reports are removed, so a run that cannot start
never leaves a passing ``verdict.json`` behind to be mistaken for its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK = ".twinyard.lock"
REPORTS = (
    "verdict.json",
    "junit.xml",
    "report.html",
    "journal.jsonl",
    "state.json",
    "dead_letters.json",
    "stack.log",
    "refstack.db",
    "refstack.db-wal",
    "refstack.db-shm",
)


class FolderInUse(Exception):
    """Another run holds the folder."""


@contextlib.contextmanager
def claimed(folder: Path) -> Iterator[Path]:
    """Hold ``folder`` for one run; its previous reports are gone once this is entered."""
    if folder.exists() and not folder.is_dir():
        raise FolderInUse(f"the report folder {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "?"
            raise FolderInUse(
                f"the report folder {folder} is in use by another twinyard run (pid {holder}); "
                "give each run its own --report-dir"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, str(os.getpid()).encode(), 0)
        for name in REPORTS:
            (folder / name).unlink(missing_ok=True)
        yield folder
    finally:
        os.close(handle)  # closing releases the lock
