"""Judging a large day on two cores: the lineage tables in a forked child, the rest here.

When a day has been played the stack is stopped and one core sits idle while the harness
judges (about 5 s for the 10,000-order day, half of it the lineage tables). The lineage
tables share the documents they derive from the view (``harness.oracles.documents``), so they
go together to a child forked from this process, which sees the same view without copying
it; the other oracles are judged here meanwhile, and the child's results come back pickled
through a pipe. The results are the same, in the same order, as ``judge`` gives.

Only where ``os.fork`` is safe to use this way (Linux) and for days of at least
``FORK_FROM_ORDERS`` orders (a fork and a pickle cost more than a small day's judging). A
child that fails in any way (killed, an exception, nothing sent back) is not trusted: its
oracles are judged again here, so an oracle that raises still raises as it would have.
"""

from __future__ import annotations

import os
import pickle
import sys

from harness.oracles import lineage
from harness.oracles.base import Oracle, OracleResult
from harness.oracles.view import SystemsView

FORK_FROM_ORDERS = 1_000  # ERP orders in the view from which judging forks


def judge_split(
    view: SystemsView, chosen: list[Oracle], *, from_orders: int = FORK_FROM_ORDERS
) -> list[OracleResult]:
    """Each chosen oracle's result, in order; the lineage tables judged in a child when the
    day is large enough and this platform forks safely."""
    tables = [o for o in chosen if o.rule.__module__ == lineage.__name__]
    here = [o for o in chosen if o.rule.__module__ != lineage.__name__]
    if not tables or not here or len(view.erp_orders) < from_orders or sys.platform != "linux":
        return [o.judge(view) for o in chosen]
    theirs = _in_child(view, tables)
    mine = [o.judge(view) for o in here]
    results = {r.name: r for r in mine}
    results.update((r.name, r) for r in theirs.collect() or [o.judge(view) for o in tables])
    return [results[o.name] for o in chosen]


class _Child:
    """A forked child judging some oracles; ``collect`` waits for its results (None when it
    failed)."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid, self.read_fd = pid, read_fd

    def collect(self) -> list[OracleResult] | None:
        with os.fdopen(self.read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        if status != 0 or not data:
            return None
        try:
            return pickle.loads(data)
        except Exception:  # a torn or foreign pickle: judge them here instead
            return None


def _in_child(view: SystemsView, oracles: list[Oracle]) -> _Child:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return _Child(pid, read_fd)
    code = 1
    try:  # the child: judge, send, and leave without running the parent's exit handlers
        os.close(read_fd)
        data = pickle.dumps([o.judge(view) for o in oracles], pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        os._exit(code)
