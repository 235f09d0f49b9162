"""`twinyard coverage`: the cells a library should cover, and which runs exercised them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.cli import main
from harness.coverage import cells, exercised, stages
from harness.coverage.cells import (
    ACCEPTED,
    BEFORE_WMS_ORDER,
    CANCELLATIONS,
    CANCELLED,
    EVENTS,
    PACKED,
    PICKING,
    ROUTES,
    Cell,
)
from harness.coverage.routes import Templates

TEMPLATES = Templates.load()
CANCEL_ROUTE = "wms POST /fulfilment-orders/{fo_id}/cancel"


# -- the universe ------------------------------------------------------------------------------
def _http(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "Synchronous/HTTP",
        "description": f"{method} {path}",
        "request": {"method": method, "path": path},
        "response": {"status": 200},
    }


def _message(event_type: str) -> dict[str, Any]:
    return {
        "type": "Asynchronous/Messages",
        "description": f"an {event_type} event",
        "contents": {"content": {"id": "EV-1", "type": event_type, "data": {}}},
    }


def write_pact(folder: Path, provider: str, interactions: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pact = {
        "consumer": {"name": "my-stack"},
        "provider": {"name": provider},
        "interactions": interactions,
        "metadata": {"pactSpecification": {"version": "4.0"}},
    }
    (folder / f"my-stack-{provider}.json").write_text(json.dumps(pact))
    return folder


def test_pact_calls_become_route_rows_under_their_openapi_template(tmp_path):
    folder = write_pact(
        tmp_path,
        "wms",
        [
            _http("POST", "/fulfilment-orders/FO-000042/cancel"),
            _http("PATCH", "/fulfilment-orders/FO-000042"),
            _http("GET", "/fulfilment-orders"),  # a read: no cell
            _http("POST", "/webhooks"),  # a subscription: no cell
            _http("DELETE", "/webhooks/WH-0009"),
            _http("POST", "/no-such-route"),  # in no contract: named, not a row
            _message("order.picked"),
        ],
    )
    universe = cells.from_pacts(folder, TEMPLATES)
    assert set(map(str, universe.routes)) == {CANCEL_ROUTE, "wms PATCH /fulfilment-orders/{fo_id}"}
    assert list(map(str, universe.events)) == ["wms order.picked"]
    assert universe.ignored == {"wms POST /no-such-route"}
    families = {c.family for c in universe.cells()}
    assert len(universe.cells()) == 2 * 4 + 1 * 5 + 4 and families == {
        ROUTES,
        EVENTS,
        CANCELLATIONS,
    }


def test_the_reference_stacks_pacts_name_every_write_route_and_event_it_consumes():
    universe = cells.from_pacts(cells.DEFAULT_PACTS, TEMPLATES)
    routes = set(map(str, universe.routes))
    assert {
        "wms POST /fulfilment-orders",
        CANCEL_ROUTE,
        "erp POST /orders/{order_id}/goods-issue",
        "erp POST /goods-receipts",
        "tms POST /shipments",
        "carrier POST /labels",
    } <= routes
    assert not any("/webhooks" in r or " GET " in r for r in routes)
    events = set(map(str, universe.events))
    assert {"erp order.cancelled", "wms receipt.confirmed", "carrier tracking.updated"} <= events


def test_a_literal_segment_wins_over_a_parameter_and_the_method_must_be_documented():
    assert TEMPLATES.match("erp", "POST", "/inventory/adjustments") == "/inventory/adjustments"
    assert TEMPLATES.match("erp", "GET", "/inventory/SKU-00001") == "/inventory/{sku}"
    assert TEMPLATES.match("erp", "GET", "/orders/SO-1/goods-issue") is None
    assert TEMPLATES.match("wms", "POST", "/labels") is None  # the carrier's, not the WMS's
    assert TEMPLATES.match("wms", "GET", "/fulfilment-orders?order_ref=SO-1") == (
        "/fulfilment-orders"
    )


# -- exercised, from journals --------------------------------------------------------------------
def request(method: str, path: str, fault: str | None, system: str = "wms") -> dict[str, Any]:
    return {"system": system, "direction": "in", "method": method, "path": path, "fault": fault}


def delivery(
    event_type: str,
    fault: str | None,
    *,
    system: str = "wms",
    wall: float = 0.0,
    at: float = 0.0,
    status: int = 202,
    ref: str | None = None,
    digest: str = "d1",
) -> dict[str, Any]:
    return {
        "system": system,
        "direction": "out",
        "method": "POST",
        "path": f"http://127.0.0.1:9/webhooks/{system}",
        "status": status,
        "event_type": event_type,
        "fault": fault,
        "wall_time": wall,
        "virtual_time": at,
        "ref": ref,
        "body_digest": digest,
    }


def judged(entries: list[dict[str, Any]], state: dict[str, Any] | None = None) -> set[Cell]:
    return exercised.judge("run", entries, state or {}, TEMPLATES).exercised


def test_a_route_cell_needs_an_applied_fault_of_its_kind_on_a_business_write():
    found = exercised.judge(
        "run",
        [
            request("POST", "/fulfilment-orders/FO-000001/cancel", "lost_response"),
            request("POST", "/fulfilment-orders", "latency:40ms+error:502"),
            request("PATCH", "/fulfilment-orders/FO-000009", "rate_limit"),
            request("POST", "/labels", "outage", system="carrier"),
            request("POST", "/fulfilment-orders/FO-000001/label", None),  # no fault
            request("POST", "/fulfilment-orders/FO-000001/label", "schema_drift"),  # no column
            request("GET", "/fulfilment-orders", "lost_response"),  # a read
            request("POST", "/webhooks", "error:503"),  # a subscription
            request("POST", "/_sim/reset", "error:503"),  # the control plane
            request("POST", "/nowhere/at/all", "error:503"),  # no contract documents it
        ],
        {},
        TEMPLATES,
    )
    assert found.exercised == {
        Cell(ROUTES, CANCEL_ROUTE, "lost_response"),
        Cell(ROUTES, "wms POST /fulfilment-orders", "error"),
        Cell(ROUTES, "wms PATCH /fulfilment-orders/{fo_id}", "rate_limit"),
        Cell(ROUTES, "carrier POST /labels", "outage"),
    }
    assert "wms POST /fulfilment-orders/{fo_id}/label" in set(map(str, found.routes))
    assert found.undocumented == {"wms POST /nowhere/at/all"}


def test_each_event_fault_label_exercises_its_column_and_a_replay_needs_an_old_signature():
    found = judged(
        [
            delivery("order.picked", "duplicate:2"),
            delivery("order.packed", "duplicate:3+new-ids"),
            delivery("order.shipped", "reorder:600s"),
            delivery("inventory.adjusted", "late:900s"),
            delivery("receipt.confirmed", "replayed:600s+signed-86400s-ago"),
            delivery("order.released", "forged", system="erp"),  # no column
            delivery("order.released", "replayed:600s", system="erp"),  # inside the window
        ]
    )
    assert found == {
        Cell(EVENTS, "wms order.picked", "duplicate"),
        Cell(EVENTS, "wms order.packed", "duplicate new_ids"),
        Cell(EVENTS, "wms order.shipped", "reorder"),
        Cell(EVENTS, "wms inventory.adjusted", "late"),
        Cell(EVENTS, "wms receipt.confirmed", "replayed"),
    }


def test_an_unsigned_replay_counts_once_it_comes_outside_the_wall_clock_window():
    genuine = delivery("tracking.updated", None, system="carrier", wall=1000.0, digest="ab")
    soon = delivery("tracking.updated", "replayed:600s", system="carrier", wall=1200.0, digest="ab")
    late = delivery("tracking.updated", "replayed:600s", system="carrier", wall=1400.0, digest="ab")
    assert judged([genuine, soon]) == set()
    assert judged([late, genuine]) == {Cell(EVENTS, "carrier tracking.updated", "replayed")}


# -- cancellations ---------------------------------------------------------------------------
def at(hh_mm: str) -> str:
    return f"2026-11-23T{hh_mm}:00Z"


def seconds(hh_mm: str) -> float:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + 0.4


def erp_order(order_id: str, cancelled: str | None) -> dict[str, Any]:
    history = [{"status": "open", "at": at("08:00")}, {"status": "released", "at": at("08:00")}]
    if cancelled:
        history.append({"status": "cancelled", "at": at(cancelled)})
    return {
        "id": order_id,
        "status": "cancelled" if cancelled else "released",
        "created_at": at("08:00"),
        "status_history": history,
    }


def wms_order(fo_id: str, ref: str, *steps: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": fo_id,
        "order_ref": ref,
        "status": steps[-1][0],
        "status_history": [{"status": s, "at": at(t)} for s, t in steps],
    }


def cancelled_event(ref: str, hh_mm: str, status: int = 202, fault: str | None = None):
    return delivery(
        "order.cancelled", fault, system="erp", at=seconds(hh_mm), status=status, ref=ref
    )


def state(erp: list[dict[str, Any]], wms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"erp": {"orders": erp}, "wms": {"orders": {fo["id"]: fo for fo in wms}}}


def test_each_cancellation_stage_is_the_wms_order_at_the_moment_the_stack_heard():
    world = state(
        [erp_order(f"SO-{n}", "08:05") for n in range(1, 8)],
        [
            # SO-1: no WMS order ever; SO-2: created only after the cancellation arrived
            wms_order("FO-2", "SO-2", ("accepted", "08:20"), ("cancelled", "08:20")),
            wms_order("FO-3", "SO-3", ("accepted", "08:01"), ("cancelled", "08:10")),
            wms_order(
                "FO-4", "SO-4", ("accepted", "08:01"), ("picked", "08:30"), ("cancelled", "08:35")
            ),
            wms_order(
                "FO-5",
                "SO-5",
                ("accepted", "08:01"),
                ("picked", "08:30"),
                ("packed", "08:40"),
                ("labelled", "08:40"),
                ("cancelled", "09:00"),
            ),
            wms_order("FO-6", "SO-6", ("accepted", "08:01"), ("shipped", "08:50")),
            wms_order("FO-7", "SO-7", ("accepted", "08:01"), ("cancelled", "08:02")),
        ],
    )
    journal = [
        cancelled_event("SO-1", "08:05"),
        cancelled_event("SO-2", "08:05"),
        cancelled_event("SO-3", "08:10"),
        cancelled_event("SO-4", "08:10", status=503),  # not accepted: the retry counts
        cancelled_event("SO-4", "08:35"),
        cancelled_event("SO-5", "08:55", fault="forged"),  # an attacker's copy
        cancelled_event("SO-5", "09:00"),
        cancelled_event("SO-6", "09:10"),  # after it shipped: no stage
    ]
    by_order = stages.stages(world, _told(journal))
    assert by_order == {
        "SO-1": BEFORE_WMS_ORDER,
        "SO-2": BEFORE_WMS_ORDER,
        "SO-3": ACCEPTED,  # the WMS's own cancel in the same second does not count
        "SO-4": PICKING,
        "SO-5": PACKED,
        # SO-7: its only WMS order was closed before the stack heard: no stage
    }
    assert {c for c in judged(journal, world) if c.family == CANCELLATIONS} == {
        Cell(CANCELLATIONS, stage, CANCELLED)
        for stage in (BEFORE_WMS_ORDER, ACCEPTED, PICKING, PACKED)
    }


def test_a_stack_never_sent_the_cancellation_is_judged_at_the_erps_cancellation():
    world = state(
        [erp_order("SO-1", "08:45")],
        [wms_order("FO-1", "SO-1", ("accepted", "08:01"), ("picked", "08:30"))],
    )
    assert stages.stages(world, {}) == {"SO-1": PICKING}
    assert stages.stages(state([erp_order("SO-2", None)], []), {}) == {}


def _told(journal: list[dict[str, Any]]) -> dict[str, float]:
    told: dict[str, float] = {}
    for entry in journal:
        if 200 <= entry["status"] < 300 and not entry["fault"]:
            told.setdefault(entry["ref"], entry["virtual_time"])
    return told


# -- the command -----------------------------------------------------------------------------
def write_run(folder: Path, entries: list[dict[str, Any]], world: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    lines = b"".join(orjson.dumps(e) + b"\n" for e in entries)
    (folder / "journal.jsonl").write_bytes(lines)
    (folder / "state.json").write_bytes(orjson.dumps(world))
    return folder


@pytest.fixture
def tiny_library(tmp_path) -> tuple[Path, Path]:
    """One route and one event in the pacts; a run faulting both every way, and a run with a
    cancellation at each stage."""
    pacts = write_pact(
        tmp_path / "pacts",
        "wms",
        [_http("POST", "/fulfilment-orders/FO-1/cancel"), _message("order.picked")],
    )
    runs = tmp_path / "runs"
    path = "/fulfilment-orders/FO-000001/cancel"
    faulted = [request("POST", path, kind) for kind in cells.RESPONSE_FAULTS]
    faulted += [
        delivery("order.picked", label)
        for label in ("duplicate:2", "duplicate:2+new-ids", "reorder:600s", "late:600s")
    ]
    faulted.append(delivery("order.picked", "replayed:600s+signed-86400s-ago"))
    write_run(runs / "faults_everywhere", faulted, {})
    world = state(
        [erp_order(f"SO-{n}", "08:05") for n in range(1, 5)],
        [
            wms_order("FO-2", "SO-2", ("accepted", "08:01")),
            wms_order("FO-3", "SO-3", ("accepted", "08:01"), ("picked", "08:03")),
            wms_order("FO-4", "SO-4", ("accepted", "08:01"), ("packed", "08:04")),
        ],
    )
    write_run(runs / "cancellations", [], world)
    return pacts, runs


def test_a_cell_goes_uncovered_when_the_run_covering_it_is_removed(tiny_library, capsys):
    pacts, runs = tiny_library
    argv = ["coverage", "--runs", str(runs), "--pacts", str(pacts), "--format", "json"]
    assert main(argv) == 0
    full = json.loads(capsys.readouterr().out)
    assert (full["covered"], full["cells"], full["uncovered"]) == (4 + 5 + 4, 13, [])
    stage_rows = full["families"][CANCELLATIONS]["rows"]
    assert {r["row"]: r["cells"][CANCELLED] for r in stage_rows}[PICKING] == ["cancellations"]

    for file in (runs / "cancellations").iterdir():
        file.unlink()
    (runs / "cancellations").rmdir()
    assert main(argv) == 1
    after = json.loads(capsys.readouterr().out)
    assert after["covered"] == 9
    assert {"family": CANCELLATIONS, "row": PICKING, "column": CANCELLED} in after["uncovered"]

    assert main(argv[:-2]) == 1  # the table names the runs, and no one for what nobody plays
    table = capsys.readouterr().out
    assert "faults_everywhere" in table and "-- none --" in table
    assert table.rstrip().endswith("9 of 13 cells covered")


def test_a_route_the_runs_call_is_a_row_though_no_pact_names_it(tiny_library, capsys):
    pacts, runs = tiny_library
    write_run(runs / "labels", [request("POST", "/fulfilment-orders/FO-7/label", "error:503")], {})
    assert main(["coverage", "--runs", str(runs), "--pacts", str(pacts), "--format", "json"]) == 1
    found = json.loads(capsys.readouterr().out)
    rows = {r["row"]: r for r in found["families"][ROUTES]["rows"]}
    label = rows["wms POST /fulfilment-orders/{fo_id}/label"]
    assert label["sources"] == ["runs"] and label["cells"]["error"] == ["labels"]
    assert label["cells"]["lost_response"] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["coverage", "--runs", "/nowhere/at/all"],
        ["coverage", "--scenarios", "/nowhere/at/all"],
        ["coverage", "--format", "xml"],
        ["coverage", "--runs", ".", "--stack-url", "http://127.0.0.1:9"],
        ["coverage", "--stack-url", "http://127.0.0.1:9", "--stack-cmd", "true"],
        ["coverage", "--pacts", "/nowhere/at/all", "--runs", "."],
    ],
)
def test_coverage_misuse_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("twinyard: error: "), err


def test_a_folder_without_runs_is_misuse(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["coverage", "--runs", str(tmp_path / "empty")]) == 2
    assert "no journal.jsonl" in capsys.readouterr().err


TINY_DAY = """
name: tiny_double_releases
seed: 3
start: 2026-11-23T08:00:00Z
horizon_days: 1
demand: {orders: 4, open: "08:00", close: "09:00"}
catalogue: {skus: 5, initial_stock: 50}
warehouse: {pickers: 2, packers: 2, short_pick_rate: 0.0}
faults:
  - {system: erp, kind: duplicate, event: order.released}
"""


@pytest.mark.e2e
def test_a_played_library_is_judged_from_its_real_journals(tmp_path, capsys):
    library = tmp_path / "library"
    library.mkdir()
    (library / "tiny_double_releases.yaml").write_text(TINY_DAY)
    report = tmp_path / "reports"
    argv = ["coverage", "--scenarios", str(library), "--report-dir", str(report)]
    assert main([*argv, "--jobs", "1", "--format", "json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["runs"][0]["scenario"] == "tiny_double_releases"
    assert found["runs"][0]["exit_code"] in (0, 1)  # a day cut short at midnight may fail
    rows = {r["row"]: r["cells"] for r in found["families"][EVENTS]["rows"]}
    assert rows["erp order.released"]["duplicate"] == ["tiny_double_releases"]
    assert rows["erp order.released"]["duplicate new_ids"] == []
    # the same report folders read back give the same map
    assert main(["coverage", "--runs", str(report), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["families"] == found["families"]
