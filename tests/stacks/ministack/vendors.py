"""Calls to the vendors: correlation id, idempotency key, retries with backoff and Retry-After."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

log = logging.getLogger("ministack.vendors")

MAX_FAILURES = 8  # attempts that failed without the vendor saying when to come back
MAX_TOLD_WAIT_S = 900.0  # total wall seconds spent honouring Retry-After before giving up
RETRYABLE = {408, 429, 500, 502, 503, 504}


class VendorError(Exception):
    """A definitive answer that is not a success (a 4xx): retrying would get the same."""

    def __init__(self, call: str, status: int, body: Any):
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        self.status = status
        self.code = error.get("code")
        self.details = error.get("details") if isinstance(error.get("details"), dict) else {}
        super().__init__(f"{call} -> {status} {self.code}: {error.get('message', '')}")


class GaveUp(Exception):
    """Retryable failures went on for too long (or, with ``once``, the one try failed)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # the vendor's Retry-After on the last answer, if any


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    """Whole seconds or an HTTP date (RFC 9110; the README says vendors send both)."""
    value = response.headers.get("retry-after", "")
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
    def __init__(self, urls: dict[str, str], sleep: Callable[[float], Awaitable[None]]):
        self.urls = urls
        self.sleep = sleep  # the worker's: a job waiting on a timer is not busy
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(20.0, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def call(
        self,
        system: str,
        method: str,
        path: str,
        *,
        corr: str,
        json: Any = None,
        params: dict | None = None,
        key: str | None = None,
        recover: Callable[[], Awaitable[Any]] | None = None,
        once: bool = False,
    ) -> Any:
        """The answer's JSON body on a 2xx; VendorError on a 4xx; GaveUp when retries ran out.

        `recover` is asked before the call is sent again whether a failed try went through
        after all (for a vendor that does not honour Idempotency-Key): a non-None answer is the
        result. A look that fails settles nothing: it is asked again, and the call is not sent
        again until a look has answered that it is not there.
        """
        headers = {"X-Correlation-Id": corr}
        if key:
            headers["Idempotency-Key"] = key
        what = f"{system} {method} {path}"
        failures, told = 0, 0.0
        in_doubt = False  # a failed try may have done the work: look before sending again
        while True:
            wait = None
            if in_doubt and recover is not None:
                try:
                    found = await recover()
                except GaveUp as exc:
                    why, wait = f"looking for it: {exc}", exc.retry_after
                else:
                    if found is not None:
                        log.info("%s: went through after all [%s]", what, corr)
                        return found
                    in_doubt = False
                    continue  # not there: send it again, now
            else:
                try:
                    response = await self.http.request(
                        method, self.urls[system] + path, json=json, params=params, headers=headers
                    )
                except httpx.HTTPError as exc:
                    why = f"{type(exc).__name__} {exc}".strip()
                    in_doubt = True
                else:
                    status = response.status_code
                    body = _json(response)
                    if 200 <= status < 300 and (body is not None or not response.content):
                        return body if body is not None else {}
                    if 200 <= status < 300:
                        why = f"{status} with a body that is not JSON"
                    elif status in RETRYABLE or status >= 500:
                        why = f"{status} {VendorError(what, status, body).code}"
                        wait = _retry_after(response)
                    else:
                        raise VendorError(what, status, body)
                    in_doubt = status not in (429, 503) or wait is None  # refused: not done
            if once:
                raise GaveUp(f"{what}: {why}", wait)
            if wait is None:
                failures += 1
                delay = min(8.0, 0.5 * 2 ** (failures - 1)) * random.uniform(1.0, 1.25)
            else:
                told += wait
                delay = wait + 0.05  # never before the time the vendor gave
            if failures >= MAX_FAILURES or told > MAX_TOLD_WAIT_S:
                raise GaveUp(f"{what}: {why} ({failures} failures, {told:.0f} s told to wait)")
            log.info("%s: %s; retry in %.2f s [%s]", what, why, delay, corr)
            await self.sleep(delay)

    async def close(self) -> None:
        await self.http.aclose()
