"""The hostile catalogue: events a webhook receiver must refuse, or survive, and the answer
each must get (unsigned, forged or replayed: 401; signed garbage: 400; an unknown type or a
2 MB body: no 5xx; the same event twice; a valid event last, to see the receiver still
answers).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from harness.contracts.schemathesis_run import excerpt
from simulators.common.signing import (
    DEFAULT_TOLERANCE_S,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    TIMESTAMP_HEADER,
    signed_headers,
)

OVERSIZED_BYTES = 2 * 1024 * 1024
NESTING = 100_000


@dataclass(frozen=True)
class Outcome:
    """One hostile case as sent: what it expected, what it got."""

    name: str
    target: str  # the path it was sent to
    sent: str  # what was sent, in words
    expected: str
    statuses: tuple[int, ...]  # every answer (two for a repeated event)
    error: str | None  # the transport error, when there was no answer
    body: str
    passed: bool


def answers(statuses: tuple[int, ...]) -> str:
    return " then ".join(str(s) for s in statuses)


# -- hostile: the catalogue -----------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    text: str
    accepts: Callable[[int], bool]


UNAUTHENTIC = Expect("401", lambda s: s == 401)
MALFORMED = Expect("400", lambda s: s == 400)
NO_CRASH = Expect("any answer but 5xx", lambda s: s < 500)
ACK_OR_REFUSE = Expect("2xx or 4xx", lambda s: 200 <= s < 300 or 400 <= s < 500)
AUTHENTIC = Expect("2xx, or a 4xx other than 401", lambda s: ACK_OR_REFUSE.accepts(s) and s != 401)

Body = bytes | dict[str, Any]  # raw bytes, or an envelope sent as compact JSON
Built = tuple[bytes, dict[str, str]]  # what goes on the wire: body and headers


@dataclass(frozen=True)
class Hostile:
    name: str
    sent: str
    expect: Expect
    build: Callable[[str, str], Built]  # (system, secret) -> body and headers
    times: int = 1  # sent this many times; every answer must meet the expectation


def _envelope(system: str, **overrides: Any) -> dict[str, Any]:
    """A well-formed event of a type no vendor sends, about nothing the stack knows."""
    event = {
        "id": f"EV-FUZZ-{uuid.uuid4().hex[:12]}",
        "type": "twinyard.fuzz.probe",
        "source": system,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {"note": "sent by twinyard contracts fuzz"},
    }
    return {**event, **overrides}


def _encode(body: Body) -> Built:
    """The bytes, and the headers a simulator sends with them (event id and type when the
    envelope has usable ones)."""
    headers = {"content-type": "application/json", "x-correlation-id": "twinyard-fuzz"}
    if isinstance(body, bytes):
        return body, headers
    if isinstance(body.get("id"), str) and isinstance(body.get("type"), str):
        headers |= {EVENT_ID_HEADER: body["id"], EVENT_TYPE_HEADER: body["type"]}
    return json.dumps(body, separators=(",", ":")).encode(), headers


def _signed(make: Callable[[str], Body], skew_s: int = 0) -> Callable[[str, str], Built]:
    """Signed with the secret, the timestamp ``skew_s`` away from now."""

    def build(system: str, secret: str) -> Built:
        body, headers = _encode(make(system))
        return body, headers | signed_headers(secret, body, int(time.time()) + skew_s)

    return build


def _unsigned(system: str, secret: str) -> Built:
    return _encode(_envelope(system))


def _wrong_secret(system: str, secret: str) -> Built:
    return _signed(_envelope)(system, "not-" + secret)


def _tampered(system: str, secret: str) -> Built:
    """A forged copy: the signature of one body sent with another."""
    original = _envelope(system)
    _, headers = _signed(lambda s: original)(system, secret)
    forged, _ = _encode({**original, "data": {**original["data"], "ship_to": "elsewhere"}})
    return forged, headers


def _timestamp_not_a_number(system: str, secret: str) -> Built:
    body, headers = _signed(_envelope)(system, secret)
    return body, headers | {TIMESTAMP_HEADER: "yesterday"}


def _deeply_nested(system: str) -> bytes:
    """A recursive parser's stack overflow (Python's ``json`` raises RecursionError)."""
    head, _ = _encode(_envelope(system, data={"nested": None}))
    return head.replace(b"null", b"[" * NESTING + b"]" * NESTING, 1)


def _repeated() -> Callable[[str, str], Built]:
    """The same signed bytes on every call: a vendor's redelivery."""
    sent: dict[str, Built] = {}

    def build(system: str, secret: str) -> Built:
        if system not in sent:
            sent[system] = _signed(_envelope)(system, secret)
        return sent[system]

    return build


def _without_id(system: str) -> dict[str, Any]:
    return {k: v for k, v in _envelope(system).items() if k != "id"}


WINDOW = DEFAULT_TOLERANCE_S


def catalogue() -> list[Hostile]:
    """The hostile cases, in the order they are sent (liveness last)."""
    event = _envelope
    mb = OVERSIZED_BYTES // (1024 * 1024)
    return [
        Hostile("unsigned", "a valid event without signature headers", UNAUTHENTIC, _unsigned),
        Hostile("wrong_secret", "signed with another secret", UNAUTHENTIC, _wrong_secret),
        Hostile("tampered_body", "the signature of another body", UNAUTHENTIC, _tampered),
        Hostile(
            "stale_timestamp",
            f"correctly signed, timestamp {2 * WINDOW} s old (a replay)",
            UNAUTHENTIC,
            _signed(event, -2 * WINDOW),
        ),
        Hostile(
            "future_timestamp",
            f"correctly signed, timestamp {2 * WINDOW} s ahead",
            UNAUTHENTIC,
            _signed(event, 2 * WINDOW),
        ),
        Hostile(
            "timestamp_not_a_number",
            "signed, but the timestamp header is not an integer",
            UNAUTHENTIC,
            _timestamp_not_a_number,
        ),
        Hostile(
            "body_not_json",
            "signed, body not JSON",
            MALFORMED,
            _signed(lambda s: b'{"id": "EV-FUZZ", "type": '),
        ),
        Hostile("empty_body", "signed, empty body", MALFORMED, _signed(lambda s: b"")),
        Hostile(
            "not_utf8",
            "signed, bytes that are not UTF-8",
            MALFORMED,
            _signed(lambda s: b'{"id": "EV-\xff\xfe", "type": "x", "data": {}}'),
        ),
        Hostile(
            "json_array",
            "signed, a JSON array of events",
            MALFORMED,
            _signed(lambda s: json.dumps([event(s)]).encode()),
        ),
        Hostile(
            "json_string",
            "signed, a JSON string",
            MALFORMED,
            _signed(lambda s: b'"order.released"'),
        ),
        Hostile("missing_id", "signed, envelope without id", MALFORMED, _signed(_without_id)),
        Hostile(
            "empty_id", 'signed, envelope with id ""', MALFORMED, _signed(lambda s: event(s, id=""))
        ),
        Hostile(
            "data_not_object",
            "signed, data is a list",
            MALFORMED,
            _signed(lambda s: event(s, data=["not", "an", "object"])),
        ),
        Hostile(
            "wrong_types",
            "signed, id a number and type null",
            MALFORMED,
            _signed(lambda s: event(s, id=12345, type=None)),
        ),
        Hostile(
            "deeply_nested",
            f"signed, a well-formed event whose data nests {NESTING} lists deep",
            ACK_OR_REFUSE,
            _signed(_deeply_nested),
        ),
        Hostile(
            "unknown_type",
            "signed, a well-formed event of a type no vendor sends",
            ACK_OR_REFUSE,
            _signed(lambda s: event(s, type="zz.never.sent")),
        ),
        Hostile(
            "oversized_body",
            f"signed, a well-formed event of {mb} MB",
            NO_CRASH,
            _signed(lambda s: event(s, data={"padding": "x" * OVERSIZED_BYTES})),
        ),
        Hostile(
            "repeated_event",
            "the same signed event twice (a redelivery)",
            AUTHENTIC,
            _repeated(),
            times=2,
        ),
        Hostile(
            "still_answering",
            "a fresh valid signed event, after all of the above",
            AUTHENTIC,
            _signed(event),
        ),
    ]


def _system_of(target: str) -> str:
    return target.rstrip("/").rsplit("/", 1)[-1]


def run_catalogue(client: httpx.Client, target: str, secret: str) -> list[Outcome]:
    """Send every hostile case to ``target`` (a path under the client's base URL)."""
    outcomes = []
    system = _system_of(target)
    for case in catalogue():
        statuses: list[int] = []
        error, body = None, ""
        for _ in range(case.times):
            content, headers = case.build(system, secret)
            try:
                response = client.post(target, content=content, headers=headers)
            except httpx.HTTPError as exc:
                error = f"no answer ({type(exc).__name__}: {exc})" if str(exc) else "no answer"
                break
            statuses.append(response.status_code)
            body = excerpt(response.text)
        passed = error is None and all(case.expect.accepts(s) for s in statuses)
        outcomes.append(
            Outcome(
                case.name,
                target,
                case.sent,
                case.expect.text,
                tuple(statuses),
                error,
                body,
                passed,
            )
        )
    return outcomes
