"""The running stack: store, vendor client, worker and inbox wired together.

An event is kept in the inbox and handled at once, inside the webhook request, in one commit
with the jobs it calls for (so a crash cannot lose an acknowledged event, and a webhook costs
one commit, not two); handling that fails rolls back alone and leaves the event kept with its
reason. So by the time a simulator sees its delivery acknowledged, the jobs it calls for are
already counted as due in the idle probe. The probe may be long-polled (``?wait_ms=``): a busy stack
answers the moment it goes idle, or when the wait is over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from reference_stack import handlers
from reference_stack.clients import Vendors
from reference_stack.config import Config
from reference_stack.steps import Steps
from reference_stack.store import Event, Job, Store
from reference_stack.subscriptions import subscribe_all
from reference_stack.worker import Worker

log = logging.getLogger("reference_stack")


class Stack:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.database())
        self.vendors = Vendors(
            config.vendor_urls,
            jitter_ms=config.call_jitter_ms,
            defects=config.defects,
            carrier_api=config.carrier_api,
        )
        self.worker = Worker(
            self.store,
            Steps(self.store, self.vendors, config.defects).run,
            workers=config.workers,
            max_attempts=config.max_attempts,
            retry_base_s=config.retry_base_s,
            retry_max_s=config.retry_max_s,
            in_doubt_s=config.in_doubt_s,
            defects=config.defects,
        )
        self.inbox = 0  # events received and not yet turned into jobs
        self.subscribed = False
        self._idle_waiters: list[asyncio.Future[None]] = []  # long-polls of the idle probe
        self.worker.on_change = self._wake_idle_waiters

    async def start(self) -> None:
        """Resume open jobs and any event a previous run received but did not handle."""
        await self.worker.start()
        for event in self.store.unprocessed_events():
            self.inbox += 1
            jobs = self._handle(event)
            self._handled(jobs)

    async def subscribe(self) -> None:
        await subscribe_all(
            self.vendors,
            f"http://127.0.0.1:{self.config.port}/webhooks",
            handlers.CONSUMED,
            self.config.webhook_secret,
            signing=self.config.webhook_signing,
        )
        self.subscribed = True

    async def stop(self) -> None:
        await self.worker.stop()
        await self.vendors.aclose()
        self.store.close()

    def receive(self, event: Event, body: bytes) -> bool:
        """Keep and handle a verified event, in one commit (the sender is answered after it:
        a crash before loses nothing it was told we have); False when its id was already
        received."""
        with self.store.transaction():
            if not self.store.add_event(event, body, handled=True):
                return False
            self.inbox += 1
            jobs = self._handle(event, kept_as_processed=True)
        self._handled(jobs)
        return True

    def _handle(self, event: Event, *, kept_as_processed: bool = False) -> list[Job]:
        """The jobs an event calls for. Handling that fails rolls back alone: the event is
        kept, marked with the reason, and never wedges the inbox."""
        try:
            with self.store.savepoint():
                jobs = handlers.handle(self.store, event, self.config.defects)
                if not kept_as_processed:  # one a previous run kept and did not handle
                    self.store.mark_processed(event.id)
        except Exception as exc:
            jobs = []
            what = f"event {event.id} ({event.system} {event.type}) could not be handled"
            if isinstance(exc, KeyError | TypeError | ValueError):  # data unlike the contract
                log.error("%s: %s: %s", what, type(exc).__name__, exc)
            else:  # a bug: the traceback is wanted
                log.exception(what)
            self.store.mark_processed(event.id, error=f"{type(exc).__name__}: {exc}")
        return jobs

    def _handled(self, jobs: list[Job]) -> None:
        self.inbox -= 1
        self.worker.add(jobs)
        self._wake_idle_waiters()

    def is_idle(self) -> bool:
        w = self.worker
        return w.running == 0 and w.due == 0 and self.inbox == 0

    async def idle_within(self, wait_s: float) -> dict[str, Any]:
        """The idle answer, held up to ``wait_s`` while busy and given the moment the stack
        goes idle (the probe's long-poll): one request where the harness would otherwise
        ask, sleep and ask again."""
        if wait_s > 0 and not self.is_idle():
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, wait_s)
            except TimeoutError:
                pass
            finally:
                if waiter in self._idle_waiters:
                    self._idle_waiters.remove(waiter)
        return self.idle()

    def _wake_idle_waiters(self) -> None:
        if self._idle_waiters and self.is_idle():
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

    def idle(self) -> dict[str, Any]:
        """Cheap: in-memory counters only (the harness reads this after every lockstep step)."""
        w = self.worker
        return {
            "idle": self.is_idle(),
            "inbox": self.inbox,
            "running": w.running,
            "due": w.due,
            "scheduled": w.scheduled,
            "dead": w.dead,
        }
