"""Subscribing to every simulator's webhooks at start-up, as the stack would with real vendors.

The simulators may still be starting when the stack does, so a refused connection or a 5xx is
retried for a few seconds; a 4xx (a bad secret or event name) is a configuration error at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from reference_stack.clients import Vendors, Verdict
from simulators.common.signing import TWINYARD

log = logging.getLogger("reference_stack.subscriptions")

SUBSCRIBE_WITHIN_S = 10.0
FIRST_RETRY_S, LONGEST_RETRY_S = 0.02, 0.5  # a simulator a few ms late costs a few ms
CORRELATION_ID = "refstack-subscribe"


class SubscriptionError(Exception):
    """A simulator could not be subscribed to; the message is one line for the operator."""


async def subscribe_all(
    vendors: Vendors,
    base_url: str,
    consumed: dict[str, list[str]],
    secret: str,
    *,
    within_s: float = SUBSCRIBE_WITHIN_S,
    signing: str = TWINYARD,
) -> None:
    """Subscribe ``{base_url}/{system}`` to the events consumed from each system, concurrently,
    signed in the ``signing`` scheme."""
    deadline = asyncio.get_running_loop().time() + within_s
    body: dict[str, Any] = {"secret": secret}
    if signing != TWINYARD:  # the default is not sent: the recorded pacts stay as they are
        body["signing"] = signing
    try:
        async with asyncio.TaskGroup() as group:
            for system, events in consumed.items():
                url = f"{base_url}/{system}"
                request = {"url": url, "events": events, **body}
                group.create_task(_subscribe(vendors, system, request, deadline))
    except* SubscriptionError as failed:
        raise failed.exceptions[0] from None


async def _subscribe(vendors: Vendors, system: str, body: dict[str, Any], deadline: float) -> None:
    url = body["url"]
    loop = asyncio.get_running_loop()
    wait = FIRST_RETRY_S
    while True:
        outcome = await vendors.request(
            system, "POST", "/webhooks", body=body, correlation_id=CORRELATION_ID
        )
        if outcome.verdict is Verdict.OK:
            break
        if outcome.verdict is not Verdict.RETRY or loop.time() >= deadline:
            where = vendors.urls[system]
            raise SubscriptionError(f"cannot subscribe to {system} at {where}: {outcome.error}")
        await asyncio.sleep(wait)
        wait = min(wait * 2, LONGEST_RETRY_S)
    new_id = outcome.body.get("id") if isinstance(outcome.body, dict) else None
    await _drop_older(vendors, system, url, keep=new_id)


async def _drop_older(vendors: Vendors, system: str, url: str, keep: str | None) -> None:
    """A restarted stack replaces its earlier subscription instead of doubling every delivery."""
    listed = await vendors.request(system, "GET", "/webhooks", correlation_id=CORRELATION_ID)
    items = listed.body.get("items", []) if isinstance(listed.body, dict) else []
    if not listed.succeeded:
        log.warning("could not list %s webhooks to drop stale ones: %s", system, listed.error)
    for item in items:
        if item.get("url") == url and item.get("id") != keep:
            await vendors.request(
                system, "DELETE", f"/webhooks/{item['id']}", correlation_id=CORRELATION_ID
            )
