"""``twinyard contracts fuzz`` against the reference stack (nothing to find) and against a
fragile receiver (everything to find), over HTTP on ephemeral ports, in both signing schemes;
a lenient receiver (the reference stack's verifier before issue 14) fails exactly the
hygiene cases; CLI misuse exits 2."""

from __future__ import annotations

import hmac
import json
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import simulators
from harness import hosting
from harness.cli import main
from harness.contracts import fuzz, hostile
from reference_stack.app import build_app, parse_event
from reference_stack.config import Config
from reference_stack.defects import SKIP_SIGNATURE
from reference_stack.stack import Stack
from simulators.common import signing
from simulators.common.clock import ManualClock
from simulators.common.signing import STANDARD_WEBHOOKS, TWINYARD
from tests.support import LoopThread

SECRET = "fuzz-s3cr3t"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's test key
EXAMPLES = 10  # per phase: enough to reach the parser in every way, and fast
HOSTILE = {case.name for case in hostile.catalogue()}
SW_HOSTILE = {case.name for case in hostile.catalogue(STANDARD_WEBHOOKS)}
# The hygiene cases a receiver must refuse (slightly_ahead it must take).
HYGIENE = {
    "future_beyond_skew",
    "timestamp_plus_sign",
    "timestamp_underscores",
    "timestamp_leading_space",
    "timestamp_leading_zeros",
    "timestamp_20_digits",
    "signature_not_ascii",
    "duplicate_signature_valid_first",
    "duplicate_signature_valid_last",
    "duplicate_timestamp_valid_first",
    "duplicate_timestamp_valid_last",
    "wrong_system",
}


@dataclass
class ReferenceStack:
    """The reference stack on its own port, subscribed to four simulators on theirs."""

    hosted: list[hosting.Hosted]
    stack: Stack
    server: Any
    sock: socket.socket

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @classmethod
    async def start(
        cls, db: Path, defects: frozenset[str] = frozenset(), signing: str = TWINYARD
    ) -> ReferenceStack:
        sims = [simulators.build(s, ManualClock()) for s in simulators.SYSTEMS]
        hosted = await hosting.serve(sims, [0] * len(sims))
        sock = hosting.bind("127.0.0.1", 0)
        config = Config(
            vendor_urls={h.sim.system: h.url for h in hosted},
            webhook_secret=SW_SECRET if signing == STANDARD_WEBHOOKS else SECRET,
            port=sock.getsockname()[1],  # what it subscribes with: its own address
            db_path=db,
            defects=defects,
            webhook_signing=signing,
        )
        stack = Stack(config)
        await stack.start()
        await stack.subscribe()
        server = await hosting.start_server(build_app(stack), sock)
        return cls(hosted, stack, server, sock)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.server.shutdown(sockets=[self.sock])
        self.sock.close()
        await self.stack.stop()
        await hosting.shutdown(self.hosted)


async def _fragile(request: Request) -> JSONResponse:
    """Trusts every event (no signature check) and parses without a guard: a 500 on non-JSON."""
    event = json.loads(await request.body())
    return JSONResponse({"status": "accepted", "event_id": str(event)[:20]}, 202)


async def _lenient(request: Request) -> JSONResponse:
    """The reference stack's verifier as it was measured before issue 14: ``int()`` on the
    timestamp, 300 s either way, the first of two headers, ``compare_digest`` on str (a
    TypeError, so a 500, on a signature that is not ASCII), the envelope's source unread."""
    body = await request.body()
    ts_header = request.headers.get(signing.TIMESTAMP_HEADER)
    sig = request.headers.get(signing.SIGNATURE_HEADER)
    if not ts_header or not sig:
        return JSONResponse({"error": "missing"}, 401)
    try:
        ts = int(ts_header)
    except ValueError:
        return JSONResponse({"error": "not an integer"}, 401)
    if abs(time.time() - ts) > 300:
        return JSONResponse({"error": "window"}, 401)
    if not hmac.compare_digest(signing.signature(SECRET, ts, body), sig):
        return JSONResponse({"error": "signature"}, 401)
    event = parse_event(request.path_params["system"], body)  # the stack's own envelope check
    if event is None:
        return JSONResponse({"error": "malformed"}, 400)
    return JSONResponse({"status": "accepted", "event_id": event.id}, 202)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def reference_url(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    running = loop.run(ReferenceStack.start(tmp_path_factory.mktemp("refstack") / "stack.db"))
    yield running.url
    loop.run(running.stop())


def _serve(loop: LoopThread, handler: Any) -> Iterator[str]:
    app = Starlette(routes=[Route("/webhooks/{system}", handler, methods=["POST"])])
    sock = hosting.bind("127.0.0.1", 0)
    server = loop.run(hosting.start_server(app, sock))
    host, port = sock.getsockname()[:2]
    yield f"http://{host}:{port}"

    async def stop() -> None:
        server.should_exit = True
        await server.shutdown(sockets=[sock])
        sock.close()

    loop.run(stop())


@pytest.fixture(scope="module")
def fragile_url(loop: LoopThread) -> Iterator[str]:
    yield from _serve(loop, _fragile)


@pytest.fixture(scope="module")
def lenient_url(loop: LoopThread) -> Iterator[str]:
    yield from _serve(loop, _lenient)


@pytest.fixture(scope="module")
def standard_url(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("refstack-sw") / "stack.db"
    running = loop.run(ReferenceStack.start(db, signing=STANDARD_WEBHOOKS))
    yield running.url
    loop.run(running.stop())


def test_the_reference_stack_passes_every_case(reference_url: str) -> None:
    result = fuzz.run(reference_url, SECRET, max_examples=EXAMPLES)
    assert [f"{f.case}: {f.problem} ({f.status} {f.body})" for f in result.findings] == []
    assert {"examples", "coverage", "fuzzing"} <= set(result.generated.phases)
    assert all(tally.cases > 0 for tally in result.generated.phases.values())
    targets = {o.target for o in result.hostile}
    assert targets == {f"/webhooks/{system}" for system in simulators.SYSTEMS}
    assert len(result.hostile) == len(HOSTILE) * len(targets)
    repeated = next(o for o in result.hostile if o.name == "repeated_event")
    assert repeated.statuses == (202, 200)  # accepted, then acknowledged as a duplicate


def test_the_reference_stack_without_signature_checks_fails_exactly_those(
    loop: LoopThread, tmp_path: Path
) -> None:
    running = loop.run(ReferenceStack.start(tmp_path / "stack.db", frozenset({SKIP_SIGNATURE})))
    try:
        result = fuzz.run(running.url, SECRET, max_examples=EXAMPLES)
    finally:
        loop.run(running.stop())
    # Every case the signature check refuses, header hygiene included; an event sent to
    # another system's endpoint is refused all the same (the envelope's source is checked
    # apart from the signature).
    unauthentic = {o.name for o in result.hostile if o.expected == "401"}
    twice = {o.name for o in result.hostile if o.name.startswith("duplicate_")}
    assert {o.name for o in result.hostile if not o.passed} == unauthentic | twice
    assert {"future_beyond_skew", "timestamp_plus_sign", "timestamp_20_digits"} <= unauthentic
    assert {f.source for f in result.findings} == {"hostile"}
    assert len(result.findings) == len(unauthentic | twice) * len(simulators.SYSTEMS)


def test_a_fragile_receiver_is_named_case_by_case(fragile_url: str) -> None:
    result = fuzz.run(fragile_url, SECRET, max_examples=EXAMPLES)
    failed = {o.name for o in result.hostile if not o.passed}
    unauthentic = {"unsigned", "wrong_secret", "tampered_body", "stale_timestamp"}
    assert unauthentic | {"future_timestamp", "timestamp_not_a_number"} <= failed
    assert {"body_not_json", "empty_body", "json_array", "missing_id", "data_not_object"} <= failed
    assert {"not_utf8", "deeply_nested"} <= failed  # Python's json: UnicodeDecodeError, recursion
    assert {"unknown_type", "oversized_body", "repeated_event", "still_answering"}.isdisjoint(
        failed
    )
    assert HYGIENE - {"timestamp_20_digits"} <= failed  # 20 digits: outside any window
    assert "slightly_ahead" not in failed
    crash = next(o for o in result.hostile if o.name == "body_not_json")
    assert crash.statuses == (500,)
    findings = {f.case: f for f in result.findings if f.source == "hostile"}
    unsigned = findings["/webhooks/erp: unsigned"]
    assert (unsigned.problem, unsigned.status) == ("expected 401, got 202", 202)
    assert "without signature headers" in unsigned.request
    assert any("not_a_server_error" in f.problem for f in result.generated.findings)


def test_a_lenient_verifier_fails_exactly_the_hygiene_cases(lenient_url: str) -> None:
    """What was measured on the reference stack before issue 14: a timestamp 120 s ahead,
    ``+<ts>``, ``1_796_317_186``, a no-break space and leading zeros taken; the first of two
    signature or timestamp headers read; a 500 for a signature that is not ASCII; an event for
    one system taken at another's door."""
    result = fuzz.run(lenient_url, SECRET, max_examples=EXAMPLES)
    failed = {o.name for o in result.hostile if not o.passed}
    assert failed == {
        "future_beyond_skew",
        "timestamp_plus_sign",
        "timestamp_underscores",
        "timestamp_leading_space",
        "timestamp_leading_zeros",
        "signature_not_ascii",
        "duplicate_signature_valid_first",
        "duplicate_timestamp_valid_first",
        "wrong_system",
    }
    crash = next(o for o in result.hostile if o.name == "signature_not_ascii")
    assert crash.statuses == (500,)
    for name in failed:  # on every endpoint
        assert len([o for o in result.hostile if o.name == name and not o.passed]) == 4


def test_the_reference_stack_passes_every_standard_webhooks_case(standard_url: str) -> None:
    result = fuzz.run(standard_url, SW_SECRET, max_examples=EXAMPLES, signing=STANDARD_WEBHOOKS)
    assert [f"{f.case}: {f.problem} ({f.status} {f.body})" for f in result.findings] == []
    assert all(tally.cases > 0 for tally in result.generated.phases.values())
    assert {o.name for o in result.hostile} == SW_HOSTILE
    assert {
        "missing_webhook_id",
        "webhook_id_swapped",
        "duplicate_webhook_id",
        "several_signatures",
    } == SW_HOSTILE - HOSTILE
    several = [o for o in result.hostile if o.name == "several_signatures"]
    assert {o.statuses for o in several} == {(202,)}  # one good signature among three: taken
    # The same stack, fuzzed with the other scheme: nothing signed gets past its check.
    wrong = fuzz.run(standard_url, SECRET, max_examples=1)
    refused = {o.name for o in wrong.hostile if not o.passed}
    assert {"still_answering", "repeated_event", "slightly_ahead"} <= refused


def test_a_fragile_receiver_fails_the_standard_webhooks_cases(fragile_url: str) -> None:
    result = fuzz.run(fragile_url, SW_SECRET, max_examples=EXAMPLES, signing=STANDARD_WEBHOOKS)
    failed = {o.name for o in result.hostile if not o.passed}
    assert {"unsigned", "wrong_secret", "missing_webhook_id", "webhook_id_swapped"} <= failed
    assert HYGIENE - {"timestamp_20_digits"} | {"duplicate_webhook_id"} <= failed
    assert "several_signatures" not in failed


def test_the_standard_webhooks_command_exits_0_against_the_reference_stack(
    standard_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SW_SECRET + "\n")
    monkeypatch.delenv("TWINYARD_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("TWINYARD_WEBHOOK_SECRET_FILE", str(secret_file))  # not on argv
    args = ["contracts", "fuzz", "--url", standard_url, "--signing", "standard-webhooks"]
    assert main([*args, "--max-examples", "5"]) == 0
    assert "0 findings" in capsys.readouterr().out


def test_the_command_prints_findings_writes_junit_and_exits_1(
    fragile_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "fuzz.xml"
    args = ["contracts", "fuzz", "--url", fragile_url, "--secret", SECRET]
    code = main([*args, "--max-examples", str(EXAMPLES), "--junit", str(report)])
    assert code == 1
    out = capsys.readouterr().out
    assert "/webhooks/erp: unsigned" in out
    suite = ET.parse(report).getroot()
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert {"unsigned", "body_not_json"} <= failed
    assert int(suite.get("failures", "0")) > 0


def test_the_command_exits_0_against_the_reference_stack(
    reference_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TWINYARD_WEBHOOK_SECRET", SECRET)  # as `twinyard run` reads it
    code = main(["contracts", "fuzz", "--url", reference_url, "--max-examples", "5"])
    assert code == 0
    assert "0 findings" in capsys.readouterr().out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:{port}"], "cannot reach http://127.0.0.1:{port}"),
        (["--url", "ftp://example.invalid"], "ftp://example.invalid is not an http(s) URL"),
        (["--url", "http://127.0.0.1:1", "--openapi", "{missing}"], "cannot read {missing}"),
        (["--url", "http://127.0.0.1:1", "--openapi", "{garbage}"], "not valid YAML"),
        (["--url", "http://127.0.0.1:1", "--openapi", "{no_post}"], "no POST operation"),
        (["--url", "http://127.0.0.1:1", "--openapi", "{no_info}"], "not a usable OpenAPI"),
    ],
)
def test_misuse_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = {
        "garbage": "openapi: [unclosed\n",
        "no_post": "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n",
        "no_info": "openapi: 3.0.3\npaths:\n  /in:\n    post:\n      responses: {}\n",
    }
    names: dict[str, object] = {"port": _closed_port(), "missing": tmp_path / "missing.yaml"}
    for name, text in specs.items():
        names[name] = tmp_path / f"{name}.yaml"
        (tmp_path / f"{name}.yaml").write_text(text)
    code = main(["contracts", "fuzz", *(a.format(**names) for a in args), "--secret", SECRET])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1
    assert message.format(**names) in err


def test_no_secret_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TWINYARD_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("TWINYARD_WEBHOOK_SECRET_FILE", raising=False)
    assert main(["contracts", "fuzz", "--url", "http://127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "twinyard: error: a webhook secret is needed to sign events:"
        " TWINYARD_WEBHOOK_SECRET, --secret-file or --secret"
    ]
