"""Faults of the vendors' answers: a journal names them outright (its ``fault`` labels); a
HAR shows them only as 5xx / 429 answers, slow answers and transport errors.

Hits of one kind on one route template (``/orders/{id}/goods-issue``) that no clean answer
interrupts are one outage-like window over the template's literal route prefix, closing
halfway to the next clean answer that prefix covers; short runs, where clean answers and hits
interleave (a rate below 1), are grouped by system, kind, route and business ref and cut
into windows at the clean answers between them, so the retry that got through in the
recording gets through in the replay too. 429s are one window per vendor bucket, with the
bucket declared or estimated. Each window becomes one fault; one the schema refuses is noted,
not written.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.capsules.evidence import Exchange
from harness.capsules.reconstruct import event_faults
from harness.capsules.reconstruct.builder import CLUSTER_GAP_S, Builder, Hit
from harness.capsules.reconstruct.times import ceil3, floor3
from harness.scripted import moment_text
from simulators.common.faults import Fault

LEAD_S = 60.0  # an answer fault's window opens at most this long before its first hit
TAIL_S = 60.0  # ... and closes at most this long after its last one
SLOW_MS = 5_000.0  # a HAR answer this slow is a latency fault
# Routes whose request body carries the business ref the journal names (contracts/openapi):
# a fault on them can ``match`` that ref even where the journal has no bodies.
BODY_NAMES_REF = {
    ("wms", "POST", "/fulfilment-orders"),
    ("tms", "POST", "/shipments"),
    ("carrier", "POST", "/labels"),
}
# Answer fault labels that are the kind alone, and those with one parameter: (its key, type).
_BARE = frozenset(
    {
        "outage",
        "malformed",
        "lost_response",
        "rate_limit",
        "schema_drift",
        "feed_overlap",
        "feed_torn_second",
    }
)
_ONE_PARAMETER: dict[str, tuple[str, Callable[[str], Any]]] = {
    "feed_lag": ("lag_s", float),
    "token_expiry": ("ttl_s", float),
    "feed_clock_skew": ("skew_s", int),
}
# The answer fault kinds a journal label starts with (an event label has ``+`` of its own).
ANSWER_KINDS = ("error", "latency", *sorted(_BARE), *_ONE_PARAMETER)
_DRIFT_FIELDS = ("add_fields", "rename_fields", "remove_fields", "set_values")

# Kinds after which the vendor's own answer still comes back: a clean answer, for windows.
PASSING_KINDS = frozenset(
    {
        "latency",
        "schema_drift",
        "feed_lag",
        "feed_overlap",
        "token_expiry",
        "feed_torn_second",
        "feed_clock_skew",
    }
)
MIN_RUN_HITS = 3  # a run of this many hits (or of two over TAIL_S apart) is outage-like
_ID_SEGMENT = re.compile(r"\d")  # a path segment with a digit in it is an id

# (system, method, path) -> the clean answers there: when, and the ref each named
Clean = dict[tuple[str, str, str], list[tuple[float, str | None]]]


@dataclass(frozen=True)
class Answer:
    """One answer of a vendor, with the fault specs that hit it (none: clean)."""

    vt: float
    system: str
    method: str
    path: str
    specs: frozenset[tuple[tuple[str, Any], ...]]


# -- a twinyard journal: the labels say it ---------------------------------------------------


def split_labels(label: str) -> list[str]:
    """An answer's labels are joined by ``+``; event labels carry ``+`` of their own."""
    parts: list[str] = []
    for token in label.split("+"):
        if parts and not token.startswith(ANSWER_KINDS):
            parts[-1] += "+" + token
        else:
            parts.append(token)
    return parts


def answer_spec(label: str) -> dict[str, Any] | None:
    """An answer fault's kind and parameters from its journal label (None: not known)."""
    kind, _, rest = label.partition(":")
    if kind == "error":
        return {"kind": "error", "status": int(rest or 503)}
    if kind == "latency":
        return {"kind": "latency", "ms": int(rest.removesuffix("ms") or 0)}
    if kind in _BARE:
        return {"kind": kind}
    if kind in _ONE_PARAMETER:
        key, number = _ONE_PARAMETER[kind]
        return {"kind": kind, key: number(rest.removesuffix("s"))}
    return None


def journal_faults(b: Builder, exchanges: list[Exchange]) -> None:
    """Each fault label of the journal, grouped into windows per system, route or event,
    kind and business ref."""
    if not exchanges:
        return
    _inherit_refs(exchanges)
    answers: list[Hit] = []
    events: list[Hit] = []
    odd: Counter[str] = Counter()
    for x in exchanges:
        if not x.fault or x.vt is None or x.system is None:
            continue
        if x.direction == "out":
            parsed = event_faults.event_spec(x.fault)
            if parsed is None:
                odd[f"{x.system} {x.event_type} {x.fault}"] += 1
                continue
            spec, delay = parsed
            events.append(
                Hit(x.vt - delay, x.system, _frozen(spec), "POST", "", x.ref, x.event_type)
            )
            continue
        for label in split_labels(x.fault):
            spec = answer_spec(label)
            if spec is None:
                odd[f"{x.system} {x.method} {x.path} {label}"] += 1
                continue
            ms = int(spec.pop("ms", 0))
            answers.append(Hit(x.vt, x.system, _frozen(spec), x.method, x.path, x.ref, ms=ms))
    for what, count in odd.items():
        b.note(f"journal fault {what} ({count}x): a kind this import does not know; not replayed")
    clean = _clean_answers(exchanges, lambda x: not x.fault, lambda x: x.vt, lambda x: x.ref)
    seen = _answers(exchanges, lambda x: x.vt, _journal_specs)
    _answer_windows(b, answers, clean, seen, body_known=False)
    event_faults.event_windows(b, events)


def _journal_specs(x: Exchange) -> frozenset[tuple[tuple[str, Any], ...]]:
    specs = set()
    for label in split_labels(x.fault or ""):
        spec = answer_spec(label)
        if spec is not None:
            spec.pop("ms", None)
            specs.add(_frozen(spec))
    return frozenset(specs)


def _inherit_refs(exchanges: list[Exchange]) -> None:
    """A retry the vendor answered from its idempotency store names no ref in the journal:
    it is about what the last request on that route named (the same body, sent again).
    Not so for answers given before the app saw the request (an outage names no ref for
    every order it refuses)."""
    last: dict[tuple[str | None, str, str], tuple[str, float]] = {}
    for x in sorted(exchanges, key=lambda x: x.vt or 0.0):
        if x.direction != "in" or x.vt is None:
            continue
        key = (x.system, x.method, x.path)
        if x.ref:
            last[key] = (x.ref, x.vt)
        elif key in last and x.vt - last[key][1] <= CLUSTER_GAP_S * 6 and _reached_app(x):
            x.ref = last[key][0]


def _reached_app(x: Exchange) -> bool:
    """Whether the vendor's app saw the request: an outage, error, 429 or malformed answer
    is given before it does, so its missing ref says nothing about a retry."""
    kinds = {label.partition(":")[0] for label in split_labels(x.fault or "")} - {""}
    return kinds <= {"lost_response", "latency", "schema_drift"}


def _frozen(spec: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(spec.items()))


# -- a HAR: read from the answers ------------------------------------------------------------


def har_faults(b: Builder, exchanges: list[Exchange]) -> None:
    """Answers that went wrong, per route and order; a vendor that could not be reached at
    all is down (one outage per system, over all its refused calls)."""
    hits: list[Hit] = []
    known = sorted(b.orders, key=len, reverse=True)
    for x in exchanges:
        if x.direction != "in" or x.system is None:
            continue
        when = b.when(x)
        if when is None:
            continue
        spec = har_spec(x)
        if spec is None:
            continue
        ref = next((o for o in known if o in x.path), None)
        match = None
        if ref is None:
            ref = next((o for o in known if o in x.request_text), None)
            match = ref
        if spec.get("mode") == "down":
            hits.append(Hit(when, x.system, _frozen(spec), "", "", None))
            continue
        ms = int(min(x.duration_ms, 600_000)) if spec["kind"] == "latency" else 0
        hits.append(Hit(when, x.system, _frozen(spec), x.method, x.path, ref, match=match, ms=ms))
    down = [h for h in hits if dict(h.spec).get("mode") == "down"]
    for system in sorted({h.system for h in down}):
        times = sorted(h.vt for h in down if h.system == system)
        b.faults.append(
            {
                "system": system,
                "kind": "outage",
                "mode": "down",
                "at": floor3(max(0.0, times[0] - 1)),
                "for": max(1.0, ceil3(times[-1] - times[0] + 2)),
            }
        )

    def named(x: Exchange) -> str | None:
        return next((o for o in known if o in x.path or o in x.request_text), None)

    clean = _clean_answers(exchanges, lambda x: har_spec(x) is None, b.when, named)
    seen = _answers(exchanges, b.when, _har_specs)
    _answer_windows(b, [h for h in hits if h not in down], clean, seen, body_known=True)


def _har_specs(x: Exchange) -> frozenset[tuple[tuple[str, Any], ...]]:
    spec = har_spec(x)
    return frozenset() if spec is None else frozenset({_frozen(spec)})


def har_spec(x: Exchange) -> dict[str, Any] | None:
    """What a recorded answer says went wrong at the vendor, as a fault kind."""
    status = x.status
    if status == 0:
        text = (x.error or "").lower()
        if any(word in text for word in ("refused", "reset", "unreachable", "connect")):
            return {"kind": "outage", "mode": "down"}
        return {"kind": "lost_response"}  # a timeout: the vendor may well have done it
    if status == 429:
        return {"kind": "rate_limit"}
    if status == 504:
        return {"kind": "lost_response"}
    if status == 503 and x.retry_after is not None:
        return {"kind": "outage"}
    if status in (500, 502, 503):
        return {"kind": "error", "status": status}
    if status > 500:
        return {"kind": "error", "status": 503}
    if x.duration_ms >= SLOW_MS:
        return {"kind": "latency"}
    return None


# -- windows ---------------------------------------------------------------------------------


def _clean_answers(
    exchanges: list[Exchange],
    is_clean: Callable[[Exchange], bool],
    when: Callable[[Exchange], float | None],
    ref: Callable[[Exchange], str | None],
) -> Clean:
    """The answers no fault touched, per route, in time order: they cut hits into windows."""
    found: Clean = defaultdict(list)
    for x in exchanges:
        if x.direction == "in" and x.system and is_clean(x):
            at = when(x)
            if at is not None:
                found[(x.system, x.method, x.path)].append((at, ref(x)))
    for times in found.values():
        times.sort(key=lambda t: t[0])
    return found


def _answers(
    exchanges: list[Exchange],
    when: Callable[[Exchange], float | None],
    specs: Callable[[Exchange], frozenset[tuple[tuple[str, Any], ...]]],
) -> list[Answer]:
    """Every answer of a vendor, in time order, with the fault specs that hit it."""
    found = []
    for x in exchanges:
        if x.direction == "in" and x.system:
            at = when(x)
            if at is not None:
                found.append(Answer(at, x.system, x.method, x.path, specs(x)))
    found.sort(key=lambda a: a.vt)
    return found


def template(path: str) -> str:
    """The route template of a path: each segment with a digit in it is an id
    (``/orders/SO-000001/goods-issue`` -> ``/orders/{id}/goods-issue``)."""
    segments = path.strip("/").split("/")
    return "/" + "/".join("{id}" if _ID_SEGMENT.search(seg) else seg for seg in segments)


def literal_prefix(path: str) -> str:
    """The longest prefix of a template without an id: what a fault's route can say
    (a route is a prefix, whole segments)."""
    literal = []
    for seg in template(path).strip("/").split("/"):
        if seg == "{id}":
            break
        literal.append(seg)
    return "/" + "/".join(literal)


def _covers(prefix: str, path: str) -> bool:
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _answer_windows(
    b: Builder, hits: list[Hit], clean: Clean, answers: list[Answer], body_known: bool
) -> None:
    """429s per vendor bucket; outage-like runs per route template; the rest per ref."""
    limited = [h for h in hits if dict(h.spec)["kind"] == "rate_limit"]
    _rate_limit_windows(b, limited, answers)
    others = [h for h in hits if dict(h.spec)["kind"] != "rate_limit"]
    rest = _template_windows(b, others, answers)
    _ref_windows(b, rest, clean, body_known)


def _template_windows(b: Builder, hits: list[Hit], answers: list[Answer]) -> list[Hit]:
    """Runs of hits of one kind on one route template with no clean answer between them
    (across all refs) are one window each, over the template's literal prefix and without
    ``match``. The clean answers that cut a run are those of every template the prefix
    covers (a fault there would hit them too); the window opens and closes halfway to the
    nearest of them (``LEAD_S`` before the first hit when there is none before; the end of
    the evidence when there is none after). Returns the hits of short runs (a rate below 1:
    one hit, or two close together) and of runs a clean answer ties with, for per-ref
    windows."""
    groups: dict[tuple[Any, ...], list[Hit]] = defaultdict(list)
    for hit in hits:
        groups[(hit.system, hit.spec, hit.method, literal_prefix(hit.path))].append(hit)
    evidence_end = max((a.vt for a in answers), default=0.0)
    leftover: list[Hit] = []
    windows: dict[tuple[Any, ...], list[tuple[float, float, list[Hit]]]] = defaultdict(list)
    for key, group in groups.items():
        system, spec, method, prefix = key
        cuts = [
            a.vt
            for a in answers
            if a.system == system
            and a.method == method
            and spec not in a.specs
            and _got_through(a)
            and _covers(prefix, a.path)
        ]
        group.sort(key=lambda h: h.vt)
        for run in _runs(group, cuts):
            first, last = run[0].vt, run[-1].vt
            i, j = bisect.bisect_left(cuts, first), bisect.bisect_right(cuts, last)
            before = cuts[i - 1] if i else None
            after = cuts[j] if j < len(cuts) else None
            outage_like = len(run) >= MIN_RUN_HITS or (len(run) == 2 and last - first > TAIL_S)
            tied = (i < len(cuts) and cuts[i] == first) or (j and cuts[j - 1] == last)
            if not outage_like or tied:
                leftover += run
                continue
            at = (before + first) / 2 if before is not None else first - LEAD_S
            end = (after + last) / 2 if after is not None else max(evidence_end, last + 1.0)
            windows[key].append((max(0.0, at), end, run))
    for (system, spec, method, prefix), found in windows.items():
        found.sort(key=lambda w: w[0])
        merged = [found[0]]
        for at, end, run in found[1:]:
            last_at, last_end, last_run = merged[-1]
            if at <= last_end:  # the same gap between clean answers: one window
                merged[-1] = (last_at, max(end, last_end), last_run + run)
            else:
                merged.append((at, end, run))
        for at, end, run in merged:
            _emit(b, system, spec, f"{method} {prefix}", None, at, end, run)
    return leftover


def _got_through(answer: Answer) -> bool:
    """Whether the vendor's own answer came back: no fault, or only one that slows or bends
    it (an answer another fault gave in its place says nothing about when this one ended)."""
    return all(dict(spec)["kind"] in PASSING_KINDS for spec in answer.specs)


def _runs(group: list[Hit], cuts: list[float]) -> list[list[Hit]]:
    """The hits cut at every clean answer between two of them (at the same moment as
    either counts as between: the two cannot be told apart by time)."""
    runs: list[list[Hit]] = [[group[0]]]
    for hit in group[1:]:
        previous = runs[-1][-1].vt
        i = bisect.bisect_left(cuts, previous)
        if i < len(cuts) and cuts[i] <= hit.vt:
            runs.append([hit])
        else:
            runs[-1].append(hit)
    return runs


def _ref_windows(b: Builder, hits: list[Hit], clean: Clean, body_known: bool) -> None:
    """Hits of one kind on one route for one ref, cut into windows at the clean answers
    between them; each window opens halfway from the last clean answer before it (at most
    ``LEAD_S`` early) and closes halfway to the next (at most ``TAIL_S`` late)."""
    groups: dict[tuple[Any, ...], list[Hit]] = defaultdict(list)
    for hit in hits:
        groups[(hit.system, hit.spec, hit.method, hit.path, hit.ref, hit.match)].append(hit)
    for (system, spec, method, path, ref, match), group in groups.items():
        group.sort(key=lambda h: h.vt)
        neighbours = [
            t for t, r in clean.get((system, method, path), []) if ref is None or r == ref
        ]
        windows: list[list[Hit]] = [[group[0]]]
        for hit in group[1:]:
            previous = windows[-1][-1].vt
            between = any(previous < t < hit.vt for t in neighbours)
            if between or hit.vt - previous > CLUSTER_GAP_S:
                windows.append([hit])
            else:
                windows[-1].append(hit)
        for window in windows:
            first, last = window[0].vt, window[-1].vt
            before = [t for t in neighbours if t < first]
            after = [t for t in neighbours if t > last]
            at = max(first - LEAD_S, (before[-1] + first) / 2 if before else -math.inf, 0.0)
            end = min(last + TAIL_S, (after[0] + last) / 2 if after else math.inf)
            # a ref in the path is matched by the route; else by the body, where it is known
            # to name it (a feed's clock skew is the whole feed's, whatever it names)
            body_names = match or (not body_known and (system, method, path) in BODY_NAMES_REF)
            matched = None
            if ref and ref not in path and body_names and dict(spec)["kind"] != "feed_clock_skew":
                matched = match or ref
            _emit(b, system, spec, f"{method} {path}", matched, at, end, window)


def _emit(
    b: Builder,
    system: str,
    spec: tuple[tuple[str, Any], ...],
    route: str,
    match: str | None,
    at: float,
    end: float,
    window: list[Hit],
) -> None:
    """One window as a fault (a schema drift only when the run's scenario says what)."""
    spec_d = dict(spec)
    kind = spec_d["kind"]
    fault: dict[str, Any] = {"system": system}
    if route:
        fault["route"] = route
    if match:
        fault["match"] = match
    if kind == "latency":
        spec_d["ms"] = max(h.ms for h in window)
    if kind == "schema_drift" and not _drift_from_original(b, system, spec_d):
        b.note(
            f"schema_drift on {system} {route} at {moment_text(window[0].vt)}: the "
            "journal does not say what drifted; not replayed"
        )
        return
    fault.update(spec_d)
    fault["at"] = floor3(at)
    fault["for"] = max(0.001, ceil3(end - floor3(at)))
    b.faults.append(fault)


def _rate_limit_windows(b: Builder, hits: list[Hit], answers: list[Answer]) -> None:
    """429s are one vendor bucket's doing, whichever order each refused request named: one
    window per bucket and burst of refusals (hits apart by more than ``CLUSTER_GAP_S`` are
    separate bursts), from ``LEAD_S`` before the first 429 (so the requests that emptied the
    bucket are counted by it again) to ``TAIL_S`` after the last. The bucket is the run's
    scenario's where it declares one over the route (its route too: ``""`` is every route);
    otherwise the template's literal prefix, with a bucket estimated from the answers."""
    groups: dict[tuple[str, str], list[Hit]] = defaultdict(list)
    declared: dict[tuple[str, str], dict[str, Any]] = {}
    for hit in hits:
        found = _declared_bucket(b, hit.system, hit.method, hit.path)
        if found is not None:
            route, bucket = found
            declared[(hit.system, route)] = bucket
        else:
            route = f"{hit.method} {literal_prefix(hit.path)}"
        groups[(hit.system, route)].append(hit)
    for (system, route), group in groups.items():
        group.sort(key=lambda h: h.vt)
        bursts: list[list[Hit]] = [[group[0]]]
        for hit in group[1:]:
            if hit.vt - bursts[-1][-1].vt > CLUSTER_GAP_S:
                bursts.append([hit])
            else:
                bursts[-1].append(hit)
        for burst in bursts:
            first, last = burst[0].vt, burst[-1].vt
            at, end = max(0.0, first - LEAD_S), last + TAIL_S
            bucket = declared.get((system, route)) or _estimated_bucket(
                answers, system, route, at, first, last
            )
            spec = (("kind", "rate_limit"), *sorted(bucket.items()))
            _emit(b, system, spec, route, None, at, end, burst)


def _declared_bucket(
    b: Builder, system: str, method: str, path: str
) -> tuple[str, dict[str, Any]] | None:
    """The run's scenario's rate limit over this route: its route and bucket."""
    for fault in _declared(b):
        if fault.system == system and fault.kind == "rate_limit" and fault.applies_to(method, path):
            kept: dict[str, Any] = {"per_second": fault.per_second}
            if fault.burst is not None:
                kept["burst"] = fault.burst
            return fault.route, kept
    return None


def _estimated_bucket(
    answers: list[Answer], system: str, route: str, at: float, first: float, last: float
) -> dict[str, Any]:
    """A bucket that lets through what got through: ``burst`` the requests answered from
    the window's start to the first 429 (at the same moment too), ``per_second`` those
    answered after it over the time the 429s lasted (1 when they all came at once)."""
    method, _, prefix = route.partition(" ")
    passed = [
        a.vt
        for a in answers
        if a.system == system
        and a.method == method
        and _covers(prefix, a.path)
        and not any(dict(s)["kind"] == "rate_limit" for s in a.specs)
        and at <= a.vt <= last
    ]
    burst = max(1, sum(1 for t in passed if t <= first))
    later = sum(1 for t in passed if t > first)
    per_second = later / (last - first) if last - first >= 1.0 and later else 1.0
    return {"per_second": round(max(0.001, per_second), 3), "burst": burst}


def _drift_from_original(b: Builder, system: str, spec: dict[str, Any]) -> bool:
    """What drifted, from the run's scenario (a journal names only the kind)."""
    for fault in _declared(b):
        if fault.system == system and fault.kind == "schema_drift":
            for name in _DRIFT_FIELDS:
                if getattr(fault, name) is not None:
                    spec[name] = getattr(fault, name)
            return True
    return False


def _declared(b: Builder) -> list[Fault]:
    """The faults the run's scenario declares (none without it)."""
    return list(b.original.faults) if b.original is not None else []


# -- what is written -------------------------------------------------------------------------


def replayable(b: Builder) -> list[dict[str, Any]]:
    """Every fault that loads, in time order (the rest noted), and the run's scenario's
    faults a journal cannot show."""
    kept = []
    for fault in sorted(b.faults, key=lambda f: (f["at"], f["system"], f["kind"])):
        why = validate_fault(fault)
        if why is None:
            kept.append(fault)
        else:
            where = fault.get("route") or fault.get("event") or ""
            b.note(
                f"fault {fault.get('system')} {where} {fault.get('kind')} at {fault.get('at')}: "
                f"{why}; not replayed"
            )
    return kept + _unseen_original_faults(b)


def _unseen_original_faults(b: Builder) -> list[dict[str, Any]]:
    """Faults of the run's scenario a journal cannot show: a process down refuses
    connections, so nothing reaches the journal; these are kept as declared."""
    kept = []
    for fault in _declared(b):
        if fault.is_down:
            kept.append(fault.public())
            b.note(
                f"{fault.system} down at {fault.at:g} s: not in a journal; kept as the run's "
                "scenario declares it"
            )
    return kept


def validate_fault(data: dict[str, Any]) -> str | None:
    """Why a reconstructed fault would not load (None: it loads)."""
    try:
        Fault.model_validate(data)
    except ValueError as exc:
        return str(exc).splitlines()[-1] if str(exc) else "invalid"
    return None
