"""Every call to a vendor: correlation ids, idempotency keys, retries, Retry-After gates."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("pollstack.vendors")

ATTEMPTS = 5  # tries of one call within a batch; then the record waits for the next cycle
MAX_WAIT_S = 2.0  # a Retry-After longer than this is not slept in a batch: the record waits
TIMEOUT_S = 10.0
# Every vendor's gateway gives up on a request after 30 s (README): one our timeout cut off
# may land until then, so it is in doubt that long after it was sent.
IN_DOUBT_S = 30.0


class Later(Exception):
    """A transient failure: the record is not done and is read again on a later cycle."""


class Ambiguous(Later):
    """The request may have been carried out (504, a lost answer) and the route has no
    idempotency the caller can rely on: look before writing again, but not before
    ``settles_at`` (time.monotonic()): an attempt our timeout cut off may still land until
    the vendor's gateway gives up on it."""

    def __init__(self, message: str, settles_at: float = 0.0) -> None:
        super().__init__(message)
        self.settles_at = settles_at


class Answer(dict[str, Any]):
    """A vendor's JSON object answer. A field it lacks (a release that broke its answers and
    was rolled back) is the vendor's failure, not the record's: the record is tried again on a
    later cycle, where the same Idempotency-Key gets the whole answer."""

    def __missing__(self, key: str) -> Any:
        raise Later(f"the vendor's answer lacks {key!r}")


@dataclass
class Reply:
    """A vendor's answer that was not a transient failure (2xx, or a 4xx for the flow)."""

    status: int
    body: Any
    headers: httpx.Headers

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        """The vendor error code (`{"error": {"code"}}`), or ''."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code", "") if isinstance(error, dict) else ""

    @property
    def details(self) -> dict[str, Any]:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        return details if isinstance(details, dict) else {}


def retry_after(resp: httpx.Response) -> float | None:
    """The Retry-After header in seconds (wall seconds, per docs/choreography.md): whole
    seconds or an HTTP date, as RFC 9110 allows and the README says vendors send."""
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Vendors:
    """One httpx client per simulator, and the retry policy around it."""

    def __init__(self, urls: dict[str, str], *, lacking_is_dead: bool = False) -> None:
        self.lacking_is_dead = lacking_is_dead  # BUG lacking-field-dead when set
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        self.clients = {
            system: httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S, limits=limits)
            for system, url in urls.items()
        }
        self.not_before = dict.fromkeys(urls, 0.0)  # per vendor: Retry-After gates

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def _wait_gate(self, system: str) -> None:
        wait = self.not_before[system] - time.monotonic()
        if wait > MAX_WAIT_S:
            raise Later(f"{system} asked us to wait {wait:.1f} s")
        if wait > 0:
            await asyncio.sleep(wait)

    def _hold(self, system: str, seconds: float) -> None:
        self.not_before[system] = max(self.not_before[system], time.monotonic() + seconds)

    async def call(
        self,
        system: str,
        method: str,
        path: str,
        *,
        corr: str,
        json_body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        key: str | None = None,
        retry_ambiguous: bool = True,
    ) -> Reply:
        """Call a vendor until it answers for good; raise Later when it does not in time.

        Transient: transport errors, 408, 429, 5xx and a 2xx that does not parse. Retry-After
        (429/503) closes the vendor's gate for that long; other failures back off 0.25 s .. 4 s.
        """
        headers = {"X-Correlation-Id": corr}
        if key:
            headers["Idempotency-Key"] = key
        reason = ""
        for attempt in range(1, ATTEMPTS + 1):
            await self._wait_gate(system)
            ambiguous, settles_at = False, 0.0
            sent_at = time.monotonic()
            try:
                resp = await self.clients[system].request(
                    method, path, json=json_body, params=params, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                reason = f"{type(exc).__name__}"
            except httpx.TransportError as exc:  # sent, answer lost: it may have run
                reason, ambiguous = f"{type(exc).__name__}", True
                if isinstance(exc, httpx.TimeoutException):  # and may still run
                    settles_at = sent_at + IN_DOUBT_S
            else:
                if resp.status_code < 300:
                    try:
                        body = resp.json() if resp.content else None
                    except json.JSONDecodeError:
                        reason = f"{resp.status_code} with a body that does not parse"
                    else:
                        if isinstance(body, dict) and not self.lacking_is_dead:
                            body = Answer(body)
                        return Reply(resp.status_code, body, resp.headers)
                elif resp.status_code in (408, 429) or resp.status_code >= 500:
                    reason = f"{resp.status_code}"
                    ambiguous = resp.status_code == 504
                    if (wait := retry_after(resp)) is not None:
                        self._hold(system, wait + 0.05)
                else:
                    try:
                        body = resp.json()
                    except json.JSONDecodeError:
                        body = None
                    return Reply(resp.status_code, body, resp.headers)
            if ambiguous and not retry_ambiguous:
                raise Ambiguous(f"{method} {system}{path}: {reason}", settles_at)
            if self.not_before[system] <= time.monotonic():
                await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
        raise Later(f"{method} {system}{path}: {reason} after {ATTEMPTS} tries")
