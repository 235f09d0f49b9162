"""Webhook hygiene (issue 14): the reference stack refuses timestamps ahead beyond the skew or
not in canonical form, a signature or timestamp header sent twice, and an event sent to
another system's endpoint; the simulators sign in either scheme (twinyard, Standard Webhooks),
the second checked by the ``standardwebhooks`` package's own verifier; secrets come from the
environment or a file, never from a command line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import standardwebhooks
from starlette.testclient import TestClient

import simulators
from harness import hosting
from harness.cli import main
from harness.clock import LockstepClock
from reference_stack import __main__ as refstack_main
from reference_stack.app import build_app
from reference_stack.config import SYSTEMS, Config, ConfigError
from reference_stack.defects import SKIP_SIGNATURE
from reference_stack.stack import Stack
from simulators.common import signing
from simulators.common.clock import DEFAULT_EPOCH, ManualClock
from simulators.common.fault_injection import FaultPlan
from simulators.common.faults import Fault
from simulators.common.journal import Journal
from simulators.common.signing import (
    SIGNATURE_HEADER,
    STANDARD_WEBHOOKS,
    SW_ID_HEADER,
    SW_SIGNATURE_HEADER,
    SW_TIMESTAMP_HEADER,
    TIMESTAMP_HEADER,
)
from simulators.common.webhooks import WebhookDispatcher
from tests.support import Receiver, serving

SECRET = "hyg1ene-s3cr3t"
# The spec's published test vector (the standardwebhooks libraries' test_sign_function).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SW_SECRET = VECTOR_SECRET
URLS = {system: f"http://127.0.0.1:9/{system}" for system in SYSTEMS}  # never called here

Pairs = list[tuple[str, str | bytes]]


def envelope(system: str = "erp", **overrides: Any) -> bytes:
    event = {
        "id": f"EV-HYG-{time.monotonic_ns()}",
        "type": "twinyard.hygiene.probe",  # no handler acts on it: acknowledged, dropped
        "source": system,
        "data": {},
    }
    return orjson.dumps({**event, **overrides})


def twinyard_pairs(body: bytes, ts: int | None = None, secret: str = SECRET) -> Pairs:
    headers = signing.signed_headers(secret, body, int(time.time()) if ts is None else ts)
    return [("content-type", "application/json"), *headers.items()]


def standard_pairs(body: bytes, ts: int | None = None, secret: str = SW_SECRET) -> Pairs:
    msg_id = orjson.loads(body)["id"]
    headers = signing.standard_headers(secret, body, msg_id, ts)
    return [("content-type", "application/json"), *headers.items()]


def replace(pairs: Pairs, name: str, value: str | bytes) -> Pairs:
    return [(k, v) for k, v in pairs if k != name] + [(name, value)]


@pytest.fixture
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The reference stack's ASGI app, started but subscribed nowhere; ``indirect`` params
    choose the scheme and defects."""
    scheme, defects = getattr(request, "param", (signing.TWINYARD, frozenset()))
    config = Config(
        vendor_urls=URLS,
        webhook_secret=SW_SECRET if scheme == STANDARD_WEBHOOKS else SECRET,
        db_path=tmp_path / "stack.db",
        webhook_signing=scheme,
        defects=defects,
    )
    running = Stack(config)
    await running.start()
    transport = httpx.ASGITransport(app=build_app(running))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://stack") as client:
            yield client
    finally:
        await running.stop()


async def post(client: httpx.AsyncClient, system: str, body: bytes, pairs: Pairs) -> httpx.Response:
    return await client.post(f"/webhooks/{system}", content=body, headers=pairs)


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


# -- timestamps -------------------------------------------------------------------------------
async def test_a_timestamp_ahead_is_taken_up_to_the_skew_and_refused_beyond(stack) -> None:
    now = int(time.time())
    for ahead in (0, 10, signing.FUTURE_SKEW_S - 2):
        body = envelope()
        assert (
            await post(stack, "erp", body, twinyard_pairs(body, now + ahead))
        ).status_code == 202
    for ahead in (signing.FUTURE_SKEW_S + 5, 120, 299):  # 299: inside the old symmetric window
        body = envelope()
        status, code, message = refusal(
            await post(stack, "erp", body, twinyard_pairs(body, now + ahead))
        )
        assert (status, code) == (401, "invalid_signature")
        assert f"more than {signing.FUTURE_SKEW_S} s ahead" in message
    body = envelope()
    status, _, message = refusal(await post(stack, "erp", body, twinyard_pairs(body, now - 301)))
    assert status == 401 and "replay window" in message


NON_CANONICAL = {
    "plus sign": lambda ts: f"+{ts}",
    "underscores": lambda ts: f"{ts:_}",
    "no-break space": lambda ts: b"\xa0" + str(ts).encode(),
    "trailing no-break space": lambda ts: str(ts).encode() + b"\xa0",
    "leading zeros": lambda ts: f"00{ts}",
    "one leading zero": lambda ts: f"0{ts}",
    "20 digits (now + 2^64)": lambda ts: str(ts + 2**64),
    "13 digits": lambda ts: f"{ts}000",
    "a fraction": lambda ts: f"{ts}.0",
    "an exponent": lambda ts: f"{ts / 1e9}e9",
    "a minus sign": lambda ts: f"-{ts}",
    "Arabic-Indic digits": lambda ts: "".join(chr(0x660 + int(d)) for d in str(ts)).encode(),
}


@pytest.mark.parametrize("form", sorted(NON_CANONICAL))
async def test_a_timestamp_not_in_canonical_form_is_refused(stack, form: str) -> None:
    """Signed over the right number, sent in a form int() or float() would forgive."""
    body, now = envelope(), int(time.time())
    pairs = replace(twinyard_pairs(body, now), TIMESTAMP_HEADER, NON_CANONICAL[form](now))
    status, code, message = refusal(await post(stack, "erp", body, pairs))
    assert (status, code) == (401, "invalid_signature")
    assert "not canonical" in message


def test_canonical_timestamps_are_plain_ascii_digits() -> None:
    assert signing.canonical_timestamp("0") == 0
    assert signing.canonical_timestamp("1796317186") == 1796317186
    assert signing.canonical_timestamp("9" * 12) == int("9" * 12)
    for raw in (
        "",
        "9" * 13,
        "01",
        "+1",
        "1_0",
        " 1",
        "1 ",
        "1\n",
        "\u0661",
        "\uff11",
        "1.0",
        "0x10",
    ):
        assert signing.canonical_timestamp(raw) is None, raw


async def test_a_signature_that_is_not_ascii_is_a_401_not_a_crash(stack) -> None:
    """``hmac.compare_digest`` raises TypeError on a str that is not ASCII: compared as bytes."""
    body = envelope()
    pairs = twinyard_pairs(body)
    sent = replace(pairs, SIGNATURE_HEADER, dict(pairs)[SIGNATURE_HEADER].encode() + b"\xa0")
    assert refusal(await post(stack, "erp", body, sent)) == (
        401,
        "invalid_signature",
        "signature does not match",
    )


# -- duplicate headers ------------------------------------------------------------------------
@pytest.mark.parametrize("header", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
@pytest.mark.parametrize("valid_first", [True, False])
async def test_a_signature_or_timestamp_header_sent_twice_is_refused(
    stack, header: str, valid_first: bool
) -> None:
    body = envelope()
    pairs = twinyard_pairs(body)
    good = dict(pairs)[header]
    other = dict(
        twinyard_pairs(
            body, secret="not-" + SECRET, ts=int(good) - 1 if header == TIMESTAMP_HEADER else None
        )
    )[header]
    rest = [(k, v) for k, v in pairs if k != header]
    twice = [(header, good), (header, other)] if valid_first else [(header, other), (header, good)]
    status, code, message = refusal(await post(stack, "erp", body, rest + twice))
    assert (status, code) == (401, "invalid_signature")
    assert message == f"{header} sent more than once"
    assert (await post(stack, "erp", body, pairs)).status_code == 202  # once: accepted


# -- the system an event was sent to ----------------------------------------------------------
async def test_an_event_sent_to_another_systems_endpoint_is_refused(stack) -> None:
    body = envelope("erp")  # what the ERP signed and sent to /webhooks/erp, replayed to wms
    response = await post(stack, "wms", body, twinyard_pairs(body))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "wrong_system",
        "message": "an event from 'erp' sent to the wms endpoint",
        "details": {"source": "erp", "endpoint": "wms"},
    }
    assert (await post(stack, "erp", body, twinyard_pairs(body))).status_code == 202
    nameless = orjson.dumps({k: v for k, v in orjson.loads(envelope()).items() if k != "source"})
    status, code, message = refusal(await post(stack, "erp", nameless, twinyard_pairs(nameless)))
    assert (status, code, message) == (
        400,
        "wrong_system",
        "an event naming no source system sent to the erp endpoint",
    )


@pytest.mark.parametrize("stack", [(signing.TWINYARD, frozenset({SKIP_SIGNATURE}))], indirect=True)
async def test_skip_signature_skips_the_header_rules_but_not_the_system_check(stack) -> None:
    body, now = envelope(), int(time.time())
    ahead = twinyard_pairs(body, now + 120)
    assert (await post(stack, "erp", body, ahead)).status_code == 202  # the defect: no check
    misdirected = envelope("tms")
    response = await post(stack, "erp", misdirected, twinyard_pairs(misdirected))
    assert refusal(response)[:2] == (400, "wrong_system")


# -- Standard Webhooks ------------------------------------------------------------------------
def test_the_signature_is_the_specs_test_vector() -> None:
    signed = signing.standard_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert signed == VECTOR_SIGNATURE
    assert (
        signing.verify_standard(
            VECTOR_SECRET, VECTOR_BODY, VECTOR_ID, str(VECTOR_TS), VECTOR_SIGNATURE, now=VECTOR_TS
        )
        is None
    )
    several = f"v1,{'A' * 43}= {VECTOR_SIGNATURE} v1a,{'B' * 86}=="
    assert (
        signing.verify_standard(
            VECTOR_SECRET, VECTOR_BODY, VECTOR_ID, str(VECTOR_TS), several, now=VECTOR_TS
        )
        is None
    )
    assert (
        signing.verify_standard(
            VECTOR_SECRET, VECTOR_BODY, "msg_other", str(VECTOR_TS), VECTOR_SIGNATURE, now=VECTOR_TS
        )
        == "no signature matches"
    )


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ("whsec_not base64!", r"whsec_ \+ base64"),
        ("whsec_c2hvcnQ=", "24 to 64 bytes, this one 5"),
    ],
)
def test_a_standard_webhooks_secret_is_whsec_and_base64_of_24_to_64_bytes(secret, why) -> None:
    with pytest.raises(ValueError, match=why):
        signing.check_secret(STANDARD_WEBHOOKS, secret)
    signing.check_secret(STANDARD_WEBHOOKS, VECTOR_SECRET)
    signing.check_secret(STANDARD_WEBHOOKS, VECTOR_SECRET.rstrip("="))  # unpadded is base64 too


@pytest.mark.parametrize("stack", [(STANDARD_WEBHOOKS, frozenset())], indirect=True)
async def test_the_reference_stack_verifies_standard_webhooks_strictly(stack) -> None:
    body, now = envelope(), int(time.time())
    pairs = standard_pairs(body, now)
    assert (await post(stack, "erp", body, pairs)).status_code == 202
    rotated = envelope()
    pairs = standard_pairs(rotated, now)
    good = dict(pairs)[SW_SIGNATURE_HEADER]
    old = dict(standard_pairs(rotated, now, signing.other_secret(STANDARD_WEBHOOKS, SW_SECRET)))
    several = f"{old[SW_SIGNATURE_HEADER]} {good}"  # one good one among several is enough
    response = await post(stack, "erp", rotated, replace(pairs, SW_SIGNATURE_HEADER, several))
    assert response.status_code == 202
    refused = {
        "signed the twinyard way": twinyard_pairs(body, now, SW_SECRET),
        "a timestamp with a plus sign": replace(
            standard_pairs(body, now), SW_TIMESTAMP_HEADER, f"+{now}"
        ),
        "120 s ahead": standard_pairs(body, now + 120),
        "no webhook-id": [(k, v) for k, v in standard_pairs(body) if k != SW_ID_HEADER],
        "another webhook-id": replace(standard_pairs(body), SW_ID_HEADER, "msg_other"),
        "webhook-signature twice": [*standard_pairs(body), (SW_SIGNATURE_HEADER, "v1,AAAA")],
        "webhook-id twice": [*standard_pairs(body), (SW_ID_HEADER, "msg_other")],
    }
    for what, headers in refused.items():
        response = await post(stack, "erp", body, headers)
        assert refusal(response)[:2] == (401, "invalid_signature"), what


def _dispatcher(clock: LockstepClock) -> WebhookDispatcher:
    return WebhookDispatcher("carrier", clock, Journal("carrier"), ["tracking.updated"])


async def _deliver(signing_scheme: str, secret: str, faults: list[dict[str, Any]] | None = None):
    """One event published to a subscription in ``signing_scheme``: what the receiver got."""
    clock = LockstepClock(DEFAULT_EPOCH)
    receiver = Receiver()
    async with serving(receiver.app) as url:
        dispatcher = _dispatcher(clock)
        if faults:
            plan = FaultPlan(seed=1)
            for fault in faults:
                plan.add(Fault.model_validate({"system": "carrier", **fault}))
            dispatcher.faults = plan
        dispatcher.subscribe(f"{url}/hook", ["*"], secret, signing=signing_scheme)
        await dispatcher.start()
        try:
            dispatcher.publish("tracking.updated", {"tracking_number": "PC1"}, ref="PC1")
            deadline = time.monotonic() + 5
            while not (dispatcher.quiet() and receiver.requests):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
        finally:
            await dispatcher.stop()
    return receiver.requests


async def test_the_simulators_sign_standard_webhooks_as_the_package_verifies() -> None:
    [(headers, body)] = await _deliver(STANDARD_WEBHOOKS, SW_SECRET)
    event = orjson.loads(body)
    assert headers[SW_ID_HEADER] == event["id"] == headers["x-twinyard-event-id"]
    assert abs(int(headers[SW_TIMESTAMP_HEADER]) - time.time()) < 5
    assert headers[SW_SIGNATURE_HEADER].startswith("v1,")
    assert SIGNATURE_HEADER not in headers and TIMESTAMP_HEADER not in headers
    # The package's own verifier, with the secret as the subscriber holds it.
    assert standardwebhooks.Webhook(SW_SECRET).verify(body, headers) == event
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.other_secret(STANDARD_WEBHOOKS, SW_SECRET)).verify(
            body, headers
        )


async def test_the_simulators_still_sign_the_twinyard_way_by_default() -> None:
    [(headers, body)] = await _deliver(signing.TWINYARD, SECRET)
    assert SW_SIGNATURE_HEADER not in headers
    assert (
        signing.verify(SECRET, body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]) is None
    )


async def test_a_forged_copy_fails_the_packages_verifier_and_the_genuine_one_passes() -> None:
    requests = await _deliver(STANDARD_WEBHOOKS, SW_SECRET, [{"kind": "forged"}])
    assert len(requests) == 2
    verdicts = []
    for headers, body in requests:
        try:
            standardwebhooks.Webhook(SW_SECRET).verify(body, headers)
            verdicts.append(("genuine", orjson.loads(body)["data"].get("tampered")))
        except standardwebhooks.webhooks.WebhookVerificationError:
            verdicts.append(("refused", orjson.loads(body)["data"].get("tampered")))
    assert sorted(verdicts, key=str) == [("genuine", None), ("refused", True)]


def test_post_webhooks_takes_the_signing_option() -> None:
    client = TestClient(simulators.build("erp", ManualClock()).app)
    base = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}
    created = client.post(
        "/webhooks", json={**base, "secret": SW_SECRET, "signing": STANDARD_WEBHOOKS}
    )
    assert created.status_code == 201
    assert created.json()["signing"] == STANDARD_WEBHOOKS and "secret" not in created.json()
    default = client.post("/webhooks", json={**base, "secret": SECRET}).json()
    assert default["signing"] == "twinyard"
    listed = {s["id"]: s["signing"] for s in client.get("/webhooks").json()["items"]}
    assert listed == {created.json()["id"]: STANDARD_WEBHOOKS, default["id"]: "twinyard"}
    plain = client.post("/webhooks", json={**base, "secret": SECRET, "signing": STANDARD_WEBHOOKS})
    assert plain.status_code == 422
    assert plain.json()["error"]["details"]["field"] == "secret"
    assert SECRET not in plain.text  # the refusal never echoes the secret
    unknown = client.post("/webhooks", json={**base, "secret": SECRET, "signing": "hmac-md5"})
    assert unknown.status_code == 422


async def test_standard_webhooks_round_trip_simulator_to_reference_stack(tmp_path: Path) -> None:
    """A real simulator over HTTP, the reference stack subscribed with standard-webhooks."""
    sims = [simulators.build(s, ManualClock()) for s in simulators.SYSTEMS]
    hosted = await hosting.serve(sims, [0] * len(sims))
    sock = hosting.bind("127.0.0.1", 0)
    config = Config(
        vendor_urls={h.sim.system: h.url for h in hosted},
        webhook_secret=SW_SECRET,
        port=sock.getsockname()[1],
        db_path=tmp_path / "stack.db",
        webhook_signing=STANDARD_WEBHOOKS,
    )
    stack = Stack(config)
    await stack.start()
    server = None
    try:
        await stack.subscribe()
        server = await hosting.start_server(build_app(stack), sock)
        carrier = next(h.sim for h in hosted if h.sim.system == "carrier")
        [sub] = carrier.webhooks.subscriptions.values()
        assert sub.signing == STANDARD_WEBHOOKS
        carrier.webhooks.publish("tracking.updated", {"tracking_number": "PC404", "status": "x"})
        deadline = time.monotonic() + 5
        while not carrier.webhooks.deliveries or carrier.webhooks.deliveries[0].status == "pending":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        [delivery] = carrier.webhooks.deliveries
        assert (delivery.status, delivery.last_status) == ("delivered", 202)
    finally:
        if server is not None:
            server.should_exit = True
            await server.shutdown(sockets=[sock])
        sock.close()
        await stack.stop()
        await hosting.shutdown(hosted)


# -- secrets: environment or file, never argv -------------------------------------------------
def _env(**more: str) -> dict[str, str]:
    return {f"TWINYARD_{s.upper()}_URL": url for s, url in URLS.items()} | more


def test_the_reference_stack_reads_its_secret_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    config = Config.from_env(_env(TWINYARD_WEBHOOK_SECRET_FILE=str(path)))
    assert config.webhook_secret == SECRET
    assert SECRET not in repr(config)
    both = _env(TWINYARD_WEBHOOK_SECRET="from-the-harness", TWINYARD_WEBHOOK_SECRET_FILE=str(path))
    assert Config.from_env(both).webhook_secret == "from-the-harness"  # what `run` hands over
    path.write_text(SW_SECRET)
    standard = _env(
        TWINYARD_WEBHOOK_SECRET_FILE=str(path), REFSTACK_WEBHOOK_SIGNING=STANDARD_WEBHOOKS
    )
    assert Config.from_env(standard).webhook_signing == STANDARD_WEBHOOKS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "TWINYARD_WEBHOOK_SECRET_FILE: cannot read"),
        (b"\n", "is empty"),
        (b"one\ntwo\n", "has more than one line"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"x" * 5000, "is over 4096 bytes"),
    ],
)
def test_an_unusable_secret_file_is_one_config_error(tmp_path: Path, content, message) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as raised:
        Config.from_env(_env(TWINYARD_WEBHOOK_SECRET_FILE=str(path)))
    assert "\n" not in str(raised.value)


def test_the_reference_stack_needs_a_secret_and_a_whsec_one_for_standard_webhooks() -> None:
    with pytest.raises(
        ConfigError, match=r"missing environment variable.*: TWINYARD_WEBHOOK_SECRET$"
    ):
        Config.from_env(_env())
    with pytest.raises(ConfigError, match="TWINYARD_WEBHOOK_SECRET: a Standard Webhooks secret"):
        Config.from_env(
            _env(TWINYARD_WEBHOOK_SECRET=SECRET, REFSTACK_WEBHOOK_SIGNING=STANDARD_WEBHOOKS)
        )
    with pytest.raises(ConfigError, match="REFSTACK_WEBHOOK_SIGNING: signing is one of"):
        Config.from_env(_env(TWINYARD_WEBHOOK_SECRET=SECRET, REFSTACK_WEBHOOK_SIGNING="md5"))


def test_the_reference_stack_takes_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert refstack_main.main(["--webhook-secret", "hunter2"]) == 2
    err = capsys.readouterr().err
    assert "takes no arguments" in err and "TWINYARD_WEBHOOK_SECRET_FILE" in err
    assert "hunter2" not in err  # an argument may be the secret: never echoed


@pytest.fixture
def fuzz_secrets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """``contracts fuzz`` stopped at its engine: the secret and scheme it would sign with."""
    seen: list[tuple[str, str]] = []

    def fuzz(url: str, secret: str, *args: Any, signing: str = "twinyard", **kwargs: Any):
        from harness.contracts.fuzz import FuzzError

        seen.append((secret, signing))
        raise FuzzError("stopped here by the test")

    monkeypatch.setattr("harness.contracts.fuzz.run", fuzz)
    monkeypatch.setenv("TWINYARD_NO_CONFIG", "1")
    for var in ("TWINYARD_WEBHOOK_SECRET", "TWINYARD_WEBHOOK_SECRET_FILE"):
        monkeypatch.delenv(var, raising=False)
    return seen


def test_contracts_fuzz_reads_the_secret_from_a_file(
    fuzz_secrets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    path = tmp_path / "secret"
    path.write_text("from-the-file\n")
    fuzz = ["contracts", "fuzz", "--url", "http://127.0.0.1:9"]
    assert main([*fuzz, "--secret-file", str(path)]) == 2
    monkeypatch.setenv("TWINYARD_WEBHOOK_SECRET", "from-the-variable")
    assert main([*fuzz, "--secret-file", str(path)]) == 2  # the command line ranks higher
    assert main(fuzz) == 2
    monkeypatch.delenv("TWINYARD_WEBHOOK_SECRET")
    monkeypatch.setenv("TWINYARD_WEBHOOK_SECRET_FILE", str(path))
    assert main(fuzz) == 2
    assert main([*fuzz, "--secret", "typed"]) == 2  # the command line ranks higher
    assert [secret for secret, _ in fuzz_secrets] == [
        "from-the-file",
        "from-the-file",
        "from-the-variable",
        "from-the-file",
        "typed",
    ]
    capsys.readouterr()
    assert main([*fuzz, "--secret", "typed", "--secret-file", str(path)]) == 2
    assert capsys.readouterr().err == (
        "twinyard: error: --secret and --secret-file both give the webhook secret: give one\n"
    )
    assert main([*fuzz, "--secret-file", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("twinyard: error: --secret-file: cannot read ") and err.count("\n") == 1


def test_contracts_fuzz_signing_option(fuzz_secrets, tmp_path: Path, capsys) -> None:
    path = tmp_path / "secret"
    path.write_text(SW_SECRET)
    fuzz = ["contracts", "fuzz", "--url", "http://127.0.0.1:9", "--secret-file", str(path)]
    assert main([*fuzz, "--signing", "standard-webhooks"]) == 2
    assert fuzz_secrets == [(SW_SECRET, STANDARD_WEBHOOKS)]
    assert main([*fuzz, "--signing", "hmac-md5"]) == 2
    assert "hmac-md5" in capsys.readouterr().err


def test_contracts_fuzz_refuses_a_plain_secret_for_standard_webhooks(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("TWINYARD_NO_CONFIG", "1")
    monkeypatch.setenv("TWINYARD_WEBHOOK_SECRET", SECRET)
    args = ["contracts", "fuzz", "--url", "http://127.0.0.1:9", "--signing", "standard-webhooks"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == (
        "twinyard: error: --signing standard-webhooks: a Standard Webhooks secret starts with "
        "whsec_\n"
    )


def test_run_reads_the_webhook_secret_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.runner import ConfigError as RunConfigError

    seen: list[str | None] = []

    async def run(config):
        seen.append(config.webhook_secret)
        raise RunConfigError("stopped here by the test")

    monkeypatch.setattr("harness.cli.run", run)
    monkeypatch.setenv("TWINYARD_NO_CONFIG", "1")
    monkeypatch.delenv("TWINYARD_WEBHOOK_SECRET", raising=False)
    path = tmp_path / "secret"
    path.write_text("run-secret\r\n")
    args = ["run", "--quiet", "--report-dir", str(tmp_path / "report")]
    assert main([*args, "--webhook-secret-file", str(path)]) == 2
    monkeypatch.setenv("TWINYARD_WEBHOOK_SECRET_FILE", str(path))
    assert main(args) == 2
    assert seen == ["run-secret", "run-secret"]
