"""Runs jobs: one at a time per entity in FIFO order, different entities concurrently.

Each entity (an order ref, a SKU, a receipt) has a lane: the queue of its open jobs, of which
only the head may run. A lane is *due* (its head waits for a worker), *running*, or
*scheduled* (its head waits for a retry timer). Workers block on a queue of due lanes, so new
work starts at once; the only timers are one per scheduled lane, set to its retry time.

The idle probe reads the counters kept here, updated on every transition, never a table scan:
``running`` heads on the wire; ``due`` jobs that will run without any timer firing (due heads
and the jobs queued behind a running head); ``scheduled`` jobs waiting on a retry timer (a
retrying head and the jobs queued behind it). A step's result, the jobs it starts and the
counter changes happen without an await in between, so the probe never sees a gap between
one step and the next.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum

from reference_stack.clients import IN_DOUBT_S, Outcome, Verdict
from reference_stack.defects import IGNORE_RETRY_AFTER
from reference_stack.steps import Completion
from reference_stack.store import DEAD, DONE, PENDING, Job, Store

WAITING_ATTEMPTS_FACTOR = 5  # waits (throttled, master data in flight): this x the attempts

log = logging.getLogger("reference_stack.worker")

Runner = Callable[[Job], Awaitable[Completion]]


class LaneState(Enum):
    DUE = "due"
    RUNNING = "running"
    SCHEDULED = "scheduled"


class Lane:
    __slots__ = ("entity", "jobs", "state", "timer")

    def __init__(self, entity: str) -> None:
        self.entity = entity
        self.jobs: deque[Job] = deque()
        self.state = LaneState.DUE
        self.timer: asyncio.TimerHandle | None = None


class Worker:
    def __init__(
        self,
        store: Store,
        run: Runner,
        *,
        workers: int,
        max_attempts: int,
        retry_base_s: float,
        retry_max_s: float,
        in_doubt_s: float = IN_DOUBT_S,
        defects: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.run = run
        self.workers = workers
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.in_doubt_s = in_doubt_s
        self.honour_retry_after = IGNORE_RETRY_AFTER not in defects
        self.running = 0
        self.due = 0
        self.scheduled = 0
        self.on_change: Callable[[], None] | None = None  # told after the counters move
        self._lanes: dict[str, Lane] = {}
        self._ready: asyncio.Queue[Lane] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def dead(self) -> int:
        """Dead letters waiting for the on-call (the store keeps the count)."""
        return self.store.dead

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the workers and take back every open job (running ones were cut off)."""
        self.store.requeue_running()
        self.add(self.store.open_jobs())
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
        self.store.requeue_running()

    # -- adding work ---------------------------------------------------------------------
    def add(self, jobs: Iterable[Job]) -> None:
        """Queue committed jobs behind the open jobs of their entity."""
        for job in jobs:
            lane = self._lanes.get(job.entity)
            if lane is None:
                lane = self._lanes[job.entity] = Lane(job.entity)
                lane.jobs.append(job)
                self._arm(lane)
            else:
                self._count(lane, -1)
                lane.jobs.append(job)
                self._count(lane, +1)

    def replay(self, job: Job) -> None:
        """A dead letter back to pending, at the end of its entity's queue."""
        with self.store.transaction():
            self.store.replay_job(job, replay_key(job))
        self.add([job])

    # -- the loop ------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            lane = await self._ready.get()
            self._set_state(lane, LaneState.RUNNING)
            job = lane.jobs[0]
            started = await self._attempt(job)
            self._count(lane, -1)
            if job.status != PENDING:
                lane.jobs.popleft()
            if lane.jobs:
                self._arm(lane)
            else:
                del self._lanes[lane.entity]
            self.add(started)

    async def _attempt(self, job: Job) -> list[Job]:
        """Run one attempt and settle it; returns the follow-up jobs it started."""
        with self.store.transaction():
            self.store.start_job(job)
        await self.store.flushed()  # the attempt is on record before the call can land
        sent_at = time.time()
        try:
            completion = await self.run(job)
            return self._settle(job, completion, sent_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, or a vendor answer shaped unlike its contract
            log.exception("job %s %s for %s failed inside the stack", job.id, job.kind, job.entity)
            internal = Outcome(Verdict.REFUSED, error=f"internal error: {exc!r}")
            return self._settle(job, Completion(internal), sent_at)

    def _settle(self, job: Job, completion: Completion, sent_at: float) -> list[Job]:
        outcome = completion.outcome
        started: list[Job] = []
        next_attempt_at = None
        waiting = self._waiting(outcome)
        with self.store.transaction():
            if outcome.succeeded:
                status = DONE
                if completion.record is not None:
                    started = completion.record()
            elif outcome.verdict is Verdict.RETRY and self._may_retry(job, waiting):
                status = PENDING
                tries = job.waits + 1 if waiting else job.attempts - job.waits
                next_attempt_at = time.time() + self.retry_delay(tries, outcome.retry_after)
                if outcome.in_doubt:
                    # An attempt our timeout cut off may still land: a look (or a send that a
                    # vendor without keys takes as new) before its gateway gave up on it
                    # could make the same thing twice.
                    next_attempt_at = max(next_attempt_at, sent_at + self.in_doubt_s)
                if outcome.fresh_key:
                    self.store.rekey_job(job, retry_key(job))
            else:
                status = DEAD
            self.store.settle_job(
                job,
                status,
                error=outcome.error,
                http_status=outcome.status,
                response=outcome.body,
                next_attempt_at=next_attempt_at,
                waited=waiting,
            )
        if job.status == DEAD:
            log.warning(
                "dead letter: job %s %s for %s: %s", job.id, job.kind, job.entity, outcome.error
            )
        return started

    @staticmethod
    def _waiting(outcome: Outcome) -> bool:
        """A vendor that throttles (429 with Retry-After) said when to come back, a WMS that
        does not hold an order's item yet (a 422 retried: master data in flight) will once the
        item arrives, and an ERP that refuses a receipt before its issue (a 409 retried) will
        once the issue is booked: waiting our turn, not failing."""
        if outcome.verdict is not Verdict.RETRY:
            return False
        throttled = outcome.status == 429 and outcome.retry_after is not None
        return throttled or outcome.status in (409, 422)

    def _may_retry(self, job: Job, waiting: bool) -> bool:
        """Waits have their own, larger budget and never use up the failures' (a job throttled
        through a storm and then refused 503 by a vendor that fell over still has all its
        retries)."""
        if waiting:
            return job.waits + 1 < self.max_attempts * WAITING_ATTEMPTS_FACTOR
        return job.attempts - job.waits < self.max_attempts

    def retry_delay(self, attempts: int, retry_after: float | None) -> float:
        """Retry-After when the vendor sent one; else exponential backoff with jitter, capped."""
        if retry_after is not None:
            return retry_after if self.honour_retry_after else 0.0
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** min(attempts - 1, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    # -- lanes and counters --------------------------------------------------------------
    def _arm(self, lane: Lane) -> None:
        """Make a lane due now, or schedule it for its head's retry time."""
        delay = lane.jobs[0].next_attempt_at - time.time()
        if delay <= 0:
            lane.state = LaneState.DUE
            self._ready.put_nowait(lane)
        else:
            lane.state = LaneState.SCHEDULED
            lane.timer = asyncio.get_running_loop().call_later(delay, self._wake, lane)
        self._count(lane, +1)

    def _wake(self, lane: Lane) -> None:
        lane.timer = None
        self._set_state(lane, LaneState.DUE)
        self._ready.put_nowait(lane)

    def _set_state(self, lane: Lane, state: LaneState) -> None:
        self._count(lane, -1)
        lane.state = state
        self._count(lane, +1)

    def _count(self, lane: Lane, sign: int) -> None:
        waiting = len(lane.jobs)
        if lane.state is LaneState.RUNNING:
            self.running += sign
            self.due += sign * (waiting - 1)
        elif lane.state is LaneState.DUE:
            self.due += sign * waiting
        else:
            self.scheduled += sign * waiting
        if self.on_change is not None:
            self.on_change()


def retry_key(job: Job) -> str:
    """The Idempotency-Key of a retry after a refusal the vendor remembers under the old key
    (it would replay the refusal): a new one per retry, named after the business action."""
    return f"{job.idempotency_key}-retry-{uuid.uuid4().hex[:6]}"


def replay_key(job: Job) -> str:
    """The Idempotency-Key a replayed dead letter is sent with.

    A vendor that refused a key (4xx other than 429) did nothing under it but remembers the
    refusal, so the same key would only replay it: a refused job gets a fresh key. A job that
    died of retryable failures keeps its key, since one of those attempts may have succeeded.
    """
    refused = job.last_status is not None and 400 <= job.last_status < 500
    if refused and job.last_status != 429:
        return f"{job.idempotency_key}-replay-{uuid.uuid4().hex[:6]}"
    return job.send_key
