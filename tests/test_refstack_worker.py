"""The reference stack's worker: per-entity FIFO, retries, dead letters and the idle counters.

A property test: random jobs over a few entities, each attempt's outcome drawn at random,
some jobs added while others run. The runner is a fake (no HTTP); the store is real.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_stack.clients import Outcome, Verdict
from reference_stack.steps import Completion
from reference_stack.store import Job, Store
from reference_stack.worker import Worker

MAX_ATTEMPTS = 3
VERDICTS = st.sampled_from([Verdict.OK, Verdict.DONE, Verdict.RETRY, Verdict.REFUSED])
JOBS = st.lists(
    st.tuples(st.sampled_from("ABC"), st.lists(VERDICTS, min_size=1, max_size=4), st.booleans()),
    min_size=1,
    max_size=12,
)


def expected_attempts(verdicts: list[Verdict]) -> tuple[int, bool]:
    """How often a job runs, and whether it ends dead."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        verdict = verdicts[min(attempt, len(verdicts)) - 1]
        if verdict is not Verdict.RETRY:
            return attempt, verdict is Verdict.REFUSED
    return MAX_ATTEMPTS, True


async def scenario(store: Store, jobs: list[tuple[str, list[Verdict], bool]]) -> None:
    plans: dict[int, list[Verdict]] = {}
    runs: list[tuple[str, int]] = []
    running: set[str] = set()

    async def run(job: Job) -> Completion:
        assert job.entity not in running, "two jobs of one entity ran at once"
        assert min(worker.running, worker.due, worker.scheduled) >= 0
        assert worker.running >= 1
        # every open job is counted exactly once: running, due or scheduled
        assert worker.running + worker.due + worker.scheduled == len(store.open_jobs())
        running.add(job.entity)
        runs.append((job.entity, job.id))
        for _ in range(job.id % 3):  # let other entities' jobs interleave
            await asyncio.sleep(0)
        running.discard(job.entity)
        verdicts = plans[job.id]
        return Completion(Outcome(verdicts[min(job.attempts, len(verdicts)) - 1], error="x"))

    worker = Worker(
        store, run, workers=3, max_attempts=MAX_ATTEMPTS, retry_base_s=0.0002, retry_max_s=0.0005
    )
    await worker.start()

    def add(entity: str, verdicts: list[Verdict]) -> None:
        with store.transaction():
            job = store.add_job("test", entity, f"k-{len(plans)}", {}, "corr")
        plans[job.id] = verdicts
        worker.add([job])

    for entity, verdicts, later in jobs:
        if later:
            await asyncio.sleep(0)
        add(entity, verdicts)
    deadline = asyncio.get_running_loop().time() + 10
    while worker.running or worker.due or worker.scheduled:
        assert asyncio.get_running_loop().time() < deadline, "the worker never drained"
        await asyncio.sleep(0.0005)
    await worker.stop()

    dead = 0
    for job_id, verdicts in plans.items():
        attempts, ends_dead = expected_attempts(verdicts)
        assert sum(1 for r in runs if r[1] == job_id) == attempts
        dead += ends_dead
    assert worker.dead == dead == store.count_dead()
    for entity in "ABC":  # FIFO: an entity's jobs run in creation order, never interleaved
        ids = [job_id for e, job_id in runs if e == entity]
        assert ids == sorted(ids)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(JOBS)
def test_jobs_run_one_at_a_time_per_entity_in_order_and_counters_drain(
    jobs: list[tuple[str, list[Verdict], bool]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "stack.db")
        try:
            asyncio.run(scenario(store, jobs))
        finally:
            store.close()


Runner = Callable[[Job], Awaitable[Completion]]


def drain(run: Runner, entities: list[str], **worker: Any) -> tuple[list[str], int]:
    """One job per entity through a worker running ``run``, until nothing is running, due or
    scheduled; each job's final status and the worker's dead-letter count."""

    async def play(store: Store) -> int:
        w = Worker(
            store,
            run,
            workers=2,
            max_attempts=MAX_ATTEMPTS,
            retry_base_s=0.0002,
            retry_max_s=0.0005,
            **worker,
        )
        await w.start()
        with store.transaction():
            jobs = [store.add_job("test", e, f"k-{e}", {}, "corr") for e in entities]
        w.add(jobs)
        deadline = asyncio.get_running_loop().time() + 10
        while w.running or w.due or w.scheduled:
            assert asyncio.get_running_loop().time() < deadline, "the worker never drained"
            await asyncio.sleep(0.0005)
        await w.stop()
        return w.dead

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "stack.db")
        try:
            dead = asyncio.run(play(store))
            return [store.job(i + 1).status for i in range(len(entities))], dead
        finally:
            store.close()


def test_a_throttled_job_waits_its_turn_past_the_attempt_limit_and_a_failing_one_does_not():
    """429 with Retry-After is the vendor saying when to come back, not a failure: a job
    throttled more often than ``max_attempts`` still completes; a 503 without one is dead."""
    attempts: list[int] = []

    async def run(job: Job) -> Completion:
        attempts.append(job.id)
        if job.entity == "throttled" and job.attempts <= MAX_ATTEMPTS + 2:
            return Completion(Outcome(Verdict.RETRY, status=429, retry_after=0.0, error="q"))
        if job.entity == "failing":
            return Completion(Outcome(Verdict.RETRY, status=503, error="down"))
        return Completion(Outcome(Verdict.OK))

    statuses, dead = drain(run, ["throttled", "failing"])
    assert attempts.count(1) == MAX_ATTEMPTS + 3 and statuses[0] == "done"
    assert attempts.count(2) == MAX_ATTEMPTS and statuses[1] == "dead"
    assert dead == 1


def test_an_attempt_cut_off_by_the_timeout_is_not_retried_before_the_vendor_gave_up_on_it() -> None:
    """A vendor's gateway abandons a request after IN_DOUBT_S: until then an attempt our
    timeout cut off may still land, and a look (or a second create at a WMS that ignores
    keys) before that would make the same thing twice. Any other retry keeps its backoff."""
    started: dict[str, list[float]] = {"in-doubt": [], "failed": []}

    async def run(job: Job) -> Completion:
        started[job.entity].append(time.time())
        if job.attempts == 1:
            doubt = job.entity == "in-doubt"
            status = None if doubt else 503
            return Completion(Outcome(Verdict.RETRY, status=status, error="x", in_doubt=doubt))
        return Completion(Outcome(Verdict.OK))

    drain(run, list(started), in_doubt_s=1.0)  # 30 s in production: the gateway's timeout
    first, second = started["in-doubt"]
    assert second - first >= 1.0 - 0.01  # held until the vendor's gateway gave up
    first, second = started["failed"]
    assert second - first < 1.0  # a 503 is an answer: nothing is in flight, backoff only
