"""`twinyard sims`: the four simulators on the wall clock, served until interrupted.

For a developer poking them by hand or pointing a stack under development at them; nothing is
played or judged. They are set up as a scenario's world sets them up (``build_simulators``,
the code a run uses: catalogue and stock, carrier API version, faults and the seed that keys
them), the scenario defaults when none is given. Time is the wall clock from the moment they
start: a scenario fault's ``at`` counts from then, and a fault sent live to
``POST /_sim/faults`` counts from when it is sent (``Simulator``'s control plane).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

import uvloop

from harness import hosting
from harness.runner import build_simulators
from harness.scenario import Scenario
from simulators.common.clock import WallClock

ALL_INTERFACES = "0.0.0.0"


def configure(
    scenario: Scenario,
    *,
    skus: int | None = None,
    stock: int | None = None,
    carrier_api_version: str | None = None,
    seed: int | None = None,
) -> Scenario:
    """``scenario`` with what was given explicitly (not None) laid over it."""
    update: dict[str, object] = {}
    catalogue = {"skus": skus, "initial_stock": stock}
    if given := {name: value for name, value in catalogue.items() if value is not None}:
        update["catalogue"] = scenario.catalogue.model_copy(update=given)
    if carrier_api_version is not None:
        update["carrier"] = scenario.carrier.model_copy(update={"api_version": carrier_api_version})
    if seed is not None:
        update["seed"] = seed
    return scenario.model_copy(update=update)


def serve(scenario: Scenario, *, host: str, port_base: int, as_env: bool) -> None:
    """Serve on ``host``, ports ``port_base``..+3, until interrupted (Ctrl-C); raises
    ``hosting.PortInUse`` when an address cannot be listened on."""
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve_forever(scenario, host, port_base, as_env))


async def _serve_forever(scenario: Scenario, host: str, port_base: int, as_env: bool) -> None:
    sims = build_simulators(scenario, WallClock())
    ports = [port_base + i for i in range(len(sims))]
    hosted = await hosting.serve(list(sims.values()), ports, host)
    try:
        for item in hosted:
            name, url = item.sim.system, client_url(item)
            print(f"TWINYARD_{name.upper()}_URL={url}" if as_env else f"{name:8} {url}")
        sys.stdout.flush()
        for line in notes(scenario, host, port_base):  # stderr: stdout stays URLs alone
            print(line, file=sys.stderr)
        sys.stderr.flush()
        await asyncio.Event().wait()
    finally:
        await hosting.shutdown(hosted)


def client_url(item: hosting.Hosted) -> str:
    """The URL a client uses: served on all interfaces, this machine's loopback address."""
    host = hosting.LOOPBACK if item.host == ALL_INTERFACES else item.host
    return f"http://{host}:{item.port}"


def notes(scenario: Scenario, host: str, port_base: int) -> list[str]:
    lines = []
    if host == ALL_INTERFACES:
        lines.append(
            f"reachable on all interfaces: from another container or machine use this "
            f"machine's address, e.g. http://{socket.gethostname()}:{port_base}"
        )
    if scenario.faults:
        lines.append(
            f"{len(scenario.faults)} fault(s) of {scenario.name}, their at counted from now: "
            "GET /_sim/faults lists when each opens and closes"
        )
    return lines
