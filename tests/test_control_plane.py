"""The control plane is closed: token, Host and Origin checks, JSON only, and webhooks that
call only this machine or hosts the user allowed. Every request here is real HTTP to a
simulator served by the hosting code on an ephemeral loopback port (``simulators.common.guard``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvloop

import simulators
from harness import hosting
from harness.contracts import verify
from harness.runner import RunConfig, build_simulators, run, run_guard
from harness.scenario import Scenario, parse
from simulators.common.clock import WallClock
from simulators.common.errors import SimError
from simulators.common.faults import Fault
from simulators.common.guard import Guard
from simulators.common.simulator import Simulator
from tests.support import LoopThread, four_free_ports
from tests.test_sims_command import _sims, _stop

TOKEN = "t0ken-for-this-test"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
OUTAGE = {"kind": "outage", "for": 300}
PACTS = Path(__file__).resolve().parent.parent / "contracts" / "pacts"


@dataclass
class Served:
    sim: Simulator
    url: str
    port: int


@pytest.fixture
def carrier() -> Iterator[Served]:
    """The carrier on a loopback port, closed as ``twinyard sims`` closes it, with a Host name
    and webhook hosts allowed."""
    guard = Guard(
        token=TOKEN,
        hosts=frozenset({"sims"}),
        webhook_hosts=frozenset({"hooks.example.com", "10.0.0.0/8"}),
    )
    sim = simulators.build("carrier", WallClock(), guard=guard)
    loop = LoopThread()
    [item] = loop.run(hosting.serve([sim], [0]))
    try:
        yield Served(sim, item.url, item.port)
    finally:
        loop.run(hosting.shutdown([item]))
        loop.close()


def error(response: httpx.Response) -> dict:
    return response.json()["error"]


# -- browsers: Origin -------------------------------------------------------------------------
def test_a_browser_simple_request_from_another_origin_is_refused_and_adds_no_fault(carrier):
    """The attack measured in issue 14: any page can send a CORS "simple request" (text/plain,
    no preflight); it carries the page's Origin. Refused even with the token."""
    browser = {
        "Origin": "http://evil.example",
        "Content-Type": "text/plain;charset=UTF-8",
        "Sec-Fetch-Mode": "no-cors",
        "Sec-Fetch-Site": "cross-site",
        "User-Agent": "Mozilla/5.0",
    }
    for headers in (browser, {**browser, **BEARER}):
        r = httpx.post(f"{carrier.url}/_sim/faults", content=json.dumps(OUTAGE), headers=headers)
        assert r.status_code == 403
        assert error(r)["code"] == "forbidden_origin"
        assert error(r)["details"] == {"origin": "http://evil.example"}
    reset = httpx.post(f"{carrier.url}/_sim/reset", headers={"Origin": "null"})  # sandboxed
    assert reset.status_code == 403
    preflight = httpx.options(
        f"{carrier.url}/_sim/faults",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert carrier.sim.faults.faults == []
    assert httpx.get(f"{carrier.url}/tracking/X").status_code == 404  # no outage: not 503


def test_a_cross_origin_request_to_a_business_route_is_refused_and_journalled(carrier):
    body = {"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": "s"}
    r = httpx.post(
        f"{carrier.url}/webhooks", json=body, headers={"Origin": "http://localhost:3000"}
    )
    assert r.status_code == 403 and error(r)["code"] == "forbidden_origin"
    assert carrier.sim.webhooks.subscriptions == {}
    [entry] = carrier.sim.journal.entries
    assert (entry.path, entry.status, entry.error) == ("/webhooks", 403, "forbidden_origin")


def test_the_simulators_own_origin_is_accepted(carrier):
    own = {"Origin": f"http://127.0.0.1:{carrier.port}", **BEARER}
    assert httpx.post(f"{carrier.url}/_sim/faults", json=OUTAGE, headers=own).status_code == 201


# -- DNS rebinding: Host ----------------------------------------------------------------------
def test_a_foreign_host_is_refused_on_every_route(carrier):
    """A rebinding page (evil.example resolved to 127.0.0.1) sends its own name as Host; a
    same-origin request from it then carries a matching Origin, and is refused all the same."""
    port = carrier.port
    rebound = {"Host": f"evil.example:{port}"}
    for method, path in [("GET", "/_sim/state"), ("GET", "/tracking/X"), ("GET", "/webhooks")]:
        r = httpx.request(method, f"{carrier.url}{path}", headers=rebound)
        assert r.status_code == 403, path
        assert error(r)["code"] == "forbidden_host"
        assert error(r)["details"] == {"host": f"evil.example:{port}"}
    same_origin = {**rebound, "Origin": f"http://evil.example:{port}", **BEARER}
    r = httpx.post(f"{carrier.url}/_sim/faults", json=OUTAGE, headers=same_origin)
    assert r.status_code == 403 and error(r)["code"] == "forbidden_host"
    assert carrier.sim.faults.faults == []


def test_this_machines_names_and_allowed_hosts_are_answered(carrier):
    port = carrier.port
    hostname = socket.gethostname()
    for host in ["127.0.0.1", "localhost", "app.localhost", "10.1.2.3", hostname, "sims", "[::1]"]:
        r = httpx.get(f"{carrier.url}/_sim/health", headers={"Host": f"{host}:{port}"})
        assert r.status_code == 200, host


# -- the token --------------------------------------------------------------------------------
WRITES = [
    ("POST", "/_sim/faults", OUTAGE),
    ("DELETE", "/_sim/faults", None),
    ("POST", "/_sim/reset", None),
    ("POST", "/_sim/provider-states", {"state": "webhook subscription WH-0042 exists"}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_control_plane_writes_need_the_token(carrier, method, path, body):
    hook = {"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": "s"}
    assert httpx.post(f"{carrier.url}/webhooks", json=hook).status_code == 201
    carrier.sim.faults.add(Fault.model_validate({"system": "carrier", "kind": "latency", "ms": 1}))
    before = (len(carrier.sim.faults.faults), sorted(carrier.sim.webhooks.subscriptions))

    missing = httpx.request(method, f"{carrier.url}{path}", json=body)
    assert missing.status_code == 401
    assert error(missing)["code"] == "token_required"
    assert missing.headers["www-authenticate"] == 'Bearer realm="twinyard"'
    for wrong in ({"Authorization": "Bearer nope"}, {"X-Twinyard-Token": TOKEN + "x"}):
        r = httpx.request(method, f"{carrier.url}{path}", json=body, headers=wrong)
        assert r.status_code == 401 and error(r)["code"] == "invalid_token"
    assert (len(carrier.sim.faults.faults), sorted(carrier.sim.webhooks.subscriptions)) == before

    accepted = httpx.request(method, f"{carrier.url}{path}", json=body, headers=BEARER)
    assert accepted.status_code in (200, 201, 204), accepted.text
    assert (len(carrier.sim.faults.faults), sorted(carrier.sim.webhooks.subscriptions)) != before


def test_the_token_header_of_our_own_works_too(carrier):
    r = httpx.post(f"{carrier.url}/_sim/faults", json=OUTAGE, headers={"X-Twinyard-Token": TOKEN})
    assert r.status_code == 201


def test_control_plane_reads_and_business_routes_need_no_token(carrier):
    for path in ["/_sim/health", "/_sim/clock", "/_sim/state", "/_sim/journal", "/_sim/faults"]:
        assert httpx.get(f"{carrier.url}{path}").status_code == 200, path
    assert httpx.get(f"{carrier.url}/_sim/provider-states").status_code == 200
    assert httpx.get(f"{carrier.url}/tracking/X").status_code == 404  # the vendor's own answer


# -- JSON only --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_a_control_plane_body_that_is_not_declared_json_is_refused_415(carrier, content_type):
    """The content types a browser may send without a preflight, curl's -d default, and a
    body with no type at all."""
    headers = dict(BEARER)
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = httpx.post(f"{carrier.url}/_sim/faults", content=json.dumps(OUTAGE), headers=headers)
    assert r.status_code == 415
    assert error(r)["code"] == "unsupported_media_type"
    assert carrier.sim.faults.faults == []


def test_json_with_a_charset_and_a_write_without_a_body_are_accepted(carrier):
    typed = {**BEARER, "Content-Type": "application/json; charset=utf-8"}
    r = httpx.post(f"{carrier.url}/_sim/faults", content=json.dumps(OUTAGE), headers=typed)
    assert r.status_code == 201
    assert httpx.post(f"{carrier.url}/_sim/reset", headers=BEARER).status_code == 204


# -- webhook subscriptions --------------------------------------------------------------------
def subscribe(carrier: Served, url: str) -> httpx.Response:
    body = {"url": url, "events": ["tracking.updated"], "secret": "s"}
    return httpx.post(f"{carrier.url}/webhooks", json=body)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::ffff:169.254.169.254]/latest/",  # the same, IPv6-mapped
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://2852039166/",  # 169.254.169.254 as one number: a name, not allowed
        "http://0.0.0.0:8080/hook",
        "http://hooks.attacker.example/collect",  # a public host nobody allowed
        "http://192.168.1.20:8080/hook",
    ],
)
def test_a_subscription_beyond_this_machine_is_refused_naming_the_field(carrier, url):
    r = subscribe(carrier, url)
    assert r.status_code == 422
    assert error(r)["code"] == "validation_failed"
    assert error(r)["details"]["field"] == "url"
    assert carrier.sim.webhooks.subscriptions == {}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/webhooks/carrier",
        "http://127.0.0.2:8000/hook",
        "http://localhost:8000/hook",
        "http://[::1]:8000/hook",
        "https://hooks.example.com/twinyard",  # allowed by name
        "http://10.20.30.40:8000/hook",  # allowed by network
    ],
)
def test_a_subscription_to_this_machine_or_an_allowed_host_is_accepted(carrier, url):
    assert subscribe(carrier, url).status_code == 201


def test_link_local_is_refused_even_when_allowed():
    sim = simulators.build(
        "erp", WallClock(), guard=Guard(webhook_hosts=frozenset({"169.254.169.254"}))
    )
    with pytest.raises(SimError) as refused:
        sim.webhooks.subscribe("http://169.254.169.254/", ["*"], "s")
    assert refused.value.status == 422 and refused.value.details["field"] == "url"


# -- serving beyond loopback ------------------------------------------------------------------
async def test_hosting_refuses_to_listen_beyond_loopback_without_a_token():
    sim = simulators.build("tms", WallClock())  # a test's simulator: no token
    with pytest.raises(hosting.Unprotected, match="needs a control-plane token"):
        await hosting.serve([sim], [0], "0.0.0.0")


# -- twinyard sims ----------------------------------------------------------------------------
def test_twinyard_sims_prints_a_token_that_opens_its_control_plane():
    base = four_free_ports()
    proc = _sims("--env", "--port-base", str(base))
    try:
        lines = [proc.stdout.readline().strip() for _ in range(5)]
        name, _, token = lines[4].partition("=")
        assert name == "TWINYARD_CONTROL_TOKEN" and len(token) >= 32
        assert "need the token" in proc.stderr.readline()
        carrier = f"http://127.0.0.1:{base + 3}"
        assert httpx.post(f"{carrier}/_sim/faults", json=OUTAGE).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{carrier}/_sim/faults", json=OUTAGE, headers=auth).status_code == 201
        assert httpx.get(f"{carrier}/tracking/X").status_code == 503
    finally:
        _stop(proc)


def test_twinyard_sims_takes_its_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("TWINYARD_CONTROL_TOKEN", "chosen-token-1")
    base = four_free_ports()
    proc = _sims("--port-base", str(base))  # the table: "token    <token>" after the URLs
    try:
        lines = [proc.stdout.readline().split() for _ in range(5)]
        assert lines[4] == ["token", "chosen-token-1"]
        auth = {"X-Twinyard-Token": "chosen-token-1"}
        reset = httpx.post(f"http://127.0.0.1:{base}/_sim/reset", headers=auth)
        assert reset.status_code == 204
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--host", "0.0.0.0", "--no-token"],
            "--host 0.0.0.0 needs a control-plane token",
        ),
        (["--no-token", "--control-token", "abc"], "--no-token and a control token"),
        (["--control-token", ""], "--control-token must be visible ASCII"),
        (["--control-token", "two words"], "--control-token must be visible ASCII"),
    ],
    ids=["beyond-loopback-without-token", "both", "empty", "spaces"],
)
def test_twinyard_sims_refuses_an_open_control_plane_beyond_loopback(args, message):
    done = subprocess.run(
        [sys.executable, "-m", "harness", "sims", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("twinyard: error: ") and message in line
    assert done.stdout == ""


def test_twinyard_sims_without_a_token_on_loopback_is_open_and_says_so():
    base = four_free_ports()
    proc = _sims("--env", "--no-token", "--port-base", str(base))
    try:
        urls = [proc.stdout.readline().strip() for _ in range(4)]
        assert urls[3] == f"TWINYARD_CARRIER_URL=http://127.0.0.1:{base + 3}"
        assert "the control plane is open" in proc.stderr.readline()
        r = httpx.post(f"http://127.0.0.1:{base + 3}/_sim/faults", json=OUTAGE)
        assert r.status_code == 201
        foreign = httpx.post(
            f"http://127.0.0.1:{base + 3}/_sim/reset", headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403  # Host and Origin are checked all the same
    finally:
        _stop(proc)


# -- the pytest fixture -----------------------------------------------------------------------
def test_the_twinyard_sims_fixture_is_closed_and_hands_out_its_token(twinyard_sims):
    wms = twinyard_sims["wms"]
    assert set(twinyard_sims) == {"erp", "wms", "tms", "carrier"}
    assert httpx.post(f"{wms}/_sim/reset").status_code == 401
    assert httpx.post(f"{wms}/_sim/reset", headers=twinyard_sims.headers).status_code == 204
    assert twinyard_sims.headers == {"Authorization": f"Bearer {twinyard_sims.token}"}


# -- twinyard run -----------------------------------------------------------------------------
STACK = textwrap.dedent(
    """
    import json, os, urllib.error, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def post(path, headers):
        url = os.environ["TWINYARD_CARRIER_URL"] + path
        body = json.dumps({"kind": "latency", "ms": 0, "route": "/nowhere"}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json", **headers})
        try:
            return urllib.request.urlopen(request).status
        except urllib.error.HTTPError as exc:
            return exc.code

    token = os.environ["TWINYARD_CONTROL_TOKEN"]
    seen = {
        "token": token,
        "without": post("/_sim/faults", {}),
        "with": post("/_sim/faults", {"Authorization": "Bearer " + token}),
    }
    with open(os.environ["PROBE_OUT"], "w") as out:
        json.dump(seen, out)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/_stack/idle":
                self.answer(200, {"idle": True})
            else:
                self.answer(200, {"status": "ok"})

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.answer(200, {})

    port = int(os.environ["TWINYARD_STACK_PORT"])
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def test_a_launched_stack_gets_the_runs_token_and_it_opens_the_control_plane(tmp_path):
    stack = tmp_path / "stack.py"
    stack.write_text(STACK)
    probe = tmp_path / "probe.json"
    config = RunConfig(
        scenario=parse("name: token_day\nseed: 1\ndemand: {orders: 1}\n"),
        stack_cmd=[sys.executable, str(stack)],
        report_dir=tmp_path / "report",
        stack_env={"PROBE_OUT": str(probe)},
    )
    outcome = uvloop.run(run(config))
    seen = json.loads(probe.read_text())
    assert len(seen["token"]) >= 32
    assert (seen["without"], seen["with"]) == (401, 201)
    assert outcome.steps > 0


def test_each_run_has_its_own_token_and_a_stack_url_host_may_be_called_back():
    day = Scenario()
    one = run_guard(RunConfig(scenario=day))
    assert one.token and one.token != run_guard(RunConfig(scenario=day)).token
    assert run_guard(RunConfig(scenario=day, control_token="mine")).token == "mine"
    remote = run_guard(RunConfig(scenario=day, stack_url="http://Stack.Internal:8080/"))
    assert remote.webhook_hosts == {"stack.internal"}
    sims = build_simulators(day, WallClock(), remote)
    sims["erp"].webhooks.subscribe("http://stack.internal:8080/webhooks/erp", ["*"], "s")
    with pytest.raises(SimError):
        sims["wms"].webhooks.subscribe("http://other.internal:8080/webhooks/wms", ["*"], "s")


def test_the_webhook_allow_list_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TWINYARD_WEBHOOK_ALLOW", "stack, Hooks.Example.com 10.0.0.0/8")
    guard = run_guard(RunConfig(scenario=Scenario()))
    assert guard.webhook_hosts == {"stack", "hooks.example.com", "10.0.0.0/8"}


# -- contracts verify -------------------------------------------------------------------------
def test_contracts_verify_sets_provider_states_through_a_closed_control_plane():
    guards: list[Guard] = []
    result = verify.verify_simulators(PACTS, "tms", prepare=lambda sim: guards.append(sim.guard))
    assert [g.token is not None for g in guards] == [True]
    assert result["tms"].ok and result["tms"].count("passed") == len(result["tms"].outcomes)
