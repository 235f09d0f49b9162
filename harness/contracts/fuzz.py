"""``twinyard contracts fuzz``: malformed and hostile events against a stack's webhook receiver.

A stack's webhook door faces the internet in production: whatever arrives there, it must
answer with a 4xx or a 2xx, never crash, and never act on an event it cannot authenticate.
Two parts, both against the receiver's URL:

- generated: Schemathesis builds requests (valid and invalid) from the receiver's OpenAPI
  (``contracts/openapi/stack-webhooks.yaml`` by default), signs each one with the webhook
  secret so that it gets past the signature check to the parser, and checks every answer:
  not a server error, a documented status, a body and headers as documented;
- hostile: a fixed catalogue of events, each with the answer it must get (unsigned, forged
  or replayed events: 401; a timestamp ahead beyond the clock skew or not canonical: 401; a
  signature header sent twice, an event sent to another system's endpoint: a 4xx; signed
  garbage: 400; an unknown type or a 2 MB body: no 5xx; the same event twice; and a valid
  event at the end, to see that the receiver still answers).

Both sign in the scheme the receiver subscribed with: ``twinyard`` (the default) or
``standard-webhooks`` (``signing``; simulators.common.signing).

The engine run is ``schemathesis_run``; the catalogue is ``hostile``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Err

from harness import bundled
from harness.contracts import openapi_diff
from harness.contracts.hostile import Outcome, answers, run_catalogue
from harness.contracts.schemathesis_run import (
    CHECKS,
    PHASES,
    EngineRun,
    Finding,
    first_line,
    run_engine,
)
from harness.report import junit_xml
from simulators.common import signing as schemes
from simulators.common.signing import (
    SIGNATURE_HEADER,
    SIGNATURE_HEADERS,
    STANDARD_WEBHOOKS,
    SW_SIGNATURE_HEADER,
    TWINYARD,
)

DEFAULT_SPEC = bundled.STACK_WEBHOOKS_SPEC
REQUEST_TIMEOUT_S = 30.0


class FuzzError(Exception):
    """A usage problem (unreadable spec, unreachable URL): one line for the user."""


@dataclass
class FuzzResult:
    url: str
    spec: str
    generated: EngineRun
    hostile: list[Outcome]
    hostile_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def cases(self) -> int:
        return self.generated.cases + len(self.hostile)

    @property
    def findings(self) -> list[Finding]:
        failed = [
            Finding(
                "hostile",
                f"{o.target}: {o.name}",
                f"expected {o.expected}, got {o.error or answers(o.statuses)}",
                f"POST {o.target}: {o.sent}",
                o.statuses[-1] if o.statuses else None,
                o.error or o.body,
            )
            for o in self.hostile
            if not o.passed
        ]
        return [*self.generated.findings, *failed]


# -- the whole run ------------------------------------------------------------------------------
def run(
    url: str,
    secret: str,
    spec: Path = DEFAULT_SPEC,
    *,
    max_examples: int = 100,
    seed: int = 0,
    signing: str = TWINYARD,
) -> FuzzResult:
    """Fuzz the receiver at ``url`` (its base URL; the spec's paths are appended), every
    event signed in the ``signing`` scheme."""
    started = time.perf_counter()
    url = url.rstrip("/")
    try:
        schemes.check_secret(signing, secret)
    except ValueError as exc:
        raise FuzzError(f"--signing {signing}: {exc}") from None
    raw = _load(spec)
    targets = receiver_paths(raw)
    schema = signed_schema(raw, url, secret, max_examples=max_examples, seed=seed, signing=signing)
    _reachable(url)
    generated = run_engine(schema)
    # A connection per case: a receiver that crashed on one case may drop the connection it
    # answered on, and the next case sent over it would take the blame.
    fresh = httpx.Limits(max_keepalive_connections=0)
    sending = time.perf_counter()
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=fresh) as client:
        outcomes = [o for target in targets for o in run_catalogue(client, target, secret, signing)]
    hostile_s = time.perf_counter() - sending
    ended = time.perf_counter()
    return FuzzResult(url, str(spec), generated, outcomes, hostile_s, ended - started)


def _load(spec: Path) -> dict[str, Any]:
    try:
        return openapi_diff.load(spec)
    except openapi_diff.SpecError as exc:
        raise FuzzError(str(exc)) from None


def _reachable(url: str) -> None:
    """Any HTTP answer will do; a refused connection is a usage error, not a finding."""
    try:
        httpx.get(url + "/", timeout=5.0)
    except httpx.InvalidURL as exc:
        raise FuzzError(f"{url} is not a usable URL: {exc}") from None
    except httpx.UnsupportedProtocol:
        raise FuzzError(f"{url} is not an http(s) URL") from None
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise FuzzError(f"cannot reach {url}: {reason}") from None


def receiver_paths(raw: dict[str, Any]) -> list[str]:
    """The concrete paths of the spec's POST operations, each path parameter filled with every
    value its enum allows (``/webhooks/{system}``: one path per vendor system)."""
    paths: list[str] = []
    for template, item in (raw.get("paths") or {}).items():
        if not isinstance(item, dict) or "post" not in item:
            continue
        filled = [template]
        for name, values in _path_values(raw, item).items():
            filled = [p.replace("{" + name + "}", v) for p in filled for v in values]
        if any("{" in p for p in filled):
            raise FuzzError(f"{template}: every path parameter needs an enum or an example")
        paths += filled
    if not paths:
        raise FuzzError("the spec has no POST operation to send events to")
    return paths


def _path_values(raw: dict[str, Any], item: dict[str, Any]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for param in [*item.get("parameters", []), *item["post"].get("parameters", [])]:
        param = _resolve(raw, param)
        if param.get("in") != "path":
            continue
        schema = _resolve(raw, param.get("schema", {}))
        enum = schema.get("enum") or ([param["example"]] if "example" in param else [])
        if enum:
            values[param["name"]] = [str(v) for v in enum]
    return values


def _resolve(raw: dict[str, Any], node: Any) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``)."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target: Any = raw
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node if isinstance(node, dict) else {}


# -- generated: Schemathesis ----------------------------------------------------------------------
PENDING = "signed-when-sent"  # placeholder header value the signer replaces


class _Signer(requests.auth.AuthBase):
    """Signs the bytes actually sent: requests hands its auth the prepared request, whose
    body is final (signing ``case.body`` would sign a serialisation of our own).

    It signs only a request that still carries the placeholder: one whose credentials
    Schemathesis removed or replaced on purpose (to see them refused) goes out as it is.
    """

    def __init__(self, secret: str, signing: str = TWINYARD) -> None:
        self.secret = secret
        self.signing = signing
        self.marker = SW_SIGNATURE_HEADER if signing == STANDARD_WEBHOOKS else SIGNATURE_HEADER

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.headers.get(self.marker) == PENDING:
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode("utf-8")
            msg_id = f"msg_{uuid.uuid4().hex}"  # Standard Webhooks' webhook-id
            headers = schemes.sign(self.signing, self.secret, body, msg_id)  # type: ignore[arg-type]
            request.headers.update(headers)
        return request


def signed_schema(
    raw: dict[str, Any],
    url: str,
    secret: str,
    *,
    max_examples: int,
    seed: int = 0,
    signing: str = TWINYARD,
) -> Any:
    """The receiver's schema, configured for this run, with every generated request signed."""
    config = SchemathesisConfig.from_dict(
        {
            "base-url": url,
            "seed": seed,
            "continue-on-failure": True,  # every distinct failure, not only the first
            "generation": {"max-examples": max_examples},
            "phases": {phase: {"enabled": True} for phase in PHASES},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    try:  # what Schemathesis cannot use is a usage error, not a finding about the stack
        schema = schemathesis.openapi.from_dict(raw, config=config)
        schema.validate()
        for operation in schema.get_all_operations():
            if isinstance(operation, Err):
                raise operation.err()
    except Exception as exc:  # schemathesis and jsonschema-rs each raise their own
        raise FuzzError(f"not a usable OpenAPI document: {first_line(str(exc))}") from None
    signer = _Signer(secret, signing)

    class Signature:
        """Schemathesis auth provider: the placeholder now, the signature when sent."""

        def get(self, case: Any, context: Any) -> str:
            return PENDING

        def set(self, case: Any, data: str, context: Any) -> None:
            if case.headers is None:
                case.headers = {}
            for name in SIGNATURE_HEADERS[signing]:
                case.headers[name] = data
            case._auth = signer  # what schemathesis' own requests-auth provider sets

    schema.auth(refresh_interval=None, retry_on=[])(Signature)
    return schema


# -- JUnit ----------------------------------------------------------------------------------------
def junit_suite(result: FuzzResult) -> junit_xml.Suite:
    """One test case per hostile case and per generated phase; a finding is a failure."""
    cases: list[junit_xml.Case] = []
    by_phase: dict[str, list[Finding]] = {}
    for finding in result.generated.findings:
        by_phase.setdefault(finding.case.split(":", 1)[0], []).append(finding)
    tallies = result.generated.phases
    for phase in [*tallies, *(p for p in by_phase if p not in tallies)]:  # engine errors too
        seconds = tallies[phase].seconds if phase in tallies else 0.0
        found = by_phase.get(phase, [])
        failure = f"{len(found)} distinct failures" if found else None
        text = "\n\n".join(_describe(f) for f in found)
        cases.append(junit_xml.Case("generated", phase, failure, text, seconds=seconds))
    for outcome in result.hostile:
        failure = None
        if not outcome.passed:
            failure = (
                f"expected {outcome.expected}, got {outcome.error or answers(outcome.statuses)}"
            )
        text = f"sent: {outcome.sent}\nanswer: {outcome.body}" if failure else ""
        cases.append(junit_xml.Case(f"hostile.{outcome.target}", outcome.name, failure, text))
    return junit_xml.Suite("twinyard.contracts.fuzz", cases, seconds=result.seconds)


def _describe(finding: Finding) -> str:
    status = "no answer" if finding.status is None else str(finding.status)
    return (
        f"{finding.case}: {finding.problem}\n  answer: {status} {finding.body}\n  {finding.request}"
    )


def write_junit(result: FuzzResult, path: Path) -> Path:
    return junit_xml.write(path, "twinyard.contracts.fuzz", [junit_suite(result)])
