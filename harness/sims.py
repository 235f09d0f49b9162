"""`twinyard sims`: the four simulators on the wall clock, served until interrupted.

For a developer poking them by hand or pointing a stack under development at them; nothing is
played or judged. They are set up as a scenario's world sets them up (``build_simulators``,
the code a run uses: catalogue and stock, carrier API version, faults and the seed that keys
them), the scenario defaults when none is given. Time is the wall clock from the moment they
start: a scenario fault's ``at`` counts from then, and a fault sent live to
``POST /_sim/faults`` counts from when it is sent (``Simulator``'s control plane).

Their control plane is closed (``simulators.common.guard``): writes to ``/_sim/`` need the
token printed with the URLs (``--control-token`` or ``TWINYARD_CONTROL_TOKEN`` to choose it, a
new one each start otherwise). ``--no-token`` opens it, on loopback only: listening beyond
loopback always takes a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Iterable

import uvloop

from harness import hosting
from harness.runner import build_simulators
from harness.scenario import Scenario
from simulators.common.clock import WallClock
from simulators.common.guard import (
    TOKEN_ENV,
    Guard,
    is_loopback,
    names,
    new_token,
    usable_token,
    webhook_allow_from_env,
)

ALL_INTERFACES = "0.0.0.0"


class Misuse(Exception):
    """Options that cannot go together (a usage error)."""


def make_guard(
    host: str,
    *,
    token: str | None = None,
    no_token: bool = False,
    allow_hosts: Iterable[str] = (),
    webhook_allow: Iterable[str] = (),
) -> Guard:
    """The simulators' guard: ``token`` (a new one when None), none with ``no_token`` (on
    loopback only), extra Host names, and the hosts webhooks may call beyond loopback (with
    ``TWINYARD_WEBHOOK_ALLOW``'s)."""
    if no_token and token is not None:
        raise Misuse(
            f"--no-token and a control token (--control-token or {TOKEN_ENV}) were both given"
        )
    if token is not None and not usable_token(token):
        raise Misuse("--control-token must be visible ASCII characters, no spaces (not empty)")
    if no_token and not is_loopback(host):
        raise Misuse(
            f"--host {host} needs a control-plane token: anyone who can reach it could reset "
            "or break the simulators; drop --no-token"
        )
    return Guard(
        token=None if no_token else token or new_token(),
        hosts=names(allow_hosts),
        webhook_hosts=webhook_allow_from_env() | names(webhook_allow),
    )


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


def serve(
    scenario: Scenario, *, host: str, port_base: int, as_env: bool, guard: Guard | None = None
) -> None:
    """Serve on ``host``, ports ``port_base``..+3, until interrupted (Ctrl-C); raises
    ``hosting.PortInUse`` when an address cannot be listened on. ``guard``: a new token."""
    guard = guard or make_guard(host)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve_forever(scenario, host, port_base, as_env, guard))


async def _serve_forever(
    scenario: Scenario, host: str, port_base: int, as_env: bool, guard: Guard
) -> None:
    sims = build_simulators(scenario, WallClock(), guard)
    ports = [port_base + i for i in range(len(sims))]
    hosted = await hosting.serve(list(sims.values()), ports, host)
    try:
        for item in hosted:
            name, url = item.sim.system, client_url(item)
            print(f"TWINYARD_{name.upper()}_URL={url}" if as_env else f"{name:8} {url}")
        if guard.token is not None:  # after the URLs: a reader of four lines still gets them
            print(f"{TOKEN_ENV}={guard.token}" if as_env else f"{'token':8} {guard.token}")
        sys.stdout.flush()
        lines = notes(scenario, host, port_base) + token_notes(guard)
        for line in lines:  # stderr: stdout stays URLs (and the token) alone
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


def token_notes(guard: Guard) -> list[str]:
    if guard.token is None:
        return [
            "the control plane is open (--no-token): any program on this machine may reset "
            "or break the simulators"
        ]
    return [
        f"writes to /_sim/ (faults, reset, provider states) need the token: "
        f'-H "Authorization: Bearer ${TOKEN_ENV}" and a JSON body'
    ]
