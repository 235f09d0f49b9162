"""`twinyard sims`: four simulators on fixed ports, their URLs printed for a stack's config."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx


def _four_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + 3 > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no four consecutive free ports")


def test_sims_env_prints_one_variable_per_system_and_they_answer():
    base = _four_free_ports()
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
    base = _four_free_ports()
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
