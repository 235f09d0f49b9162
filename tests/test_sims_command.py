"""`twinyard sims`: four simulators on fixed ports, their URLs printed for a stack's config."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import httpx
import pytest

from tests.support import four_free_ports


def test_sims_env_prints_one_variable_per_system_and_they_answer():
    base = four_free_ports()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sims", "--env", "--port-base", str(base)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines == [
            f"TWINYARD_{system}_URL=http://127.0.0.1:{base + i}"
            for i, system in enumerate(("ERP", "WMS", "TMS", "CARRIER"))
        ]
        for i, system in enumerate(("erp", "wms", "tms", "carrier")):
            health = httpx.get(f"http://127.0.0.1:{base + i}/_sim/health").json()
            assert health["system"] == system and health["status"] == "ok"
        stock = httpx.get(f"http://127.0.0.1:{base + 1}/inventory/SKU-00001").json()
        assert stock == {"sku": "SKU-00001", "on_hand": 500}
    finally:
        proc.terminate()
        proc.wait(10)


def test_sims_can_serve_the_carriers_v2():
    base = four_free_ports()
    args = ["sims", "--env", "--port-base", str(base), "--carrier-api-version", "v2"]
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE)
    try:
        for _ in range(4):
            proc.stdout.readline()
        carrier = f"http://127.0.0.1:{base + 3}"
        assert httpx.get(f"{carrier}/_sim/health").json()["api_version"] == "v2"
        refused = httpx.post(f"{carrier}/labels", json={"shipment_ref": "SH-1"}).json()
        fields = {e["field"] for e in refused["error"]["details"]["errors"]}
        assert "label_format" in fields
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_unknown_carrier_version_is_one_line_and_exit_2():
    done = subprocess.run(
        [sys.executable, "-m", "harness", "sims", "--carrier-api-version", "v3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "twinyard: error: --carrier-api-version 'v3': known versions are v1, v1.1, v2"
    ]


def _sims(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "sims", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


SMALL_SHOP = """\
name: small_shop
seed: 5
catalogue: {skus: 3, initial_stock: 7}
carrier: {api_version: v2}
faults:
  - {system: tms, route: /shipments, kind: error, status: 502, for: 3600}
  - {system: carrier, kind: outage, at: "10:00", for: 600}
"""


def test_sims_scenario_sets_the_simulators_up_as_its_world_and_options_override_it(tmp_path):
    scenario = tmp_path / "small_shop.yaml"
    scenario.write_text(SMALL_SHOP)
    base = four_free_ports()
    proc = _sims("--env", "--port-base", str(base), "--scenario", str(scenario), "--stock", "9")
    try:
        urls = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(4))
        erp, wms = urls["TWINYARD_ERP_URL"], urls["TWINYARD_WMS_URL"]
        tms, carrier = urls["TWINYARD_TMS_URL"], urls["TWINYARD_CARRIER_URL"]
        assert "2 fault(s) of small_shop" in proc.stderr.readline()
        shelves = [{"sku": f"SKU-0000{i}", "on_hand": 9} for i in (1, 2, 3)]  # --stock wins
        for keeper in (erp, wms):
            assert httpx.get(f"{keeper}/inventory").json()["items"] == shelves
        assert httpx.get(f"{carrier}/_sim/health").json()["api_version"] == "v2"
        # the scenario's faults, counted from the simulators' start
        assert httpx.get(f"{tms}/shipments/SH-1").status_code == 502
        [outage] = httpx.get(f"{carrier}/_sim/faults").json()["items"]
        assert outage["kind"] == "outage" and outage["at"] == 36_000.0
        started = datetime.fromisoformat(httpx.get(f"{carrier}/_sim/health").json()["clock"])
        opens = datetime.fromisoformat(outage["opens_at"])
        assert abs((opens - started).total_seconds() - 36_000) < 5
        assert httpx.get(f"{carrier}/tracking/X").status_code == 404  # not open yet
    finally:
        _stop(proc)


def test_sims_options_override_the_scenario_and_the_seed_keys_its_faults():
    from harness import sims
    from harness.runner import build_simulators
    from harness.scenario import parse
    from simulators.common.clock import WallClock

    scenario = parse(SMALL_SHOP)
    assert sims.configure(scenario) == scenario
    changed = sims.configure(scenario, skus=2, carrier_api_version="v1.1", seed=9)
    assert changed.catalogue.skus == 2 and changed.catalogue.initial_stock == 7
    assert changed.carrier.api_version == "v1.1" and changed.seed == 9
    built = build_simulators(changed, WallClock())
    assert {s.faults.seed for s in built.values()} == {9}
    assert built["carrier"].api_version == "v1.1"
    assert [len(s.faults.faults) for s in built.values()] == [0, 0, 1, 1]


def test_sims_on_all_interfaces_prints_a_url_a_client_can_use():
    base = four_free_ports("0.0.0.0")
    proc = _sims("--env", "--host", "0.0.0.0", "--port-base", str(base))
    try:
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines == [
            f"TWINYARD_{system}_URL=http://127.0.0.1:{base + i}"
            for i, system in enumerate(("ERP", "WMS", "TMS", "CARRIER"))
        ]
        note = proc.stderr.readline()
        assert note.startswith("reachable on all interfaces") and f":{base}" in note
        assert httpx.get(f"http://127.0.0.1:{base}/_sim/health").json()["system"] == "erp"
        if sys.platform == "linux":  # 127.0.0.2 is this machine too, reached only via 0.0.0.0
            health = httpx.get(f"http://127.0.0.2:{base + 3}/_sim/health").json()
            assert health["system"] == "carrier"
    finally:
        _stop(proc)


def test_sims_on_loopback_is_not_reachable_on_other_addresses():
    if sys.platform != "linux":
        pytest.skip("127.0.0.2 is routed to this machine on Linux only")
    base = four_free_ports()
    proc = _sims("--env", "--port-base", str(base))
    try:
        assert proc.stdout.readline().strip() == f"TWINYARD_ERP_URL=http://127.0.0.1:{base}"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.2:{base}/_sim/health")
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "catalogue:\n  skus: 0\n",
            ":2: catalogue.skus: Input should be greater than or equal to 1",
        ),
        (None, ": no such scenario file"),
    ],
    ids=["invalid", "missing"],
)
def test_a_broken_scenario_is_one_line_and_exit_2(tmp_path, text, problem):
    scenario = tmp_path / "broken.yaml"
    if text is not None:
        scenario.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "sims", "--scenario", str(scenario)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"twinyard: error: {scenario}{problem}"]
    assert done.stdout == ""
