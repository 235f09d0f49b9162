"""What lockstep can see of a stack's own timers, without asking the stack.

Most stacks have no idle probe, or one that says only ``idle``, and they retry refused calls on
wall-clock timers of their own (a Camel redelivery policy, a Spring ``@Retryable``). If
lockstep jumps virtual time while such a stack waits, the world runs past the outage, the
cut-off or the end of the day before the stack tries again. The simulators' journals show
when a stack has reason to be waiting:

- a call was refused (429, 5xx, or no answer at all: a lost response, a reset; or a WMS
  ``422 unknown_item``/``inactive_item``, master data in flight, which the README tells a
  stack to retry) and the same call (system, method, path, business reference) has not been
  answered since, nor has the stack looked the resource up (a ``GET`` of the same collection
  asking for that reference, as the README tells a stack to do before it creates again where
  the vendor does not dedupe: what it finds, it does not create again);
- a simulator is down (an ``outage`` with ``mode: down`` refuses connections, which never
  reach the journal), or came back up moments ago.

While either holds, lockstep lets virtual time flow at the clock's pace instead of jumping.
An open refusal stops counting once the stack has had ``give_up_after_s`` wall seconds to try
again: a stack that dead-letters the call is not waited for forever.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from simulators.common.simulator import Simulator

REFUSED = frozenset({0, 429, 500, 502, 503, 504})
# business refusals a stack is told to retry: the item has not reached the WMS yet (README,
# "master data"); its retry is as much a timer of the stack's as a throttle's
RETRY_LATER = frozenset({(422, "unknown_item"), (422, "inactive_item")})
LEARN_AFTER = 10  # retries seen before the stack's own patience is learnt


@dataclass(frozen=True)
class Refusal:
    system: str
    call: str  # "POST /labels"
    ref: str | None
    status: int
    wall_time: float
    retry_after: float | None
    unknown: bool = False  # the answer was lost: the work may have been done

    @property
    def may_be_done(self) -> bool:
        """Whether a lookup can answer this refusal: a lost answer, a 5xx or a reset may hide
        work done; a 429 or a 422 says plainly that nothing was."""
        return self.unknown or self.status == 0 or self.status >= 500

    def describe(self) -> str:
        answer = f"HTTP {self.status}" if self.status else "no answer"
        about = f" for {self.ref}" if self.ref else ""
        wait = f", Retry-After {self.retry_after:g} s" if self.retry_after else ""
        return f"{self.system} {self.call}{about} ({answer}{wait})"


class RetryWatch:
    """Reads the simulators' journals as they grow and keeps the refusals not yet retried."""

    def __init__(
        self,
        sims: Sequence[Simulator],
        *,
        give_up_after_s: float = 30.0,
        after_down_s: float = 5.0,
    ) -> None:
        self.sims = list(sims)
        self.give_up_after_s = give_up_after_s
        self.after_down_s = after_down_s
        self._read = dict.fromkeys((s.system for s in self.sims), 0)
        self._open: dict[tuple[str, str, str, str], Refusal] = {}
        self.retried: list[float] = []  # wall s from a refusal to the call that retried it
        self._down_until_wall: float = 0.0
        self.progress = 0  # exchanges that were not refusals: the system moved on

    def moved(self) -> int:
        """How many exchanges so far were not refusals (a stack retrying into a refusal, again
        and again, is waiting, however busy the wire looks)."""
        self._scan()
        return self.progress

    def _scan(self) -> None:
        for sim in self.sims:
            entries = sim.journal.entries
            start = self._read[sim.system]
            for entry in entries[start:]:
                if entry.direction != "in" or entry.path.startswith(("/_sim", "/webhooks")):
                    self.progress += 1  # a delivery, a subscription: something moved
                    continue
                call = (sim.system, entry.method, entry.path)
                if (
                    entry.status in REFUSED
                    or (entry.status, entry.error) in RETRY_LATER
                    or entry.fault == "lost_response"
                ):
                    self._open[(*call, entry.body_digest)] = Refusal(
                        sim.system,
                        f"{entry.method} {entry.path}",
                        entry.ref,
                        entry.status,
                        entry.wall_time,
                        entry.retry_after,
                        entry.fault == "lost_response",
                    )
                else:
                    self.progress += 1
                    if self._open:
                        self._answered(call, entry.body_digest, entry.ref)
                        if entry.method == "GET" and entry.query:
                            self._looked_up(sim.system, entry.path, entry.query)
            self._read[sim.system] = len(entries)

    def _answered(self, call: tuple[str, str, str], digest: str, ref: str | None) -> None:
        """A call was answered: the refusals it retried are closed. The same body is the same
        call; so is the same business reference, or, on a path naming one resource, any call
        (a refusal answered before the body was read has no reference)."""
        one_resource = _names_a_resource(call[2])
        for key, refusal in list(self._open.items()):
            if key[:3] != call:
                continue
            if (
                key[3] == digest
                or (ref is not None and refusal.ref == ref)
                or (one_resource and refusal.ref is None)
            ):
                self.retried.append(max(0.0, time.time() - refusal.wall_time))
                del self._open[key]

    def _looked_up(self, system: str, path: str, query: str) -> None:
        """A lookup was answered (``GET /transfers?transfer_ref=TO-1``): a write to that
        collection for that reference whose answer was lost is no longer owed; the stack found
        it, or creates it now, with no timer in between."""
        asked = {value for _, value in parse_qsl(query)}
        for key, refusal in list(self._open.items()):
            if key[0] == system and key[2] == path and refusal.ref in asked and refusal.may_be_done:
                self.retried.append(max(0.0, time.time() - refusal.wall_time))
                del self._open[key]

    def _down_now(self, virtual_now: float) -> list[str]:
        down = []
        for sim in self.sims:
            for fault in sim.faults.faults:
                if fault.is_down and fault.open_at(virtual_now):
                    down.append(sim.system)
        return down

    def patience(self) -> float:
        """How long a refusal is held open: ``give_up_after_s`` until the stack has shown how
        soon it retries, then twice the longest wait it has shown (at least a second)."""
        if len(self.retried) < LEARN_AFTER:
            return self.give_up_after_s
        return min(self.give_up_after_s, max(1.0, 2 * max(self.retried)))

    def waiting(self, virtual_now: float) -> str | None:
        """Why the stack may be waiting on a timer of its own now, or None."""
        self._scan()
        wall = time.time()
        down = self._down_now(virtual_now)
        if down:
            self._down_until_wall = wall + self.after_down_s
            return f"{', '.join(down)} down: the stack's calls are refused"
        if wall < self._down_until_wall:
            return "a simulator came back up moments ago: the stack may still be backing off"
        patience = self.patience()
        for key, refusal in list(self._open.items()):
            if wall - refusal.wall_time > patience + (refusal.retry_after or 0):
                del self._open[key]  # given up (dead-lettered, or never to be retried)
        if not self._open:
            return None
        oldest = min(self._open.values(), key=lambda r: r.wall_time)
        more = f" and {len(self._open) - 1} more" if len(self._open) > 1 else ""
        return f"a retry is due: {oldest.describe()}{more}"


def _names_a_resource(path: str) -> bool:
    """``/fulfilment-orders/FO-1/label`` names one resource; ``/fulfilment-orders`` a
    collection (a refusal there without a reference could be any order's)."""
    return any(any(ch.isdigit() for ch in part) for part in path.split("/"))
