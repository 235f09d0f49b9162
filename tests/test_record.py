"""`twinyard record`: a reverse proxy in front of real simulators, what it passes on, and the
HAR and journal it writes; the command's misuse and its stop; a day played through it."""

from __future__ import annotations

import asyncio
import gzip
import json
import select
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness import hosting
from harness import scenario as scenarios
from harness.capsules import record
from harness.capsules.record import Recording, Upstream
from harness.cli import main
from harness.runner import RunConfig, RunOutcome, build_simulators, run
from harness.sims import make_guard
from simulators.common.clock import WallClock
from simulators.common.journal import JournalEntry
from tests.support import four_free_ports, serving, until

ROOT = Path(__file__).resolve().parent.parent
ORDER = {
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "ship_to": {
        "name": "Ada Lovelace",
        "street": "12 Analytical Way",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    "service_level": "express",
    "lines": [{"sku": "SKU-00001", "qty": 2}],
}
SYSTEMS = ("erp", "wms", "tms", "carrier")
JOURNAL_KEYS = set(JournalEntry(0, "", "", "", "", 0, None, "", 0.0, 0.0, 0.0).to_dict())


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, hosting.Hosted]]:
    """The four simulators, served on free loopback ports on this test's loop."""
    built = build_simulators(scenarios.Scenario(), WallClock(), make_guard("127.0.0.1"))
    hosted = await hosting.serve(list(built.values()), [0] * len(built))
    try:
        yield dict(zip(built, hosted, strict=True))
    finally:
        await hosting.shutdown(hosted)


_HELD: list[socket.socket] = []  # bound, never listening: refused, and no one else's port


def refused_url() -> str:
    """A loopback URL that refuses connections: its port stays bound (not listening) by this
    process, so another test running beside it cannot take the port and answer (or hang)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def har_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def journal_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_har(har: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields HAR 1.2 requires (and the importer reads), on every entry; the entries."""
    log = har["log"]
    assert log["version"] == "1.2"
    assert log["creator"]["name"] and log["creator"]["version"]
    for entry in log["entries"]:
        assert set(entry) >= {"startedDateTime", "time", "request", "response", "cache"}
        assert entry["startedDateTime"].endswith("+00:00")
        assert set(entry["timings"]) >= {"send", "wait", "receive"}
        request, response = entry["request"], entry["response"]
        for key in ("method", "url", "httpVersion", "cookies", "headers", "queryString"):
            assert key in request, key
        assert request["headersSize"] == -1 and isinstance(request["bodySize"], int)
        for key in ("status", "statusText", "httpVersion", "cookies", "headers", "redirectURL"):
            assert key in response, key
        assert set(response["content"]) >= {"size", "mimeType", "text"}
        assert isinstance(entry["_twinyard"]["system"], str)
        if "postData" in request:
            assert set(request["postData"]) >= {"mimeType", "text"}
    return log["entries"]


def header(entry_part: dict[str, Any], name: str) -> str | None:
    found = [h["value"] for h in entry_part["headers"] if h["name"].lower() == name]
    return found[0] if found else None


# -- the proxy in front of real simulators -------------------------------------------------


async def test_a_create_a_read_a_vendor_error_and_a_dead_vendor_are_passed_on_and_recorded(
    sims, tmp_path
):
    erp, erp_base = sims["erp"].sim, sims["erp"].url
    dead = refused_url()
    upstreams = [
        Upstream("erp", erp_base),
        Upstream("wms", sims["wms"].url),
        Upstream("dead", dead),
    ]
    har = tmp_path / "capture.har"
    async with Recording(upstreams, har) as rec, httpx.AsyncClient() as client:
        erp_url, wms_url, dead_url = (listener.url for listener in rec.listeners)
        secrets = {
            "Authorization": "Bearer s3cr3t-token",
            "X-Api-Key": "key-123",
            "Cookie": "session=abc; theme=dark",
            "X-Correlation-Id": "corr-1",
        }
        created = await client.post(f"{erp_url}/orders", json=ORDER, headers=secrets)
        assert created.status_code == 201, created.text
        order = created.json()
        read = await client.get(f"{erp_url}/orders/{order['id']}", params={"expand": "lines"})
        assert read.status_code == 200 and read.json() == order
        missing = await client.get(f"{erp_url}/orders/SO-999999")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": "whsec-xyz"}
        subscribed = await client.post(f"{wms_url}/webhooks", json=hook)
        assert subscribed.status_code == 201, subscribed.text
        down = await client.get(f"{dead_url}/orders")
        assert down.status_code == 502
        assert down.json()["error"]["code"] == "upstream_unreachable"
        assert rec.count == 5

    # The vendor saw the stack's request: its body, its correlation id, the order it made.
    (seen,) = [e for e in erp.journal.entries if e.method == "POST"]
    assert seen.correlation_id == "corr-1" and seen.ref == order["id"]
    assert [o["id"] for o in erp.model.snapshot()["orders"]] == [order["id"]]

    entries = check_har(har_of(har))
    systems = [e["_twinyard"]["system"] for e in entries]
    assert systems == ["erp", "erp", "erp", "wms", "dead"]
    assert [e["_twinyard"]["seq"] for e in entries] == [1, 2, 3, 4, 5]
    post, get, not_found, subscribe, refused = entries

    assert post["request"]["method"] == "POST"
    assert post["request"]["url"] == f"{erp_base}/orders"
    assert json.loads(post["request"]["postData"]["text"]) == ORDER
    assert post["request"]["postData"]["mimeType"] == "application/json"
    assert post["response"]["status"] == 201
    assert json.loads(post["response"]["content"]["text"]) == order
    assert post["response"]["content"]["size"] == len(created.content)
    for name in ("authorization", "x-api-key", "cookie"):
        assert header(post["request"], name) == "[redacted]", name
    assert header(post["request"], "x-correlation-id") == "corr-1"
    assert header(post["request"], "host") == erp_base.removeprefix("http://")
    assert {c["name"]: c["value"] for c in post["request"]["cookies"]} == {
        "session": "[redacted]",
        "theme": "[redacted]",
    }
    assert "s3cr3t" not in har.read_text() and "key-123" not in har.read_text()

    assert get["request"]["queryString"] == [{"name": "expand", "value": "lines"}]
    assert get["request"]["url"].endswith(f"/orders/{order['id']}?expand=lines")
    assert "postData" not in get["request"]
    assert not_found["response"]["status"] == 404
    assert json.loads(not_found["response"]["content"]["text"])["error"]["code"] == "not_found"
    assert json.loads(subscribe["request"]["postData"]["text"])["secret"] == "[redacted]"
    assert "whsec-xyz" not in har.read_text()

    assert refused["response"]["status"] == 0
    assert "ConnectError" in refused["response"]["_error"]
    assert refused["_twinyard"]["proxy_answer"] == 502
    assert refused["request"]["url"] == f"{dead}/orders"

    lines = journal_of(record.default_journal(har))
    assert [set(line) for line in lines] == [JOURNAL_KEYS] * 5
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["system"] for line in lines] == systems
    assert {line["direction"] for line in lines} == {"in"}
    assert [line["status"] for line in lines] == [201, 200, 404, 201, 0]
    assert [line["ref"] for line in lines[:3]] == [order["id"], order["id"], "SO-999999"]
    assert lines[0]["correlation_id"] == "corr-1"
    assert lines[0]["body_digest"] == seen.body_digest  # the same bytes reached the vendor
    assert lines[1]["query"] == "expand=lines" and lines[1]["path"] == f"/orders/{order['id']}"
    assert lines[2]["error"] == "not_found"
    assert "ConnectError" in lines[4]["error"]
    times = [line["virtual_time"] for line in lines]
    assert times == sorted(times) and 0 <= times[0] < 60


async def test_keep_secrets_writes_them_as_sent(sims, tmp_path):
    har = tmp_path / "kept.har"
    async with Recording([Upstream("erp", sims["erp"].url)], har, keep_secrets=True) as rec:
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{rec.listeners[0].url}/inventory/SKU-00001",
                headers={"Authorization": "Bearer kept", "X-Twinyard-Signature": "v1=abc"},
            )
        assert answer.json() == {"sku": "SKU-00001", "on_hand": 500}
    (entry,) = check_har(har_of(har))
    assert header(entry["request"], "authorization") == "Bearer kept"
    assert header(entry["request"], "x-twinyard-signature") == "v1=abc"
    (line,) = journal_of(record.default_journal(har))
    assert line["ref"] is None and line["path"] == "/inventory/SKU-00001"


async def test_a_body_over_the_limit_is_refused_413_recorded_and_never_reaches_the_vendor(
    sims, tmp_path
):
    erp = sims["erp"].sim
    har = tmp_path / "big.har"
    async with Recording([Upstream("erp", sims["erp"].url)], har, max_body=1024) as rec:
        async with httpx.AsyncClient() as client:
            big = {**ORDER, "note": "x" * 2048}
            answer = await client.post(f"{rec.listeners[0].url}/orders", json=big)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "request_too_large"
    assert len(erp.journal) == 0
    (entry,) = check_har(har_of(har))
    assert entry["response"]["status"] == 413
    assert entry["_twinyard"] == {"system": "erp", "seq": 1, "proxy_answer": 413}
    (line,) = journal_of(record.default_journal(har))
    assert line["status"] == 413 and line["error"] == "request_too_large"


async def test_the_har_on_disk_follows_the_traffic_within_a_second(sims, tmp_path):
    har = tmp_path / "live.har"
    journal = tmp_path / "live.jsonl"
    async with Recording([Upstream("erp", sims["erp"].url)], har, journal) as rec:
        assert check_har(har_of(har)) == []  # written at start: a valid file from the first
        async with httpx.AsyncClient() as client:
            await client.get(f"{rec.listeners[0].url}/inventory")
            # The journal line is on disk when the answer is; the HAR follows within FLUSH_S.
            assert len(journal_of(journal)) == 1
            await until(lambda: len(har_of(har)["log"]["entries"]) == 1, timeout=5)
            await client.get(f"{rec.listeners[0].url}/inventory")
            await until(lambda: len(har_of(har)["log"]["entries"]) == 2, timeout=5)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- what is passed on, seen from an upstream that echoes ---------------------------------


async def _echo(request: Request) -> Response:
    """Says what it received; answers gzip-compressed, with a Location on its own host."""
    seen = {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": dict(request.headers),
        "body": (await request.body()).decode(),
    }
    body = gzip.compress(orjson.dumps(seen))
    headers = {
        "content-encoding": "gzip",
        "location": f"{request.base_url}webhooks/wms/EV-1",
        "x-hop": "dropped",
        "connection": "x-hop",
        "set-cookie": "vendor=1; Path=/",
    }
    return Response(body, 201, headers=headers, media_type="application/json")


async def test_hop_by_hop_headers_stay_behind_host_is_rewritten_and_bodies_pass_as_sent(tmp_path):
    app = Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST", "PUT"])])
    async with serving(app) as upstream:
        har = tmp_path / "echo.har"
        async with Recording([Upstream("stack", upstream + "/webhooks")], har) as rec:
            proxy = rec.listeners[0].url
            event = {"id": "EV-1", "type": "order.picked", "source": "wms", "data": {}}
            event["data"] = {"fulfilment_order_id": "FO-1", "order_ref": "SO-7"}
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    f"{proxy}/wms?a=1&a=2",
                    content=orjson.dumps(event),
                    headers={
                        "content-type": "application/json",
                        "connection": "keep-alive, x-private",
                        "x-private": "hop",
                        "webhook-signature": "v1,sig",
                        "user-agent": "the-stack/1.0",
                    },
                )
        assert answer.status_code == 201
        assert answer.headers["content-encoding"] == "gzip"  # passed on as the vendor sent it
        assert int(answer.headers["content-length"]) == answer.num_bytes_downloaded
        seen = answer.json()  # httpx undoes the gzip
        assert seen["path"] == "/webhooks/wms" and seen["query"] == "a=1&a=2"
        assert seen["headers"]["host"] == upstream.removeprefix("http://")
        assert seen["headers"]["user-agent"] == "the-stack/1.0"
        assert seen["headers"]["webhook-signature"] == "v1,sig"  # redacted only on disk
        assert "x-private" not in seen["headers"] and "accept-encoding" in seen["headers"]
        assert orjson.loads(seen["body"]) == event
        assert "x-hop" not in answer.headers
        assert answer.headers["location"] == f"{proxy}/wms/EV-1"  # back through the proxy
        assert answer.headers["set-cookie"] == "vendor=1; Path=/"

    (entry,) = check_har(har_of(har))
    assert json.loads(entry["response"]["content"]["text"])["path"] == "/webhooks/wms"
    size, on_wire = entry["response"]["content"]["size"], entry["response"]["bodySize"]
    assert on_wire == answer.num_bytes_downloaded < size  # the HAR holds it decoded
    assert entry["response"]["content"]["compression"] == size - on_wire
    assert header(entry["request"], "webhook-signature") == "[redacted]"
    assert header(entry["response"], "set-cookie") == "[redacted]"
    assert entry["response"]["cookies"] == [{"name": "vendor", "value": "[redacted]"}]
    assert entry["request"]["queryString"] == [
        {"name": "a", "value": "1"},
        {"name": "a", "value": "2"},
    ]
    (line,) = journal_of(record.default_journal(har))
    assert line["event_type"] == "order.picked" and line["ref"] == "SO-7"
    assert line["system"] == "stack" and line["path"] == "/wms"


async def test_concurrent_exchanges_each_get_one_entry_and_one_line(sims, tmp_path):
    har = tmp_path / "many.har"
    async with Recording([Upstream("erp", sims["erp"].url)], har) as rec:
        async with httpx.AsyncClient() as client:
            url = f"{rec.listeners[0].url}/orders"
            answers = await asyncio.gather(*(client.post(url, json=ORDER) for _ in range(20)))
        assert {a.status_code for a in answers} == {201}
    entries = check_har(har_of(har))
    lines = journal_of(record.default_journal(har))
    assert len(entries) == len(lines) == 20
    assert sorted(line["ref"] for line in lines) == sorted(a.json()["id"] for a in answers)
    assert [e["_twinyard"]["seq"] for e in entries] == list(range(1, 21))


# -- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--har", "{tmp}/x.har"], "give at least one --upstream"),
        (["--har", "{tmp}/x.har", "--upstream", "erp"], "give NAME=URL"),
        (["--har", "{tmp}/x.har", "--upstream", "erp=ftp://host"], "is not an http(s) URL"),
        (["--har", "{tmp}/x.har", "--upstream", "e r p=http://h:1"], "the name must be"),
        (
            ["--har", "{tmp}/x.har", "--upstream", "erp=http://h:1", "--upstream", "erp=http://g"],
            "named twice",
        ),
        (["--har", "{tmp}/no/such/x.har", "--upstream", "erp=http://h:1"], "cannot write"),
        (
            ["--har", "{tmp}/x.har", "--journal", "{tmp}", "--upstream", "erp=http://h:1"],
            "--journal",
        ),
        (["--upstream", "erp=http://h:1"], "Missing option '--har'"),
    ],
)
def test_misuse_is_one_line_and_exit_2(tmp_path, capsys, args, said):
    code = main(["record", *(a.replace("{tmp}", str(tmp_path)) for a in args)])
    err = capsys.readouterr().err
    assert code == 2
    assert said in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--upstream", "erp=http://h:1", "--har", str(tmp_path / "x.har")]
        code = main(["record", *args, "--port-base", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and f"127.0.0.1:{port}" in err and err.count("\n") == 1
    assert not (tmp_path / "x.har").exists()  # nothing written when it cannot listen


def _line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """One line of the child's stdout, or fail after ``timeout`` (never hang the suite)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "twinyard record printed nothing"
    return proc.stdout.readline().rstrip("\n")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_the_command_prints_its_listeners_and_writes_both_files_when_stopped(tmp_path, signum):
    dead = refused_url()
    har = tmp_path / "cmd.har"
    args = ["record", "--upstream", f"carrier={dead}", "--har", str(har)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        name, url, arrow, target = _line(proc).split()
        assert (name, arrow, target) == ("carrier", "->", dead)
        # a proxy in another process, on a machine the whole suite loads: patience, not speed
        answer = httpx.post(f"{url}/labels", json={"shipment_ref": "SO-1"}, timeout=30)
        assert answer.status_code == 502
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    journal = record.default_journal(har)
    assert out.strip() == f"recorded 1 exchanges: {har} and {journal}"
    (entry,) = check_har(har_of(har))
    assert entry["response"]["status"] == 0 and entry["_twinyard"]["system"] == "carrier"
    (line,) = journal_of(journal)
    assert line["ref"] == "SO-1" and line["status"] == 0


# -- a day played through the proxies ------------------------------------------------------


@dataclass
class RecordedDay:
    """A day the reference stack played through record proxies: the HAR and the run."""

    har: Path
    outcome: RunOutcome


async def _record_a_day(har: Path, report_dir: Path) -> RunOutcome:
    base = four_free_ports()
    upstreams = [Upstream(s, f"http://127.0.0.1:{base + i}") for i, s in enumerate(SYSTEMS)]
    async with Recording(upstreams, har) as rec:
        # The harness gives the stack TWINYARD_<SYSTEM>_URL; `env` sets them again after, so
        # the stack's own variables (the proxies') win: what a user does with --stack-cmd.
        proxies = [f"TWINYARD_{li.upstream.name.upper()}_URL={li.url}" for li in rec.listeners]
        stack = shlex.join(["env", *proxies, sys.executable, "-m", "reference_stack"])
        return await run(
            RunConfig(
                # the day without what twinyard import cannot rebuild yet (item launches,
                # a second site, returns): the capsule must replay what it holds
                scenario=scenarios.load(
                    ROOT / "scenarios" / "happy_day.yaml",
                    (
                        "demand.orders=3",
                        "horizon_days=4",
                        "master_data.new_items_per_day=0",
                        "master_data.changes_per_day=0",
                        "master_data.case_share=0",
                        "sites.others=[]",
                        "returns.return_rate=0",
                    ),
                ),
                stack_cmd=stack,
                port_base=base,
                report_dir=report_dir,
            )
        )


@pytest.fixture(scope="module")
def recorded_day(tmp_path_factory: pytest.TempPathFactory) -> RecordedDay:
    """Recorded once for every test of this module that reads it: a day is the slow part."""
    folder = tmp_path_factory.mktemp("recorded")
    har = folder / "day.har"
    return RecordedDay(har, uvloop.run(_record_a_day(har, folder / "run")))


@pytest.mark.e2e
def test_a_day_played_through_record_proxies_passes_and_every_vendor_is_recorded(recorded_day):
    har, outcome = recorded_day.har, recorded_day.outcome
    failed = {r.name: r.findings[:2] for r in outcome.results if not r.passed}
    assert failed == {}, outcome.notes
    assert outcome.counts["shipped"] == 3

    entries = check_har(har_of(har))
    calls = {
        (e["_twinyard"]["system"], e["request"]["method"], e["request"]["url"]) for e in entries
    }
    paths = {(s, m, url.split("/", 3)[3].split("?")[0]) for s, m, url in calls}
    for system in SYSTEMS:  # the stack subscribed to every vendor through its proxy
        assert (system, "POST", "webhooks") in paths, system
    assert any(s == "wms" and m == "POST" and p == "fulfilment-orders" for s, m, p in paths)
    assert any(s == "tms" and m == "POST" and p == "shipments" for s, m, p in paths)
    assert any(s == "carrier" and m == "POST" and p == "labels" for s, m, p in paths)
    assert any(s == "erp" and p.endswith("/goods-issue") for s, m, p in paths)
    lines = journal_of(record.default_journal(har))
    assert len(lines) == len(entries)
    assert {line["correlation_id"] for line in lines} - {None}  # the stack's ids are kept


@pytest.mark.e2e
def test_a_recorded_day_imports_as_a_capsule_that_replays_and_ships_the_same_orders(
    recorded_day, tmp_path, capsys
):
    capsule = tmp_path / "capsule.yaml"
    assert main(["import", str(recorded_day.har), "--out", str(capsule)]) == 0
    said = capsys.readouterr().out
    assert said.startswith("imported 1 piece(s) of evidence (har): orders 3,"), said

    recorded = {
        o["id"]: [(x["sku"], x["qty"]) for x in sorted(o["lines"], key=lambda x: x["line"])]
        for o in recorded_day.outcome.snapshots["erp"]["orders"]
    }
    loaded = scenarios.load(capsule)
    assert loaded.demand.orders == 0  # every order is the recording's, none generated
    assert {o.id: [(x.sku, x.qty) for x in o.lines] for o in loaded.orders} == recorded
    # no webhooks were recorded: the carrier's scans come from the stack's tracking posts
    posted = {
        e["request"]["url"].split("/")[-2]
        for e in har_of(recorded_day.har)["log"]["entries"]
        if e["request"]["method"] == "POST" and e["request"]["url"].endswith("/tracking")
    }
    assert posted, "the day's stack posted no scans to the ERP"
    scanned = {t.scans.order for t in loaded.timeline if t.kind == "scans"}
    assert scanned == posted
    assert any(u.startswith("reads: ") for u in loaded.capsule.unmapped)

    report = tmp_path / "replay"
    code = main(["run", str(capsule), "--report-dir", str(report), "--quiet"])
    verdict = json.loads((report / "verdict.json").read_text())
    failed = {o["name"]: o["findings"][:2] for o in verdict["oracles"] if not o["passed"]}
    assert (code, failed) == (0, {})
    state = json.loads((report / "state.json").read_text())
    shipped = {o["id"] for o in state["erp"]["orders"] if o["status"] in ("shipped", "delivered")}
    assert shipped == set(recorded)
