"""Why a run went the way it did, said before what the oracles found.

An oracle names the orders that ended wrong; a reader then asks why. Most first runs against
a new stack fail for reasons no oracle is about: the stack refused every webhook (a wrong
route, a signature check that never passes), it still held a previous run's state and took
this run's SO-000001 for one it had done, or it died half-way. Each is visible from the
simulators' journals and the launched process, so it is said first, in plain words.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Sequence

from harness.oracles.view import Journals, SystemsView

PROBES = ("forged", "garbled", "replayed")  # deliveries a stack must refuse: no diagnosis in them


Downtime = Sequence[tuple[float, float]]  # virtual [from, to): the harness had the stack down


def refused_deliveries(journals: Journals, downtime: Downtime = ()) -> str | None:
    """Webhook deliveries the stack refused or never acknowledged (security probes aside, and
    those sent while the harness had the stack down on purpose: a scenario's restarts)."""
    total, refused = 0, []
    for entries in journals.values():
        for entry in entries:
            if entry["direction"] != "out" or str(entry.get("fault") or "").startswith(PROBES):
                continue
            total += 1
            down = any(start <= entry["virtual_time"] < end for start, end in downtime)
            if not 200 <= entry["status"] < 300 and not down:
                refused.append(entry)
    if not refused:
        return None
    statuses = Counter(e["status"] or "no answer" for e in refused)
    first = min(refused, key=lambda e: (e["wall_time"], e["seq"]))
    said = f": {first['error']!r}" if first.get("error") else ""
    return (
        f"the stack refused or never acknowledged {len(refused)} of {total} webhook deliveries "
        f"({', '.join(f'{s} x{n}' for s, n in statuses.most_common())}); first: "
        f"{first['system']} {first.get('event_type')} to {first['path']} answered "
        f"{first['status'] or 'nothing'}{said}"
    )


def ignored_orders(view: SystemsView, journals: Journals) -> str | None:
    """Released orders the stack acknowledged but never called a vendor about: the mark of a
    stack that kept a previous run's state (order numbers start again at SO-000001)."""
    called = {
        view.order_of(e.get("ref"))
        for entries in journals.values()
        for e in entries
        if e["direction"] == "in"
    }
    acknowledged = {
        e.get("ref")
        for e in journals.get("erp", [])
        if e["direction"] == "out"
        and e.get("event_type") == "order.released"
        and 200 <= e["status"] < 300
    }
    ignored = sorted(
        o["id"] for o in view.released_orders() if o["id"] in acknowledged and o["id"] not in called
    )
    if len(ignored) < 2:
        return None
    return (
        f"{len(ignored)} released orders were acknowledged by the stack but it never called a "
        f"vendor about them (first: {ignored[0]}); a stack that kept a previous run's state "
        "takes this run's orders for ones it has done: restart or clean it between runs"
    )


def exit_status(code: int | None) -> str | None:
    """A launched stack that is gone: its exit code, or the signal that killed it."""
    if code is None:
        return None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the stack was killed by {name} during the run (its output: stack.log)"
    return f"the stack exited with code {code} during the run (its output: stack.log)"


def diagnose(
    view: SystemsView,
    journals: Journals,
    *,
    launched: bool,
    exit_code: int | None,
    downtime: Downtime = (),
) -> list[str]:
    said = [exit_status(exit_code), refused_deliveries(journals, downtime)]
    if not launched:
        said.append(ignored_orders(view, journals))
    return [s for s in said if s]
