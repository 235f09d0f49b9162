"""What the stack forgets, and when: finished work older than the retention window.

The inbox is the dedup memory: an event id in it is answered ``duplicate``, and a job's
idempotency key stops a second job for the same business action. A row may therefore go only
once no vendor will send that event again. Vendors retry a failed delivery for hours to days
(the simulators for about 1.7 virtual hours, Svix's schedule for about 27 hours, others for up
to three days), and an operator may redeliver by hand after an incident: a week
(``REFSTACK_RETENTION_S``) covers them with room to spare. The window runs on the stack's own
wall clock, so a day the harness plays faster than real time prunes nothing: late is safe,
early would not be.

Kept for good: events not yet handled, jobs still open, dead letters (the on-call's to replay
or discard), and the one small row per order and per tracking number.

Pruning runs on the event loop in batches of ``REFSTACK_PRUNE_BATCH`` rows, each its own short
transaction over an index, and yields to webhooks and workers between two batches.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

from reference_stack.config import Config
from reference_stack.store import Store

log = logging.getLogger("reference_stack.retention")


async def prune(store: Store, before: float, batch: int) -> int:
    """Everything finished before ``before``, one batch at a time; how many rows went."""
    removed = 0
    while gone := sum(store.prune(before, batch)):
        removed += gone
        await asyncio.sleep(0)  # a webhook or a worker waiting for the loop goes first
    return removed


async def prune_forever(store: Store, config: Config) -> None:
    """Every ``prune_every_s``, whatever finished more than ``retention_s`` ago."""
    while True:
        await asyncio.sleep(config.prune_every_s)
        try:
            removed = await prune(store, time.time() - config.retention_s, config.prune_batch)
        except sqlite3.Error:
            log.exception("pruning failed; tried again in %g s", config.prune_every_s)
            continue
        if removed:
            log.info("pruned %d finished rows older than %g s", removed, config.retention_s)
