"""Jobs, one queue per business key (an order), and the dead letters they end in."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("ministack.worker")


@dataclass
class Job:
    id: str
    kind: str  # the event type (or step) it carries out
    key: str  # jobs with one key run one after the other, in arrival order
    run: Callable[[], Awaitable[None]]
    status: str = "queued"  # queued, done, dead, replaying, replayed, resolved
    reason: str | None = None
    runs: int = 0
    dead_at: float | None = None

    def public(self) -> dict:
        fields = ("id", "kind", "key", "status", "reason", "runs", "dead_at")
        return {name: getattr(self, name) for name in fields}


class Worker:
    def __init__(self) -> None:
        self.queues: dict[str, deque[Job]] = {}
        self.busy = 0  # queues whose head job is not waiting on a timer
        self.waiting = 0  # queues whose head job is waiting on a retry timer
        self.jobs: dict[str, Job] = {}  # those that died at least once, by id
        self.ids = itertools.count(1)
        self.tasks: set[asyncio.Task] = set()
        self.held: dict[str, list[asyncio.Future]] = {}  # jobs holding for wake(topic)

    @property
    def idle(self) -> bool:
        return self.busy == 0

    def submit(self, kind: str, key: str, run: Callable[[], Awaitable[None]]) -> Job:
        job = Job(f"JOB-{next(self.ids):06d}", kind, key, run)
        self._enqueue(job)
        return job

    def bury(self, kind: str, key: str, reason: str) -> Job:
        """A dead letter for an event that could not even be turned into a job."""

        async def unreadable() -> None:
            raise ValueError(reason)

        job = Job(f"JOB-{next(self.ids):06d}", kind, key, unreadable)
        self._die(job, reason)
        return job

    async def sleep(self, seconds: float) -> None:
        self.busy, self.waiting = self.busy - 1, self.waiting + 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.busy, self.waiting = self.busy + 1, self.waiting - 1

    async def hold(self, topic: str, seconds: float) -> None:
        """Wait until wake(topic) or until `seconds` pass; not busy meanwhile (like sleep).

        wake() counts the job busy again before it resumes, so an idle probe asked in
        between never sees a woken job as idle."""
        woken = asyncio.get_running_loop().create_future()
        self.held.setdefault(topic, []).append(woken)
        self.busy, self.waiting = self.busy - 1, self.waiting + 1
        try:
            await asyncio.wait({woken}, timeout=seconds)
        finally:
            if not woken.done():  # the timer ran out (or the job was cancelled)
                woken.cancel()
                self.busy, self.waiting = self.busy + 1, self.waiting - 1
            waiters = self.held.get(topic, [])
            if woken in waiters:
                waiters.remove(woken)
                if not waiters:
                    del self.held[topic]

    def wake(self, topic: str) -> None:
        for woken in self.held.pop(topic, []):
            if not woken.done():
                woken.set_result(None)
                self.busy, self.waiting = self.busy + 1, self.waiting - 1

    def dead(self) -> list[Job]:
        return [job for job in self.jobs.values() if job.status == "dead"]

    def replay(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None or job.status != "dead":
            return None
        job.status = "replaying"
        log.info("%s %s %s: replaying", job.id, job.kind, job.key)
        self._enqueue(job)
        return job

    def resolve(self, key: str, kind: str) -> None:
        """Dead letters made moot by a later success (an address corrected, a label bought)."""
        for job in self.dead():
            if job.key == key and job.kind == kind:
                job.status = "resolved"

    def _enqueue(self, job: Job) -> None:
        queue = self.queues.get(job.key)
        if queue is None:
            queue = self.queues[job.key] = deque()
            self.busy += 1
            task = asyncio.get_running_loop().create_task(self._drain(job.key, queue))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        queue.append(job)

    async def _drain(self, key: str, queue: deque[Job]) -> None:
        try:
            while queue:
                await self._run(queue[0])
                queue.popleft()
        finally:
            del self.queues[key]
            self.busy -= 1

    async def _run(self, job: Job) -> None:
        job.runs += 1
        try:
            await job.run()
        except Exception as exc:
            self._die(job, f"{type(exc).__name__}: {exc}")
        else:
            job.status = "replayed" if job.status == "replaying" else "done"

    def _die(self, job: Job, reason: str) -> None:
        job.status, job.reason, job.dead_at = "dead", reason, time.time()
        self.jobs[job.id] = job
        log.warning("DEAD LETTER %s %s %s: %s", job.id, job.kind, job.key, reason)
