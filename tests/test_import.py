"""``twinyard import``: evidence (a run folder, a journal, a HAR, a dead-letter export) read
into one form, reconstructed into a scripted day, written as a capsule that loads; and the
round trip: a defect's run imported and replayed fails the same oracle on the same orders."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import scenario
from harness.capsules import evidence, import_command, reconstruct, write
from harness.cli import main
from tests.support import play

ROOT = Path(__file__).resolve().parent.parent
SHORTS = ROOT / "scenarios/incidents/short_pick_backorder.yaml"

RELEASED = {
    "id": "EV-ERP-000001",
    "type": "order.released",
    "source": "erp",
    "occurred_at": "2026-03-02T09:00:00Z",
    "data": {
        "id": "SO-4711",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.org"},
        "ship_to": {
            "name": "Ada Lovelace",
            "street": "Main St 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "service_level": "express",
        "lines": [{"line": 1, "sku": "SKU-00003", "qty": 2}, {"line": 2, "sku": "A-100", "qty": 4}],
        "released_at": "2026-03-02T09:00:00Z",
    },
}


def _envelope(eid: str, kind: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": eid, "type": kind, "source": "x", "occurred_at": at, "data": data}


def _entry(
    method: str,
    url: str,
    at: str,
    status: int,
    body: Any = None,
    answer: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method, "url": url, "headers": []}
    if body is not None:
        request["postData"] = {"mimeType": "application/json", "text": json.dumps(body)}
    response = {
        "status": status,
        "headers": [],
        "content": {"text": json.dumps(answer) if answer is not None else ""},
    }
    return {"startedDateTime": at, "time": 12, "request": request, "response": response, **extra}


def _har(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    path = tmp_path / "traffic.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return path


def _incident_har(tmp_path: Path) -> Path:
    """A morning of SO-4711: released, sent to the WMS (after a 503), picked one short,
    labelled, scanned; its pick event delivered twice."""
    picked = _envelope(
        "EV-WMS-000007",
        "order.picked",
        "2026-03-02T09:40:00Z",
        {
            "fulfilment_order_id": "FO-000001",
            "order_ref": "SO-4711",
            "lines": [
                {"line": 1, "sku": "SKU-00003", "qty": 2, "picked_qty": 2, "short_qty": 0},
                {"line": 2, "sku": "A-100", "qty": 4, "picked_qty": 3, "short_qty": 1},
            ],
        },
    )
    fo = {"order_ref": "SO-4711", "lines": RELEASED["data"]["lines"], "service_level": "express"}
    return _har(
        tmp_path,
        [
            _entry("POST", "http://stack:8700/webhooks/erp", "2026-03-02T09:00:01Z", 202, RELEASED),
            _entry(
                "POST",
                "http://wms.local/fulfilment-orders",
                "2026-03-02T09:00:02Z",
                503,
                fo,
                {"error": {"code": "unavailable"}},
            ),
            _entry(
                "POST",
                "http://wms.local/fulfilment-orders",
                "2026-03-02T09:03:00Z",
                201,
                fo,
                {"id": "FO-000001"},
            ),
            _entry("POST", "http://stack:8700/webhooks/wms", "2026-03-02T09:40:01Z", 202, picked),
            _entry("POST", "http://stack:8700/webhooks/wms", "2026-03-02T09:40:05Z", 200, picked),
            _entry(
                "POST",
                "http://api.example/v1/thing",
                "2026-03-02T09:41:00Z",
                200,
                {"a": 1},
                _twinyard={"system": "tms"},
            ),
            _entry("POST", "http://10.0.0.9/mystery", "2026-03-02T09:42:00Z", 200, {"a": 1}),
            _entry(
                "POST",
                "http://wms.local/fulfilment-orders/FO-000001/label",
                "2026-03-02T09:45:00Z",
                200,
                {"tracking_number": "PC9"},
                {},
            ),
            _entry(
                "GET",
                "http://carrier.local/tracking/PC9",
                "2026-03-03T18:00:00Z",
                200,
                None,
                {
                    "events": [
                        {"status": "picked_up", "occurred_at": "2026-03-02T17:00:00Z"},
                        {"status": "delivered", "occurred_at": "2026-03-03T14:00:00Z"},
                    ]
                },
            ),
        ],
    )


# -- readers -------------------------------------------------------------------------------


def test_a_har_is_read_into_exchanges_and_events_each_with_its_system(tmp_path):
    found = evidence.read(_incident_har(tmp_path), None, {"10.0.0.9": "erp"})
    assert found.kinds == ["har"]
    systems = [(x.system, x.direction, x.path) for x in found.exchanges]
    assert ("erp", "out", "/webhooks/erp") in systems  # an envelope: a delivery to the stack
    assert ("wms", "in", "/fulfilment-orders") in systems  # by the route
    assert ("tms", "in", "/v1/thing") in systems  # by the recorder's mark
    assert ("erp", "in", "/mystery") in systems  # by --system HOST=SYSTEM
    assert [e.id for e in found.events].count("EV-WMS-000007") == 2
    assert found.events[0].data["id"] == "SO-4711"


def test_a_har_entry_of_no_known_system_is_listed_not_guessed(tmp_path):
    found = evidence.read(_incident_har(tmp_path))
    assert any("/mystery" in line and "--system" in line for line in found.unreadable)


def test_a_dead_letter_export_takes_wrapped_and_bare_envelopes_and_lists_the_rest(tmp_path):
    path = tmp_path / "dlq.jsonl"
    cancelled = _envelope(
        "EV-2", "order.cancelled", "2026-03-02T09:30:00Z", {"order_id": "SO-4711"}
    )
    path.write_text(
        "\n".join(
            [
                json.dumps(RELEASED),
                json.dumps({"event": cancelled, "error": "ERP answered 500"}),
                json.dumps({"body": json.dumps(cancelled), "attempts": 5}),
                "{not json",
                json.dumps({"what": "no envelope here"}),
            ]
        )
    )
    found = evidence.read(path)
    assert found.kinds == ["dlq"]
    assert [e.type for e in found.events] == ["order.released", *["order.cancelled"] * 2]
    assert found.events[1].error == "ERP answered 500"
    assert found.events[0].system == "erp"
    assert len(found.unreadable) == 2 and "dlq.jsonl:4" in found.unreadable[0]


def test_a_journal_line_that_is_not_an_entry_is_listed(tmp_path):
    path = tmp_path / "journal.jsonl"
    good = {
        "seq": 1,
        "system": "wms",
        "direction": "in",
        "method": "POST",
        "path": "/fulfilment-orders",
        "status": 503,
        "virtual_time": 36000.0,
        "ref": "SO-000001",
        "fault": "error:503",
    }
    path.write_text(json.dumps(good) + "\n[1, 2]\n")
    found = evidence.read(path)
    assert found.kinds == ["journal"] and len(found.exchanges) == 1
    assert found.unreadable == ["journal.jsonl:2: not a journal entry (not an object)"]


def test_detection_tells_the_four_kinds_apart(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/journal.jsonl").write_text(
        '{"seq":1,"system":"erp","direction":"in","virtual_time":0}\n'
    )
    (tmp_path / "j.jsonl").write_text((tmp_path / "run/journal.jsonl").read_text())
    (tmp_path / "d.jsonl").write_text(json.dumps(RELEASED) + "\n")
    har = _har(tmp_path, [])
    kinds = [
        evidence.detect(p)
        for p in (tmp_path / "run", tmp_path / "j.jsonl", tmp_path / "d.jsonl", har)
    ]
    assert kinds == ["run", "journal", "dlq", "har"]
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(evidence.EvidenceError, match="give --format"):
        evidence.detect(tmp_path / "x.txt")


# -- reconstruction ------------------------------------------------------------------------


def _capsule(tmp_path: Path, *paths: Path, **options: Any) -> tuple[dict[str, Any], Any]:
    out = tmp_path / "capsule.yaml"
    done = import_command.run_import(list(paths), out, **options)
    loaded = scenario.load(out)  # it loads as any scenario does
    return write.data_of(out.read_text()), (loaded, done)


def test_a_har_becomes_orders_picks_scans_and_a_fault_matched_to_the_order(tmp_path):
    _, (loaded, done) = _capsule(tmp_path, _incident_har(tmp_path))
    (order,) = loaded.orders
    assert order.id == "SO-4711" and order.at == 9 * 3600  # epoch: midnight of the first day
    assert order.service_level == "express" and order.customer.name == "Ada Lovelace"
    assert [line.sku for line in order.lines] == ["SKU-00003", "SKU-00004"]  # A-100 numbered
    assert loaded.catalogue.skus == 4
    assert any("A-100 is played as SKU-00004" in u for u in loaded.capsule.unmapped)
    picks = [(t.pick.line, t.pick.short, t.at) for t in loaded.timeline if t.kind == "pick"]
    assert picks == [(1, 0, 9 * 3600 + 40 * 60), (2, 1, 9 * 3600 + 40 * 60)]
    (scans,) = [t.scans for t in loaded.timeline if t.kind == "scans"]
    delivered = 86_400 + 14 * 3600
    assert [(e.status, e.at) for e in scans.events] == [
        ("picked_up", 17 * 3600),
        ("delivered", delivered),
    ]
    error = next(f for f in loaded.faults if f.kind == "error")
    assert (error.system, error.route, error.status, error.match) == (
        "wms",
        "POST /fulfilment-orders",
        503,
        "SO-4711",
    )
    assert error.at <= 9 * 3600 + 2 < error.at + error.for_ < 9 * 3600 + 180  # not the retry
    duplicate = next(f for f in loaded.faults if f.kind == "duplicate")
    assert (duplicate.event, duplicate.copies) == ("order.picked", 2)
    assert loaded.horizon_days >= 2 and done.result.orders == 1


def test_a_dead_letter_export_becomes_a_capsule_and_says_what_was_dead_lettered(tmp_path):
    path = tmp_path / "dlq.jsonl"
    cancel = _envelope("EV-9", "order.cancelled", "2026-03-02T09:20:00Z", {"order_id": "SO-4711"})
    stray = _envelope("EV-10", "order.cancelled", "2026-03-02T09:21:00Z", {"order_id": "SO-1"})
    adjusted = _envelope(
        "EV-11",
        "inventory.adjusted",
        "2026-03-02T10:00:00Z",
        {"sku": "SKU-00002", "delta": -3, "reason": "damage"},
    )
    lines = [RELEASED, {"event": cancel, "error": "timeout"}, stray, adjusted, {"x": 1}]
    path.write_text("\n".join(json.dumps(x) for x in lines))
    _, (loaded, _) = _capsule(tmp_path, path)
    kinds = [(t.kind, t.order) for t in loaded.timeline]
    assert kinds == [("cancel", "SO-4711"), ("adjustment", None)]
    unmapped = "\n".join(loaded.capsule.unmapped)
    assert "EV-9 (order.cancelled SO-4711) was dead-lettered: timeout" in unmapped
    assert "cancel of SO-1: the order is not in the capsule" in unmapped
    assert "no event envelope" in unmapped  # the line it could not read
    assert loaded.stock.replenishment.reorder_at == 0  # only what the script says happens


def _journal(path: Path, entries: list[dict[str, Any]]) -> Path:
    base = {
        "correlation_id": None,
        "body_digest": "",
        "wall_time": 0.0,
        "duration_ms": 1.0,
        "event_type": None,
        "ref": None,
        "fault": None,
        "error": None,
        "retry_after": None,
        "query": "",
    }
    path.write_text(
        "\n".join(json.dumps({**base, "seq": i, **e}) for i, e in enumerate(entries, 1))
    )
    return path


def test_journal_fault_labels_become_windows_that_spare_the_clean_retry(tmp_path):
    label = {"system": "carrier", "direction": "in", "method": "POST", "path": "/labels"}
    out = {
        "system": "carrier",
        "direction": "out",
        "method": "POST",
        "path": "http://s/wh",
        "status": 202,
        "event_type": "tracking.updated",
    }
    path = _journal(
        tmp_path / "journal.jsonl",
        [
            {**label, "status": 201, "virtual_time": 36_000.0, "ref": "SH-000001"},
            {
                **label,
                "status": 504,
                "virtual_time": 36_400.0,
                "ref": "SH-000002",
                "fault": "lost_response",
            },
            {**label, "status": 504, "virtual_time": 36_430.0, "fault": "lost_response"},  # a retry
            {**label, "status": 201, "virtual_time": 36_470.0},  # the retry that got through
            {**out, "virtual_time": 62_000.0, "ref": "SH-000002", "fault": "reorder:600s"},
            {
                **label,
                "status": 200,
                "virtual_time": 1.0,
                "fault": "latency:250ms+error:502",
                "ref": "SH-000009",
            },
            {**label, "status": 200, "virtual_time": 2.0, "fault": "teleport"},
        ],
    )
    _, (loaded, _) = _capsule(tmp_path, path)
    lost = next(f for f in loaded.faults if f.kind == "lost_response")
    assert (lost.route, lost.match) == ("POST /labels", "SH-000002")
    assert lost.at < 36_400 and 36_430 < lost.at + lost.for_ < 36_470  # retry at 470 spared
    reorder = next(f for f in loaded.faults if f.kind == "reorder")
    assert (reorder.event, reorder.hold_s) == ("tracking.updated", 600)
    assert reorder.at <= 61_400 < reorder.at + reorder.for_  # when the scan happened
    assert {"latency", "error"} <= {f.kind for f in loaded.faults}  # both of a joined label
    assert any("teleport" in u for u in loaded.capsule.unmapped)
    assert any(
        "lines and ship-to are not in a journal" in u or "date" in u
        for u in loaded.capsule.unmapped
    )


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    """A real run folder: a few orders of short_pick_backorder against the clean stack (its
    generated orders only: the two it scripts are left out)."""
    folder = tmp_path_factory.mktemp("run")
    day = folder / "day.yaml"
    text = re.sub(r"\norders:.*?\n\n", "\n\n", SHORTS.read_text(), count=1, flags=re.S)
    assert "SO/2026" not in text
    day.write_text(text.replace("orders: 60", "orders: 6"))
    play(day, folder / "report")
    return folder / "report"


def test_a_run_folder_becomes_every_order_with_its_picks_and_scans(short_run, tmp_path):
    state = json.loads((short_run / "state.json").read_text())
    _, (loaded, done) = _capsule(tmp_path, short_run)
    assert done.result.kinds == ["run"] and loaded.seed == 16
    assert loaded.demand.orders == 0 and len(loaded.orders) == 6
    assert loaded.catalogue.skus == 20 and loaded.warehouse.pickers == 4  # the run's world
    erp = {o["id"]: o for o in state["erp"]["orders"]}
    for order in loaded.orders:
        assert [(x.sku, x.qty) for x in order.lines] == [
            (x["sku"], x["qty"]) for x in erp[order.id]["lines"]
        ]
        assert order.ship_to.postal_code == erp[order.id]["ship_to"]["postal_code"]
    shorts = {
        (fo["order_ref"], line["line"]): line["short_qty"]
        for fo in state["wms"]["orders"].values()
        for line in fo["lines"]
    }
    picks = {(t.pick.order, t.pick.line): t.pick.short for t in loaded.timeline if t.pick}
    assert picks == shorts
    scanned = {t.scans.order for t in loaded.timeline if t.scans}
    assert scanned == {o["id"] for o in state["erp"]["orders"] if o["tracking_history"]}
    assert loaded.faults == () and loaded.capsule.unmapped == ()
    assert (tmp_path / "capsule.yaml").read_text().startswith("# CAPSULE: imported by")


def test_a_bare_journal_of_a_run_keeps_its_generated_orders_when_the_verdict_is_beside(
    short_run, tmp_path
):
    (tmp_path / "j").mkdir()
    for name in ("journal.jsonl", "verdict.json"):
        (tmp_path / "j" / name).write_text((short_run / name).read_text())
    _, (loaded, _) = _capsule(tmp_path, tmp_path / "j" / "journal.jsonl")
    assert loaded.demand.orders == 6 and loaded.orders == () and loaded.seed == 16
    assert any("generated ones" in u for u in loaded.capsule.unmapped)


# -- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["import", "/nonexistent/run", "--out", "x.yaml"], "no such file or folder"),
        (["import", "{har}", "--out", "x.yaml", "--format", "pcap"], "--format pcap: unknown"),
        (["import", "{garbage}", "--out", "x.yaml", "--format", "har"], "not JSON"),
        (["import", "{garbage}", "--out", "x.yaml"], "cannot tell what this is"),
        (["import", "{har}", "--out", "x.yaml", "--system", "wms.local"], "give HOST=SYSTEM"),
    ],
)
def test_misuse_is_one_line_and_exit_2(tmp_path, capsys, argv, said):
    har = _har(tmp_path, [])
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{{{ nope")
    argv = [a.format(har=har, garbage=garbage) for a in argv]
    argv[argv.index("--out") + 1] = str(tmp_path / "x.yaml")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.yaml").exists()


def test_the_command_prints_a_summary_and_where_the_capsule_went(tmp_path):
    out = tmp_path / "c.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "import",
            str(_incident_har(tmp_path)),
            "--out",
            str(out),
            "--name",
            "so4711",
            "--system",
            "10.0.0.9=erp",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "orders 1, timeline entries 3, faults 2" in done.stdout
    assert f"capsule: {out}" in done.stdout
    assert scenario.load(out).name == "so4711"


# -- the round trip ------------------------------------------------------------------------


def _world_plays_scripts() -> bool:
    """Whether harness.world places scripted orders yet (another change brings it)."""
    from harness.world.integrator import play as world_play

    day = scenario.parse(
        "demand: {orders: 0}\nhorizon_days: 1\norders:\n"
        "  - {id: X-1, at: '09:00', lines: [{sku: SKU-00001, qty: 1}]}\n"
    )
    orders = world_play(day).models["erp"].snapshot()["orders"]
    return any(o["id"] == "X-1" for o in orders)


def _failing(report: Path, oracle: str) -> list[str]:
    verdict = json.loads((report / "verdict.json").read_text())
    (found,) = [o for o in verdict["oracles"] if o["name"] == oracle]
    return sorted({f["entity"] for f in found["findings"]})


def test_a_defects_run_imported_and_replayed_fails_the_same_oracle_on_the_same_orders(tmp_path):
    if not _world_plays_scripts():
        pytest.skip("harness.world does not play scripted orders yet: the replay cannot hold")
    # ordered-qty shows only on a line picked partly short (a line picked not at all leaves
    # the goods issue either way): the whole day has a handful of those
    play(SHORTS, tmp_path / "before", defects="ordered-qty")
    before = _failing(tmp_path / "before", "short_becomes_backorder")
    assert before, "the day must fail for the round trip to mean anything"
    out = tmp_path / "capsule.yaml"
    import_command.run_import([tmp_path / "before"], out)
    play(out, tmp_path / "after", defects="ordered-qty")
    assert _failing(tmp_path / "after", "short_becomes_backorder") == before


def test_reconstruction_never_drops_an_order_in_silence():
    found = evidence.Evidence(kinds=["dlq"], sources=["x"])
    found.events.append(
        evidence.Event(
            "E1",
            "order.released",
            "erp",
            evidence.parse_time("2026-03-02T09:00:00Z"),
            {"id": "bad id with spaces", "lines": [{"sku": "SKU-00001", "qty": 1}]},
        )
    )
    found.events.append(
        evidence.Event(
            "E2",
            "order.released",
            "erp",
            evidence.parse_time("2026-03-02T09:00:00Z"),
            {"id": "SO-9"},
        )
    )
    result = reconstruct.reconstruct(found)
    assert result.orders == 0
    assert any("bad id with spaces" in u for u in result.unmapped)
    assert any(u.startswith("SO-9: its lines are not in the recording") for u in result.unmapped)


# -- answer-fault windows -------------------------------------------------------------------


def _posts(order: str, what: str, times: list[float], fault: str | None) -> list[dict[str, Any]]:
    status = 500 if fault else 200
    return [
        {
            "system": "erp",
            "direction": "in",
            "method": "POST",
            "path": f"/orders/{order}/{what}",
            "status": status,
            "virtual_time": t,
            "ref": order,
            "fault": fault,
        }
        for t in times
    ]


def test_an_unbroken_run_of_hits_is_one_window_over_the_templates_prefix(tmp_path):
    # 17:00-18:30: every goods issue and tracking post answered 500, retried with a backoff
    # of minutes (hits of one order far more than 60 s apart); the first clean post at 18:31
    entries = []
    for n in range(1, 6):
        entries += _posts(f"SO-00000{n}", "goods-issue", [61_200 + 600 * k for k in range(8)], "x")
        entries += _posts(f"SO-00000{n}", "tracking", [61_300 + 900 * n], "x")
    entries += _posts("SO-000001", "tracking", [66_660.0], None)
    for e in entries:
        e["fault"] = "error:500" if e["fault"] else None
    _, (loaded, _) = _capsule(tmp_path, _journal(tmp_path / "journal.jsonl", entries))
    (fault,) = loaded.faults
    assert (fault.route, fault.kind, fault.status, fault.match) == (
        "POST /orders",
        "error",
        500,
        None,
    )
    last_hit = 61_300 + 900 * 5  # the last tracking post
    assert fault.at <= 61_200 and fault.until == pytest.approx((last_hit + 66_660) / 2, abs=0.01)


def test_clean_answers_the_prefix_covers_cut_the_run_and_short_runs_stay_per_ref(tmp_path):
    # goods issues of two orders fail while tracking posts (same prefix, POST /orders) get
    # through between them: the prefix cannot isolate the goods issues, each failing post is
    # its own window on its own path
    entries = _posts("SO-000001", "goods-issue", [40_000.0, 40_200.0], "error:500")
    entries += _posts("SO-000002", "goods-issue", [40_100.0], "error:500")
    entries += _posts("SO-000003", "tracking", [40_050.0, 40_150.0], None)
    entries += _posts("SO-000001", "goods-issue", [40_400.0], None)
    _, (loaded, _) = _capsule(tmp_path, _journal(tmp_path / "journal.jsonl", entries))
    windows = sorted((f.route, f.at, f.until) for f in loaded.faults)
    assert [w[0] for w in windows] == [
        "POST /orders/SO-000001/goods-issue",
        "POST /orders/SO-000002/goods-issue",
    ]
    for route, at, until in windows:  # each spares every clean answer on its route
        clean = [e["virtual_time"] for e in entries if not e["fault"] and route.endswith(e["path"])]
        assert not any(at <= t < until for t in clean)


def test_429s_are_one_shared_bucket_per_route_prefix_with_the_bucket_estimated(tmp_path):
    # a flood at 08:30: five creates got through, then every other one (of any order) got 429;
    # one more got through 5.5 s later, as the bucket refilled
    create = {"system": "wms", "direction": "in", "method": "POST", "path": "/fulfilment-orders"}
    entries = [
        {**create, "status": 201, "virtual_time": 30_600.0, "ref": f"SO-00000{n}"}
        for n in range(1, 6)
    ]
    entries += [
        {
            **create,
            "status": 429,
            "virtual_time": 30_600.0 + n,
            "fault": "rate_limit",
            "retry_after": 1.0,
        }
        for n in range(10)
    ]
    entries.append({**create, "status": 201, "virtual_time": 30_605.5, "ref": "SO-000009"})
    _, (loaded, _) = _capsule(tmp_path, _journal(tmp_path / "journal.jsonl", entries))
    (limit,) = [f for f in loaded.faults if f.kind == "rate_limit"]
    assert (limit.system, limit.route, limit.match) == ("wms", "POST /fulfilment-orders", None)
    assert limit.burst == 5 and limit.per_second == pytest.approx(1 / 9, abs=0.001)
    assert limit.at <= 30_600 - 59 and limit.until >= 30_609 + 59


def test_429s_take_the_runs_declared_bucket_and_route(tmp_path):
    scenario_file = tmp_path / "day.yaml"
    scenario_file.write_text(
        "name: quota\nseed: 3\ndemand: {orders: 2}\nfaults:\n"
        "  - {system: tms, kind: rate_limit, per_second: 2, burst: 6}\n"
    )
    ship = {"system": "tms", "direction": "in", "method": "POST", "path": "/shipments"}
    entries = [
        {**ship, "status": 429, "virtual_time": 41_400.0, "fault": "rate_limit", "ref": "SO-1"},
        {**ship, "status": 429, "virtual_time": 41_400.0, "fault": "rate_limit", "ref": "SO-2"},
    ]
    journal = _journal(tmp_path / "journal.jsonl", entries)
    verdict = {"scenario": {"name": "quota", "file": str(scenario_file), "seed": 3}}
    (tmp_path / "verdict.json").write_text(json.dumps(verdict))
    _, (loaded, _) = _capsule(tmp_path, journal)
    (limit,) = [f for f in loaded.faults if f.kind == "rate_limit"]
    assert (limit.route, limit.per_second, limit.burst, limit.match) == ("", 2, 6, None)


# -- a HAR of stack -> vendor calls -----------------------------------------------------------


def _postings_har(tmp_path: Path) -> Path:
    """The stack's calls to its vendors only: no webhooks. The ERP postings stand in for the
    carrier's scans and the WMS's adjustments and receipts."""
    erp = {"_twinyard": {"system": "erp"}}
    order = {**RELEASED["data"], "status": "released"}
    tracking = "http://erp.local/orders/SO-4711/tracking"
    return _har(
        tmp_path,
        [
            _entry(
                "GET", "http://erp.local/orders/SO-4711", "2026-03-02T09:01:00Z", 200, None, order
            ),
            _entry(
                "POST",
                "http://erp.local/orders/SO-4711/goods-issue",
                "2026-03-02T17:00:05Z",
                201,
                {"lines": [{"line": 1, "qty": 2}], "tracking_number": "PC7"},
                {},
            ),
            _entry(
                "POST",
                tracking,
                "2026-03-02T17:20:00Z",
                200,
                {
                    "tracking_number": "PC7",
                    "status": "picked_up",
                    "occurred_at": "2026-03-02T17:15:00Z",
                },
                {},
            ),
            _entry(
                "POST",
                tracking,
                "2026-03-03T14:01:00Z",
                200,
                {
                    "tracking_number": "PC7",
                    "status": "delivered",
                    "occurred_at": "2026-03-03T14:00:00Z",
                },
                {},
            ),
            _entry(
                "POST",
                "http://erp.local/inventory/adjustments",
                "2026-03-02T17:30:00Z",
                201,
                {"sku": "SKU-00003", "delta": -2, "reason": "shrink"},
                {},
                **erp,
            ),
            _entry(
                "POST",
                "http://erp.local/goods-receipts",
                "2026-03-02T18:00:00Z",
                201,
                {"reference": "RC-1", "lines": [{"sku": "SKU-00003", "qty": 20}]},
                {},
            ),
            *[
                _entry(
                    "GET",
                    f"http://erp.local/inventory/SKU-0000{n}",
                    "2026-03-02T18:10:00Z",
                    200,
                    None,
                    {"sku": f"SKU-0000{n}", "on_hand": 5},
                    **erp,
                )
                for n in range(1, 5)
            ],
            *[
                _entry(
                    "POST",
                    "http://erp.local/freight-accruals",
                    f"2026-03-04T0{n}:00:00Z",
                    201,
                    {"shipment_id": f"SH-{n}", "amount": 5},
                    {},
                )
                for n in range(1, 4)
            ],
            _entry(
                "POST",
                "http://erp.local/orders/SO-4711/cancel",
                "2026-03-02T19:00:00Z",
                409,
                None,
                {"error": {"code": "conflict"}},
            ),
        ],
    )


def test_a_har_of_stack_calls_takes_scans_adjustments_and_receipts_from_erp_postings(tmp_path):
    _, (loaded, _) = _capsule(tmp_path, _postings_har(tmp_path))
    (scans,) = [t.scans for t in loaded.timeline if t.kind == "scans"]
    assert scans.order == "SO-4711"
    assert [(e.status, e.at) for e in scans.events] == [
        ("picked_up", 17 * 3600 + 15 * 60),
        ("delivered", 86_400 + 14 * 3600),
    ]
    (adjustment,) = [t.adjustment for t in loaded.timeline if t.kind == "adjustment"]
    assert (adjustment.sku, adjustment.delta, adjustment.reason) == ("SKU-00003", -2, "shrinkage")
    (receipt,) = [t for t in loaded.timeline if t.kind == "receipt"]
    assert (receipt.receipt.sku, receipt.receipt.qty, receipt.at) == ("SKU-00003", 20, 18 * 3600)


def test_every_exchange_a_har_import_does_not_use_is_listed_per_route(tmp_path):
    _, (loaded, _) = _capsule(tmp_path, _postings_har(tmp_path))
    unmapped = loaded.capsule.unmapped
    (accruals,) = [u for u in unmapped if "/freight-accruals" in u]
    assert accruals.startswith("erp POST /freight-accruals x 3: ")
    assert any(u.startswith("erp POST /orders/{id}/cancel x 1: answered 409") for u in unmapped)
    (reads,) = [u for u in unmapped if u.startswith("reads:")]
    assert "4 exchange(s)" in reads and "GET /inventory/{id} x 4" in reads
    used = ("/tracking", "/goods-issue", "/adjustments", "/goods-receipts", "GET /orders/")
    assert not any(word in u for u in unmapped for word in used)


def test_an_erp_posting_the_events_gave_already_is_not_scripted_twice(tmp_path):
    har = _postings_har(tmp_path)
    adjusted = _envelope(
        "EV-3",
        "inventory.adjusted",
        "2026-03-02T17:29:00Z",
        {"sku": "SKU-00003", "delta": -2, "reason": "shrink"},
    )
    scanned = _envelope(
        "EV-4",
        "tracking.updated",
        "2026-03-02T17:15:00Z",
        {"tracking_number": "PC7", "status": "picked_up"},
    )
    dlq = tmp_path / "dlq.jsonl"
    dlq.write_text("\n".join(json.dumps(e) for e in (adjusted, scanned)))
    _, (loaded, _) = _capsule(tmp_path, har, dlq)
    assert len([t for t in loaded.timeline if t.kind == "adjustment"]) == 1
    (scans,) = [t.scans for t in loaded.timeline if t.kind == "scans"]
    assert [e.status for e in scans.events] == ["picked_up", "delivered"]


def test_a_burst_is_one_window_per_release_that_ends_when_the_held_events_came(tmp_path):
    scenario_file = tmp_path / "day.yaml"
    scenario_file.write_text(
        "name: relay\nseed: 3\ndemand: {orders: 2}\nfaults:\n"
        "  - {system: erp, kind: burst, event: order.released, at: '08:00', for: 1800}\n"
    )
    out = {
        "system": "erp",
        "direction": "out",
        "method": "POST",
        "path": "http://s/webhooks",
        "status": 202,
        "event_type": "order.released",
        "fault": "burst",
    }
    entries = [{**out, "virtual_time": 30_600.0, "ref": f"SO-00000{n}"} for n in (1, 2)]
    entries.append({**out, "virtual_time": 50_000.0, "ref": "SO-000003"})  # a later release
    journal = _journal(tmp_path / "journal.jsonl", entries)
    verdict = {"scenario": {"name": "relay", "file": str(scenario_file), "seed": 3}}
    (tmp_path / "verdict.json").write_text(json.dumps(verdict))
    _, (loaded, _) = _capsule(tmp_path, journal)
    bursts = sorted((f.at, f.until) for f in loaded.faults if f.kind == "burst")
    assert bursts == [(28_800, 30_600), (49_970, 50_000)]  # declared; the other not in it
    assert any("when holding began is not in the journal" in u for u in loaded.capsule.unmapped)


@pytest.mark.parametrize("form", ["truncated", "headers_twice"])
def test_a_garbled_delivery_label_becomes_a_garbled_fault_of_the_same_form(form):
    from harness.capsules.reconstruct.event_faults import event_spec
    from simulators.common.faults import Fault

    spec, after_s = event_spec(f"garbled:{form}")
    assert (spec, after_s) == ({"kind": "garbled", "form": form}, 0.0)
    assert Fault.model_validate({"system": "wms", **spec}).event_label() == f"garbled:{form}"
