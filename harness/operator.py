"""The on-call engineer: the one person in a scenario who touches the stack, not a vendor.

A scenario may say when the on-call replays the stack's dead letters (after the vendor fixed
whatever killed them). The stack exposes them the way the reference stack does, if it can:
``GET {dead_letters_path}`` lists ``{"items": [{"id": ...}, ...]}`` and
``POST {dead_letters_path}/{id}/replay`` puts one back to work. A stack without that route
cannot be helped by its on-call, and the verdict says so. At the end of the day the on-call
looks once more: the dead letters left are what someone would be paged for.

At each look the on-call also reads the count of dead letters the stack reports on its idle
probe (``{"dead": N}``, optional): that is the number a dashboard alerts on, so it must agree
with the list the on-call is handed (``dead_letter_count_agrees``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import simpy

Action = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class DeadCount:
    """One look by the on-call: how many dead letters the stack listed, and how many its idle
    probe said it held at that moment."""

    when: str
    listed: int
    reported: int


class OnCall:
    def __init__(self, base_url: str, dead_letters_path: str, idle_path: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.path = "/" + dead_letters_path.strip("/")
        self.idle_path = None if idle_path is None else "/" + idle_path.strip("/")
        self.notes: list[str] = []
        self.counts: list[DeadCount] = []  # each look where the probe reported a dead count

    async def leftover(self) -> list[dict[str, Any]] | None:
        """The dead letters the stack holds now, or None when it does not list them."""
        timeout = aiohttp.ClientTimeout(total=10.0)
        try:
            async with aiohttp.ClientSession(base_url=self.base_url, timeout=timeout) as http:
                async with http.get(self.path) as response:
                    if response.status != 200:
                        return None
                    items = orjson.loads(await response.read()).get("items")
                if isinstance(items, list):
                    await self._compare_count(http, "the end of the day", len(items))
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, AttributeError):
            return None
        if not isinstance(items, list):
            return None
        return [item if isinstance(item, dict) else {"id": item} for item in items]

    async def _compare_count(self, http: aiohttp.ClientSession, when: str, listed: int) -> None:
        """Read the probe's ``dead`` beside a listing; a probe without one is not judged."""
        if self.idle_path is None:
            return
        try:
            async with http.get(self.idle_path) as response:
                if response.status != 200:
                    return
                answer = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return
        reported = answer.get("dead") if isinstance(answer, dict) else None
        if isinstance(reported, int) and not isinstance(reported, bool):
            self.counts.append(DeadCount(when, listed, reported))

    async def replay_dead_letters(self, when: str) -> None:
        """List the dead letters and replay each; note what happened in the verdict."""
        timeout = aiohttp.ClientTimeout(total=10.0)
        async with aiohttp.ClientSession(base_url=self.base_url, timeout=timeout) as http:
            try:
                async with http.get(self.path) as response:
                    if response.status != 200:
                        self.notes.append(
                            f"on-call at {when}: cannot list dead letters "
                            f"(GET {self.path} answered {response.status})"
                        )
                        return
                    items = orjson.loads(await response.read()).get("items", [])
                if isinstance(items, list):
                    await self._compare_count(http, f"on-call at {when}", len(items))
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, AttributeError):
                self.notes.append(f"on-call at {when}: cannot list dead letters ({self.path})")
                return
            answers: Counter[int] = Counter()
            for item in items:
                try:
                    async with http.post(f"{self.path}/{item['id']}/replay") as response:
                        answers[response.status] += 1
                except (aiohttp.ClientError, TimeoutError):
                    answers[0] += 1
        replayed = sum(n for status, n in answers.items() if 200 <= status < 300)
        refused = ", ".join(
            f"{n} answered {s or 'nothing'}" for s, n in answers.items() if s >= 300 or not s
        )
        self.notes.append(
            f"on-call at {when}: replayed {replayed} of {len(items)} dead letters"
            + (f" ({refused})" if refused else "")
        )


def schedule(env: simpy.Environment, at: float, action: Action, queue: list[Action]) -> None:
    """At virtual time ``at``, hand ``action`` to the driver, which runs it once quiet."""

    def process() -> simpy.events.ProcessGenerator:
        yield env.timeout(at)
        queue.append(action)

    env.process(process())
