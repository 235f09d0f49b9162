"""The fault model: what can go wrong with a vendor's answers, as data (ARCHITECTURE principle 6).

A ``Fault`` says which system, which requests (``route``, ``match``), when (``at``, ``for``),
how often (``rate``) and what happens (``kind`` and its parameters). The same model is the
``faults:`` section of a scenario and the body of ``POST /_sim/faults``. Applying faults is
``simulators.common.fault_injection``'s job; nothing here has state.

``schema_drift`` imitates a vendor release that changed the shape of its answers: the request
runs as usual and the answer's fields are added, renamed, removed or given new values, so a
client that reads strictly (or reads a field that moved) breaks although the vendor did the
work.

An ``outage`` in ``mode: down`` is not an answer at all: the simulator's process is "down",
so its listener refuses connections and open ones are reset for the window. No request reaches
the simulator then, so nothing here or in ``fault_injection`` applies it (``applies_to`` is
False for it); ``harness.hosting``, which owns the sockets, does, on the simulator's clock.

Event kinds (``duplicate``, ``reorder``, ``late``, ``give_up``, ``forged``, ``garbled``,
``replayed``, ``burst``) break a vendor's webhook deliveries instead of its answers: they name
an ``event`` type rather than a route, and ``simulators.common.webhooks`` applies them.

Feed kinds (``feed_lag``, ``feed_overlap``, ``token_expiry``, ``feed_torn_second``,
``feed_clock_skew``) break what a polling client reads from a change feed (``GET /events``, a
list filtered by ``updated_since``): they take a route like answer kinds, but the answer is
built as usual, only from a view the fault bends (``simulators.common.feed_faults``);
docs/feeds.md says what each does.

Which requests a ``rate`` below 1 hits is decided by keyed randomness (``keyed_unit``): a
hash of (scenario seed, system, fault index, method, path, body digest, attempt number of
that same request), never a shared random stream. So:

- deterministic: the same seed, the same plan and the same requests (same method, path and
  body, in the same number of attempts) get the same hits and the same latencies, whatever
  else happens concurrently and in whatever order requests arrive;
- not deterministic: anything the client makes different on the wire (a generated id or
  timestamp in the body changes its digest), and the rate-limit bucket, which depends on
  how many requests arrive in a virtual-time span, i.e. on the client's pacing.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
    field_validator,
    model_validator,
)

System = Literal["erp", "wms", "tms", "carrier"]
Kind = Literal[
    "latency",
    "error",
    "rate_limit",
    "outage",
    "malformed",
    "lost_response",
    "schema_drift",
    # event (webhook delivery) faults: matched by ``event``, applied by the WebhookDispatcher
    "duplicate",
    "reorder",
    "late",
    "give_up",
    "forged",
    "garbled",
    "replayed",
    "burst",
    # feed faults: matched by route, applied by the feed and list handlers (docs/feeds.md)
    "feed_lag",
    "feed_overlap",
    "token_expiry",
    "feed_torn_second",
    "feed_clock_skew",
]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]
EVENT_KINDS = frozenset(
    {"duplicate", "reorder", "late", "give_up", "forged", "garbled", "replayed", "burst"}
)
# garbled: what is wrong with the copy sent ahead of the genuine delivery (webhooks.garble)
Garble = Literal["truncated", "not_object", "no_id", "double_encoded", "headers_twice"]
GARBLES: tuple[str, ...] = Garble.__args__  # type: ignore[attr-defined]
DEFAULT_GARBLE = "truncated"
FEED_KINDS = frozenset(
    {"feed_lag", "feed_overlap", "token_expiry", "feed_torn_second", "feed_clock_skew"}
)
# What each kind that takes a status may answer: an error is a refusal or a failure the vendor
# did nothing for; a lost answer follows work done, so it is never a 4xx (a refusal).
STATUSES: dict[str, tuple[int, ...]] = {
    "error": (400, 409, 422, 500, 502, 503),
    "lost_response": (500, 502, 504),
}
DEFAULT_COPIES = 2
DEFAULT_HOLD_S = 600.0  # reorder
DEFAULT_DELAY_S = 600.0  # late, replayed: past a 300 s replay window
DEFAULT_LAG_S = 30.0  # feed_lag: a search index a little behind
DEFAULT_TTL_S = 300.0  # token_expiry: a five-minute page token
MAX_SKEW_S = 86_400  # feed_clock_skew: a bound, not a model (real skews are seconds to minutes)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
EXCLUDED_PREFIXES = ("/_sim/", "/_sim", "/webhooks")  # never faulted: control plane, webhooks

DRIFT_PARAMETERS = ("add_fields", "rename_fields", "remove_fields", "set_values")

_MOMENT = re.compile(r"^(?:day\s+(\d{1,2})\s+)?([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
MOMENT_PATTERN = r"^(day \d{1,2} )?([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"


def virtual_seconds(value: Any) -> Any:
    """``at``: virtual seconds, ``"HH:MM[:SS]"`` of day 0, or ``"day N HH:MM[:SS]"`` (scenario
    files read an unquoted 17:00 as this text, never as YAML 1.1's base-60 number)."""
    if isinstance(value, str):
        found = _MOMENT.match(value.strip())
        if found is None:
            raise ValueError(
                'give virtual seconds (a number), "HH:MM[:SS]" of day 0 or "day N HH:MM[:SS]"'
            )
        day, hour, minute, second = found.groups()
        return int(day or 0) * 86_400 + int(hour) * 3600 + int(minute) * 60 + int(second or 0)
    if isinstance(value, bool):
        raise ValueError("give virtual seconds or a time, not true/false")
    return value


# A field name of a drifted answer: a top-level key (of the answer, or of each of its items).
FieldName = Annotated[str, Field(min_length=1, max_length=100)]
# Drift parameters: given means non-empty (an empty mapping would be a drift that drifts nothing).
FieldValues = Annotated[dict[FieldName, JsonValue], Field(min_length=1, max_length=50)]
FieldNames = Annotated[list[FieldName], Field(min_length=1, max_length=50)]
Renames = Annotated[dict[FieldName, FieldName], Field(min_length=1, max_length=50)]


At = Annotated[
    float,
    BeforeValidator(virtual_seconds),
    Field(ge=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": MOMENT_PATTERN},
            ]
        }
    ),
]


class _Data(BaseModel):
    # Strict: a rate or a status sent as a string is a client bug, as the contract says.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class LatencyRange(_Data):
    min_ms: Annotated[int, Field(ge=0, le=600_000)]
    max_ms: Annotated[int, Field(ge=0, le=600_000)]

    @model_validator(mode="after")
    def _ordered(self) -> LatencyRange:
        if self.max_ms < self.min_ms:
            raise ValueError(f"max_ms ({self.max_ms}) is below min_ms ({self.min_ms})")
        return self


# Which parameters belong to which kinds: any other kind given one is refused.
_PARAMETERS: dict[str, tuple[str, ...]] = {
    "ms": ("latency",),
    "per_inflight_ms": ("latency",),
    "status": ("error", "lost_response"),
    "remembered": ("error",),
    "per_second": ("rate_limit",),
    "burst": ("rate_limit",),
    "copies": ("duplicate",),
    "spacing_s": ("duplicate",),
    "new_ids": ("duplicate",),
    "hold_s": ("reorder",),
    "delay_s": ("late", "replayed"),
    "signed_age_s": ("replayed",),
    "form": ("garbled",),
    "mode": ("outage",),
    "lag_s": ("feed_lag",),
    "ttl_s": ("token_expiry",),
    "skew_s": ("feed_clock_skew",),
    "retry_after_as": ("rate_limit", "outage"),
    **dict.fromkeys(DRIFT_PARAMETERS, ("schema_drift",)),
    "answer_status": ("schema_drift",),
    "wire_format": ("schema_drift",),
}


class Fault(_Data):
    """One fault: which requests of one system, when, how often, and what goes wrong."""

    system: System
    route: Annotated[str, Field(max_length=200)] = ""
    """A path prefix (``/labels``) or ``"METHOD /path"`` prefix (``POST /labels``); empty =
    every business route. The control plane (``/_sim/``) and ``/webhooks`` are never faulted."""
    kind: Kind
    ms: Annotated[int, Field(ge=0, le=600_000)] | LatencyRange | None = None
    """latency: extra delay, fixed or ``{min_ms, max_ms}``."""
    per_inflight_ms: Annotated[float, Field(gt=0, le=10_000)] | None = None
    """latency: more delay for each other request the vendor is handling at that moment, so
    its answers slow down as load grows, as a saturated vendor's do (``ms`` may then be 0)."""
    status: Literal[400, 409, 422, 500, 502, 503, 504] | None = None
    """error: the status answered (default 503; 400, 409, 422, 500, 502 or 503). A 5xx fails
    the request; a 4xx refuses it, as a vendor's validation rule or conflict check would (a
    release that tightened a rule, a record locked by a user): nothing ran, and the same
    request sent again is refused again while the fault lasts.
    lost_response: the status the client gets for the work done (default 504, a gateway that
    gave up; 500 is a backend that committed and then crashed writing its answer, 502 a proxy
    that lost the backend's answer)."""
    remembered: bool | None = None
    """error with a refusal (400, 409, 422): the vendor's application refused, behind its
    idempotency layer, so the refusal is stored under the request's ``Idempotency-Key`` like
    any answer below 500 (on a vendor that honours keys): the same key gets it back for the
    key's 24 h, after the window too, and only a new key is judged afresh. A key that already
    has an answer gets that answer. Without it a refusal is the gateway's: nothing is kept."""
    per_second: Annotated[float, Field(gt=0, le=100_000)] | None = None
    """rate_limit: tokens added per virtual second."""
    burst: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """rate_limit: bucket size (default: per_second rounded up)."""
    retry_after_as: Literal["seconds", "http-date"] | None = None
    """rate_limit, outage: how Retry-After is written: whole seconds (default) or an HTTP date
    (RFC 9110 allows both; many gateways and CDNs send the date)."""
    mode: Literal["unavailable", "down"] | None = None
    """outage: ``unavailable`` (default) answers 503 with Retry-After; ``down`` refuses and
    resets connections for the window, as a crashed process does (needs ``for``, no route)."""
    event: Annotated[str, Field(max_length=100)] | None = None
    """Event kinds: the event type faulted (``tracking.updated``); absent or empty = all."""
    copies: Annotated[int, Field(ge=2, le=20)] | None = None
    """duplicate: how many deliveries of the event in all (default 2)."""
    spacing_s: Annotated[float, Field(ge=0, le=86_400)] | None = None
    """duplicate: virtual seconds between copies (default 0: back to back)."""
    new_ids: bool | None = None
    """duplicate: the copies are re-sent as new events, each with a new event id (an ERP
    whose outbox re-sends, a user who releases twice): dedup by event id cannot catch them."""
    lag_s: Annotated[float, Field(gt=0, le=86_400)] | None = None
    """feed_lag: virtual seconds a change stays out of feeds and change lists (default 30)."""
    ttl_s: Annotated[float, Field(gt=0, le=604_800)] | None = None
    """token_expiry: virtual seconds a cursor or page token lives (default 300); older: 410."""
    skew_s: Annotated[int, Field(ge=-MAX_SKEW_S, le=MAX_SKEW_S)] | None = None
    """feed_clock_skew: whole seconds the vendor's change-list clock runs ahead of (positive)
    or behind (negative) the true virtual clock; required, never 0."""
    hold_s: Annotated[float, Field(gt=0, le=604_800)] | None = None
    """reorder: virtual seconds an event is held (default 600)."""
    delay_s: Annotated[float, Field(gt=0, le=604_800)] | None = None
    """late: virtual seconds before delivery; replayed: before the replay (default 600)."""
    signed_age_s: Annotated[float, Field(gt=0, le=31_536_000)] | None = None
    """replayed: the copy is signed as a capture this many WALL seconds old would be (its
    timestamp is now minus this, correctly signed), so a stack's replay window is tested even
    in lockstep, where virtual hours pass in wall seconds. Absent: the original headers."""
    form: Garble | None = None
    """garbled: what is wrong with the copy (default ``truncated``): ``truncated`` (the
    envelope's bytes cut in half: not JSON), ``not_object`` (a JSON array holding the
    envelope), ``no_id`` (the envelope without its id), ``double_encoded`` (``data`` as a JSON
    string of the object), each signed correctly over what is sent; ``headers_twice`` (the
    genuine bytes with the signature header sent twice: the good signature, then a wrong one)."""
    answer_status: Literal[200, 201, 202] | None = None
    """schema_drift on answers: the 2xx status a release answers with instead (a create that
    answered 201 now answers 200): a client that checks for one exact 2xx breaks."""
    wire_format: Literal["pretty"] | None = None
    """schema_drift on events: how the release writes the event's JSON: ``pretty`` (indented
    two spaces, keys sorted, a newline at the end, as many vendors' serialisers are set up).
    The same data, other bytes, signed as sent: a receiver that checks the signature over the
    event serialised again instead of the bytes it got refuses every one."""
    add_fields: FieldValues | None = None
    """schema_drift: fields added to the answer (name -> JSON value), unknown to old clients."""
    rename_fields: Renames | None = None
    """schema_drift: fields renamed (old name -> new name); a field absent is left alone."""
    remove_fields: FieldNames | None = None
    """schema_drift: fields removed from the answer."""
    set_values: FieldValues | None = None
    """schema_drift: new values of fields the answer carries (a new enum value, a new format);
    a field absent stays absent."""
    at: At = 0.0
    """Window start: virtual seconds or "HH:MM" of day 0."""
    for_: Annotated[float | None, Field(alias="for", gt=0)] = None
    """Window length in virtual seconds; absent = to the end of the run."""
    rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """Share of matching requests affected."""
    match: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """A substring the request body must contain (an order id, a SKU)."""

    @field_validator("route")
    @classmethod
    def _route(cls, value: str) -> str:
        return business_route(value, "the control plane (/_sim/) and /webhooks are never faulted")

    @field_validator("rename_fields")
    @classmethod
    def _renames(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """Two fields renamed to one name would leave which value survives to dict order."""
        if value is not None and len(set(value.values())) < len(value):
            raise ValueError("two fields are renamed to the same name")
        return value

    @model_validator(mode="after")
    def _parameters(self) -> Fault:
        for name, kinds in _PARAMETERS.items():
            if getattr(self, name) is not None and self.kind not in kinds:
                raise ValueError(f"{name} applies to kind {' or '.join(kinds)}, not {self.kind}")
        if self.kind == "schema_drift" and self.event and self.route:
            raise ValueError(
                "a schema_drift reshapes answers (route) or one event type's data (event): "
                "give one of them"
            )
        if self.is_event and self.route:
            raise ValueError(f"{self.kind} is an event fault: give event, not route")
        if not self.is_event and self.event:
            raise ValueError(f"{self.kind} faults answers: give route, not event")
        if self.kind == "burst" and self.for_ is None:
            raise ValueError("a burst fault needs for: its events are released at the window end")
        if self.is_down:
            self._check_down()
        if self.status is not None and self.status not in STATUSES[self.kind]:
            allowed = ", ".join(map(str, STATUSES[self.kind]))
            raise ValueError(f"a {self.kind} fault answers {allowed}, not {self.status}")
        if self.remembered and (self.status is None or self.status >= 500):
            raise ValueError(
                "remembered is for a refusal (status 400, 409 or 422): a vendor keeps no 5xx "
                "under a key"
            )
        if self.kind == "latency" and self.ms is None:
            raise ValueError("a latency fault needs ms (a number or {min_ms, max_ms})")
        if self.kind == "rate_limit" and self.per_second is None:
            raise ValueError("a rate_limit fault needs per_second")
        if self.kind == "schema_drift" and not (
            self.drifts or self.answer_status is not None or self.wire_format is not None
        ):
            raise ValueError(
                "a schema_drift fault needs at least one of "
                + ", ".join((*DRIFT_PARAMETERS, "answer_status", "wire_format"))
            )
        if self.answer_status is not None and self.event:
            raise ValueError("answer_status changes answers: give a route, not an event")
        if self.wire_format is not None and not self.event:
            raise ValueError("wire_format rewrites an event's bytes: give an event, not a route")
        if self.kind == "feed_clock_skew":
            self._check_skew()
        return self

    def _check_skew(self) -> None:
        """A skewed clock is the vendor's, for every read of its change lists."""
        if not self.skew_s:
            raise ValueError(
                "a feed_clock_skew fault needs skew_s: whole seconds ahead (positive) or "
                "behind (negative), not 0"
            )
        if self.match is not None or self.rate != 1.0:
            raise ValueError("a vendor's clock is skewed for every read: give no match or rate")
        if self.path_prefix.rstrip("/") == "/events":
            raise ValueError(
                "the events feed pages by position and keeps its events' occurred_at: "
                "feed_clock_skew applies to change lists (GET /orders, GET /fulfilment-orders, "
                "GET /shipments)"
            )

    def _check_down(self) -> None:
        """A down outage takes a whole process away, and gives it back."""
        if self.for_ is None:
            raise ValueError(
                "an outage with mode down needs for: a vendor that never comes back tests nothing"
            )
        if self.route:
            raise ValueError(
                "an outage with mode down takes the whole simulator down: give no route "
                "(for one route, use mode unavailable)"
            )
        if self.match is not None or self.rate != 1.0:
            raise ValueError(
                "an outage with mode down refuses every connection: give no match or rate"
            )

    # -- derived -------------------------------------------------------------------------
    @property
    def is_event(self) -> bool:
        """Faults webhook deliveries (an event kind), or, a ``schema_drift`` that names an
        ``event``, reshapes that event's ``data`` (in its webhooks and its feed alike)."""
        return self.kind in EVENT_KINDS or (self.kind == "schema_drift" and bool(self.event))

    @property
    def drifts_events(self) -> bool:
        return self.kind == "schema_drift" and bool(self.event)

    @property
    def is_feed(self) -> bool:
        """Bends what a feed or change list shows rather than answering in its place."""
        return self.kind in FEED_KINDS

    @property
    def is_down(self) -> bool:
        """An outage at the connection level: applied by hosting, never to a request."""
        return self.kind == "outage" and self.mode == "down"

    def applies_to_event(self, event_type: str) -> bool:
        return self.is_event and (not self.event or self.event == event_type)

    def event_label(self) -> str:
        """What the journal says: ``duplicate:2``, ``reorder:600s``, ``forged`` ..."""
        if self.kind == "duplicate":
            resent = "+new-ids" if self.new_ids else ""
            return f"duplicate:{self.copies or DEFAULT_COPIES}{resent}"
        if self.kind == "reorder":
            return f"reorder:{self.hold_s or DEFAULT_HOLD_S:g}s"
        if self.kind == "schema_drift":
            return "schema_drift"
        if self.kind in ("late", "replayed"):
            aged = f"+signed-{self.signed_age_s:g}s-ago" if self.signed_age_s else ""
            return f"{self.kind}:{self.delay_s or DEFAULT_DELAY_S:g}s{aged}"
        if self.kind == "garbled":
            return f"garbled:{self.form or DEFAULT_GARBLE}"
        return self.kind

    def feed_label(self) -> str:
        """What the journal says: ``feed_lag:30s``, ``feed_overlap``, ``token_expiry:300s``,
        ``feed_torn_second``, ``feed_clock_skew:-180s``."""
        if self.kind == "feed_lag":
            return f"feed_lag:{self.lag_s or DEFAULT_LAG_S:g}s"
        if self.kind == "token_expiry":
            return f"token_expiry:{self.ttl_s or DEFAULT_TTL_S:g}s"
        if self.kind == "feed_clock_skew":
            return f"feed_clock_skew:{self.skew_s:+d}s"
        return self.kind

    @property
    def drifts(self) -> bool:
        """Whether any schema_drift parameter is given (the validator refuses a drift without)."""
        return any(getattr(self, name) is not None for name in DRIFT_PARAMETERS)

    @property
    def method(self) -> str | None:
        return self.route.split(" ", 1)[0] if " " in self.route else None

    @property
    def path_prefix(self) -> str:
        return self.route.split(" ", 1)[-1]

    @property
    def until(self) -> float | None:
        return None if self.for_ is None else self.at + self.for_

    @property
    def bucket_size(self) -> int:
        if self.burst is not None:
            return self.burst
        return max(1, int(-(-(self.per_second or 1) // 1)))

    def applies_to(self, method: str, path: str) -> bool:
        """Route filter; ``/labels`` matches ``/labels`` and ``/labels/LB-1``, not ``/labelsx``.
        False for event faults and for a down outage (no request reaches a process that is down)."""
        if self.is_event or self.is_down:
            return False
        if path.startswith(EXCLUDED_PREFIXES):
            return False
        return route_fits(self.route, method, path)

    def open_at(self, now: float) -> bool:
        until = self.until
        return self.at <= now and (until is None or now < until)

    def public(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def business_route(value: str, excluded: str) -> str:
    """``"POST /labels"`` or ``"/labels"``, normalised (the method upper case); ValueError
    for anything else, ``excluded`` for the control plane and the webhook routes."""
    value = value.strip()
    if not value:
        return value
    method, _, path = value.rpartition(" ")
    if method and method.upper() not in METHODS:
        raise ValueError(f"unknown method {method!r}; write 'POST /labels' or '/labels'")
    if not path.startswith("/"):
        raise ValueError("a route is a path starting with / (optionally after a method)")
    if path.startswith(EXCLUDED_PREFIXES):
        raise ValueError(excluded)
    return f"{method.upper()} {path}" if method else path


def route_fits(route: str, method: str, path: str) -> bool:
    """Whether a request fits a normalised route: ``/labels`` fits ``/labels`` and
    ``/labels/LB-1``, not ``/labelsx``; ``POST /labels`` only a POST."""
    wanted, _, prefix = route.rpartition(" ")
    if wanted and wanted != method:
        return False
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def keyed_unit(*parts: object) -> float:
    """A number in [0, 1) from the parts alone: the same parts always give the same number."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
