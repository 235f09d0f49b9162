"""The hostile catalogue: events a webhook receiver must refuse, or survive, and the answer
each must get (unsigned, forged or replayed: 401; a timestamp ahead beyond the clock skew or
not in canonical form, a signature that is not ASCII: 401; a signature or timestamp header
sent twice, an event sent to another system's endpoint: a 4xx; signed garbage: 400; an
unknown type or a 2 MB body: no 5xx; the same event twice; a valid event last, to see the
receiver still answers).

Every case is signed in the scheme the receiver subscribed with (``Signer``): twinyard's
``X-Twinyard-Timestamp`` / ``X-Twinyard-Signature``, or Standard Webhooks' ``webhook-id`` /
``webhook-timestamp`` / ``webhook-signature``, which adds cases of its own (several
signatures, one of them good; the webhook-id missing or swapped).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from harness.contracts.schemathesis_run import excerpt
from simulators.common import signing
from simulators.common.signing import (
    DEFAULT_TOLERANCE_S,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    STANDARD_WEBHOOKS,
    SW_ID_HEADER,
    SW_SIGNATURE_HEADER,
    SW_TIMESTAMP_HEADER,
    TIMESTAMP_HEADER,
    TWINYARD,
)

OVERSIZED_BYTES = 2 * 1024 * 1024
NESTING = 100_000
BEYOND_SKEW_S = 120  # ahead of now: inside a symmetric 300 s window, beyond any clock skew
WITHIN_SKEW_S = 10  # ahead of now: a vendor clock a little fast, which a receiver must take
WRAP = 2**64  # a 64-bit parser that wraps reads now + 2^64 (20 digits) as now


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
REFUSED = Expect("4xx", lambda s: 400 <= s < 500)
MALFORMED = Expect("400", lambda s: s == 400)
NO_CRASH = Expect("any answer but 5xx", lambda s: s < 500)
ACK_OR_REFUSE = Expect("2xx or 4xx", lambda s: 200 <= s < 300 or 400 <= s < 500)
AUTHENTIC = Expect("2xx, or a 4xx other than 401", lambda s: ACK_OR_REFUSE.accepts(s) and s != 401)

Body = bytes | dict[str, Any]  # raw bytes, or an envelope sent as compact JSON
# What goes on the wire: body and headers, a dict or (for a header sent twice, or a value
# that is not ASCII) a list of pairs.
Headers = dict[str, str] | list[tuple[str, str | bytes]]
Built = tuple[bytes, Headers]


@dataclass(frozen=True)
class Signer:
    """Signs a case as a simulator would for a subscription in ``scheme``."""

    secret: str
    scheme: str = TWINYARD

    @property
    def timestamp_header(self) -> str:
        return SW_TIMESTAMP_HEADER if self.scheme == STANDARD_WEBHOOKS else TIMESTAMP_HEADER

    @property
    def signature_header(self) -> str:
        return SW_SIGNATURE_HEADER if self.scheme == STANDARD_WEBHOOKS else SIGNATURE_HEADER

    def sign(
        self,
        body: bytes,
        event_id: str | None = None,
        timestamp: int | None = None,
        *,
        secret: str | None = None,
    ) -> dict[str, str]:
        """The signature headers (the event id is the webhook-id; a fresh one without)."""
        msg_id = event_id or f"msg_{uuid.uuid4().hex}"
        ts = int(time.time()) if timestamp is None else timestamp
        return signing.sign(self.scheme, secret or self.secret, body, msg_id, ts)

    def wrong_secret(self) -> str:
        return signing.other_secret(self.scheme, self.secret)


@dataclass(frozen=True)
class Hostile:
    name: str
    sent: str
    expect: Expect
    build: Callable[[str, Signer], Built]  # (system, signer) -> body and headers
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


def _signed(
    make: Callable[[str], Body], skew_s: int = 0, *, wrong_secret: bool = False
) -> Callable[[str, Signer], Built]:
    """Signed with the secret (or a forger's), the timestamp ``skew_s`` away from now."""

    def build(system: str, signer: Signer) -> Built:
        body, headers = _encode(make(system))
        secret = signer.wrong_secret() if wrong_secret else None
        ts = int(time.time()) + skew_s
        return body, headers | signer.sign(body, headers.get(EVENT_ID_HEADER), ts, secret=secret)

    return build


def _unsigned(system: str, signer: Signer) -> Built:
    return _encode(_envelope(system))


def _tampered(system: str, signer: Signer) -> Built:
    """A forged copy: the signature of one body sent with another."""
    original = _envelope(system)
    _, headers = _signed(lambda s: original)(system, signer)
    forged, _ = _encode({**original, "data": {**original["data"], "ship_to": "elsewhere"}})
    return forged, headers


def _timestamp_as(text: Callable[[int], str | bytes]) -> Callable[[str, Signer], Built]:
    """Signed over now, the timestamp header sent as ``text(now)``: the same number, for a
    receiver that parses leniently, in a form a strict one refuses."""

    def build(system: str, signer: Signer) -> Built:
        body, headers = _signed(_envelope)(system, signer)
        assert isinstance(headers, dict)
        ts = int(headers[signer.timestamp_header])
        pairs = [(k, v) for k, v in headers.items() if k != signer.timestamp_header]
        return body, [*pairs, (signer.timestamp_header, text(ts))]

    return build


def _twice(which: str, valid_first: bool) -> Callable[[str, Signer], Built]:
    """A signed event with its ``which`` header (signature, timestamp or id) sent twice: the
    good value and another, in that order or the other."""

    def build(system: str, signer: Signer) -> Built:
        body, headers = _signed(_envelope)(system, signer)
        assert isinstance(headers, dict)
        name = {
            "signature": signer.signature_header,
            "timestamp": signer.timestamp_header,
            "id": SW_ID_HEADER,
        }[which]
        good = headers[name]
        if which == "signature":
            other = signer.sign(body, headers.get(EVENT_ID_HEADER), secret=signer.wrong_secret())
            bad = other[name]
        elif which == "timestamp":
            bad = str(int(good) - 1)  # a second older: the signature covers only the good one
        else:
            bad = f"msg_{uuid.uuid4().hex}"
        pairs: list[tuple[str, str | bytes]] = [(k, v) for k, v in headers.items() if k != name]
        twice = [(name, good), (name, bad)] if valid_first else [(name, bad), (name, good)]
        return body, [*pairs, *twice]

    return build


def _signature_not_ascii(system: str, signer: Signer) -> Built:
    """The good signature with a byte over 0x7F appended: Python's ``hmac.compare_digest``
    raises TypeError on a str that is not ASCII (a 500 where a 401 is due)."""
    body, headers = _signed(_envelope)(system, signer)
    assert isinstance(headers, dict)
    name = signer.signature_header
    pairs: list[tuple[str, str | bytes]] = [(k, v) for k, v in headers.items() if k != name]
    return body, [*pairs, (name, headers[name].encode() + b"\xa0")]


def _wrong_system(system: str, signer: Signer) -> Built:
    """Signed correctly, but the envelope says another system sent it: a delivery one system
    made, replayed to another's endpoint, which a stack with one secret for all cannot tell
    from the signature alone."""
    other = "wms" if system == "erp" else "erp"
    return _signed(lambda s: _envelope(s, source=other))(system, signer)


def _several_signatures(system: str, signer: Signer) -> Built:
    """Standard Webhooks: during a key rotation the header carries several space-separated
    signatures (an old key's, the current one's, one of a version the receiver may not
    check); one good signature is enough, wherever it is in the list."""
    body, headers = _signed(_envelope)(system, signer)
    assert isinstance(headers, dict)
    name, msg_id = signer.signature_header, headers[SW_ID_HEADER]
    ts = int(headers[signer.timestamp_header])
    old = signer.sign(body, msg_id, ts, secret=signer.wrong_secret())[name]
    asymmetric = "v1a," + base64.b64encode(uuid.uuid4().bytes * 4).decode()
    return body, headers | {name: f"{old} {headers[name]} {asymmetric}"}


def _without_webhook_id(system: str, signer: Signer) -> Built:
    body, headers = _signed(_envelope)(system, signer)
    assert isinstance(headers, dict)
    return body, {k: v for k, v in headers.items() if k != SW_ID_HEADER}


def _webhook_id_swapped(system: str, signer: Signer) -> Built:
    """Signed for one webhook-id, sent with another (the id is in what is signed)."""
    body, headers = _signed(_envelope)(system, signer)
    assert isinstance(headers, dict)
    return body, headers | {SW_ID_HEADER: f"msg_{uuid.uuid4().hex}"}


def _timestamp_not_a_number(system: str, signer: Signer) -> Built:
    body, headers = _signed(_envelope)(system, signer)
    assert isinstance(headers, dict)
    return body, headers | {signer.timestamp_header: "yesterday"}


def _deeply_nested(system: str) -> bytes:
    """A recursive parser's stack overflow (Python's ``json`` raises RecursionError)."""
    head, _ = _encode(_envelope(system, data={"nested": None}))
    return head.replace(b"null", b"[" * NESTING + b"]" * NESTING, 1)


def _repeated() -> Callable[[str, Signer], Built]:
    """The same signed bytes on every call: a vendor's redelivery."""
    sent: dict[str, Built] = {}

    def build(system: str, signer: Signer) -> Built:
        if system not in sent:
            sent[system] = _signed(_envelope)(system, signer)
        return sent[system]

    return build


def _without_id(system: str) -> dict[str, Any]:
    return {k: v for k, v in _envelope(system).items() if k != "id"}


WINDOW = DEFAULT_TOLERANCE_S


def _hygiene() -> list[Hostile]:
    """What a lenient verifier lets through: a timestamp ahead beyond any clock skew or in a
    form ``int()`` forgives, a header sent twice, an event sent to the wrong endpoint."""
    return [
        Hostile(
            "future_beyond_skew",
            f"correctly signed, timestamp {BEYOND_SKEW_S} s ahead (inside a symmetric "
            f"{WINDOW} s window, beyond any clock skew)",
            UNAUTHENTIC,
            _signed(_envelope, BEYOND_SKEW_S),
        ),
        Hostile(
            "slightly_ahead",
            f"correctly signed, timestamp {WITHIN_SKEW_S} s ahead (a vendor clock a little fast)",
            AUTHENTIC,
            _signed(_envelope, WITHIN_SKEW_S),
        ),
        Hostile(
            "timestamp_plus_sign",
            'signed over now, the timestamp header "+<now>"',
            UNAUTHENTIC,
            _timestamp_as(lambda ts: f"+{ts}"),
        ),
        Hostile(
            "timestamp_underscores",
            'signed over now, the timestamp header with underscores ("1_796_317_186")',
            UNAUTHENTIC,
            _timestamp_as(lambda ts: f"{ts:_}"),
        ),
        Hostile(
            "timestamp_leading_space",
            "signed over now, the timestamp header after a no-break space (0xA0: not stripped "
            "by HTTP parsers, stripped by int())",
            UNAUTHENTIC,
            _timestamp_as(lambda ts: b"\xa0" + str(ts).encode()),
        ),
        Hostile(
            "timestamp_leading_zeros",
            'signed over now, the timestamp header "00<now>"',
            UNAUTHENTIC,
            _timestamp_as(lambda ts: f"00{ts}"),
        ),
        Hostile(
            "timestamp_20_digits",
            "signed over now, the timestamp header now + 2^64 (20 digits: a 64-bit parser "
            "that wraps reads now)",
            UNAUTHENTIC,
            _timestamp_as(lambda ts: str(ts + WRAP)),
        ),
        Hostile(
            "signature_not_ascii",
            "the good signature with a 0xA0 byte after it (compare_digest refuses a str that "
            "is not ASCII with an exception)",
            UNAUTHENTIC,
            _signature_not_ascii,
        ),
        Hostile(
            "duplicate_signature_valid_first",
            "two signature headers: the good signature, then a forger's",
            REFUSED,
            _twice("signature", valid_first=True),
        ),
        Hostile(
            "duplicate_signature_valid_last",
            "two signature headers: a forger's signature, then the good one",
            REFUSED,
            _twice("signature", valid_first=False),
        ),
        Hostile(
            "duplicate_timestamp_valid_first",
            "two timestamp headers: the signed one, then another",
            REFUSED,
            _twice("timestamp", valid_first=True),
        ),
        Hostile(
            "duplicate_timestamp_valid_last",
            "two timestamp headers: another, then the signed one",
            REFUSED,
            _twice("timestamp", valid_first=False),
        ),
        Hostile(
            "wrong_system",
            "correctly signed, but the envelope's source is another system (an event sent "
            "to another system's endpoint)",
            REFUSED,
            _wrong_system,
        ),
    ]


def _standard_webhooks() -> list[Hostile]:
    """Cases of the Standard Webhooks scheme alone."""
    return [
        Hostile(
            "missing_webhook_id",
            "signed, webhook-id header left out",
            UNAUTHENTIC,
            _without_webhook_id,
        ),
        Hostile(
            "webhook_id_swapped",
            "signed for one webhook-id, sent with another",
            UNAUTHENTIC,
            _webhook_id_swapped,
        ),
        Hostile(
            "duplicate_webhook_id",
            "two webhook-id headers: the signed one, then another",
            REFUSED,
            _twice("id", valid_first=True),
        ),
        Hostile(
            "several_signatures",
            "webhook-signature with an old key's signature, the good one and a v1a one, "
            "space-separated (a key rotation: one good signature is enough)",
            AUTHENTIC,
            _several_signatures,
        ),
    ]


def catalogue(scheme: str = TWINYARD) -> list[Hostile]:
    """The hostile cases of a scheme, in the order they are sent (liveness last)."""
    event = _envelope
    mb = OVERSIZED_BYTES // (1024 * 1024)
    extra = _standard_webhooks() if scheme == STANDARD_WEBHOOKS else []
    return [
        Hostile("unsigned", "a valid event without signature headers", UNAUTHENTIC, _unsigned),
        Hostile(
            "wrong_secret",
            "signed with another secret",
            UNAUTHENTIC,
            _signed(_envelope, wrong_secret=True),
        ),
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
        *_hygiene(),
        *extra,
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


def run_catalogue(
    client: httpx.Client, target: str, secret: str, scheme: str = TWINYARD
) -> list[Outcome]:
    """Send every hostile case to ``target`` (a path under the client's base URL), signed in
    ``scheme``."""
    outcomes = []
    system = _system_of(target)
    signer = Signer(secret, scheme)
    for case in catalogue(scheme):
        statuses: list[int] = []
        error, body = None, ""
        for _ in range(case.times):
            content, headers = case.build(system, signer)
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
