"""Each simulator against its own OpenAPI in all four Schemathesis phases, over real HTTP.

``test_openapi_conformance.py`` fuzzes operations one at a time in process; this runs the
engine ``st run`` uses (examples, coverage, fuzzing, then stateful sequences of calls) with
every check against a simulator served by uvicorn on an ephemeral port, and counts the cases
of each phase (printed with ``pytest -s``; ``benchmarks/conformance_cases.py`` prints the
same run as a table).

The control plane (``/_sim/``) is in each spec and is fuzzed too. What it changes is put back,
so that later cases see the simulator the contract describes: a fault the fuzzer added is
cleared after the call, and a reset seeds the examples' entities again. The simulator is
served without ``hosting.serve``: no ``down`` outage is armed (the simulator refuses one with
422) and no webhook is ever delivered to a URL the fuzzer made up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

import simulators
from harness.contracts.schemathesis_run import PHASES, EngineRun, run_engine
from harness.hosting import bind, start_server
from simulators.common.clock import ManualClock
from simulators.common.simulator import Simulator
from tests.support import LoopThread

SPECS = Path(__file__).resolve().parent.parent / "contracts" / "openapi"
# per operation in fuzzing; stateful runs scale with it too. 30 (40 before 2026-12-06) keeps
# `make test` inside its 15-minute budget on 2 cores; for a deeper run:
# `benchmarks/conformance_cases.py --max-examples 100`.
MAX_EXAMPLES = 30
CONTROL = "/_sim/"


# Each simulator against its spec, and the carrier's newer APIs against theirs.
TARGETS = (*simulators.SYSTEMS, "carrier.v1.1", "carrier.v2")


def build(target: str) -> Simulator:
    """A simulator holding the entities its spec's examples name (SO-000001 ...), again after
    every reset (``POST /_sim/reset``, a provider-state teardown). ``carrier.v2`` is the
    carrier serving API v2."""
    system, _, version = target.partition(".")
    options = {"api_version": version} if version else {}
    sim = simulators.build(system, ManualClock(), **options)
    sim.model.seed_examples()
    plain_reset = sim.reset

    def reset() -> None:
        plain_reset()
        sim.model.seed_examples()

    sim.reset = reset  # type: ignore[method-assign]
    return sim


@contextmanager
def served(app: ASGIApp) -> Iterator[tuple[str, LoopThread]]:
    """``app`` over HTTP on an ephemeral loopback port."""
    loop = LoopThread()
    sock = bind("127.0.0.1", 0)
    server = loop.run(_start(app, sock))
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}", loop
    finally:
        loop.run(_stop(server, sock))
        loop.close()


async def _start(app: ASGIApp, sock: Any) -> Any:
    return await start_server(app, sock)


async def _stop(server: Any, sock: Any) -> None:
    server.should_exit = True
    await server.shutdown(sockets=[sock])
    sock.close()


def config(url: str, max_examples: int) -> SchemathesisConfig:
    """All phases, all checks; a request that fits the schema may still be refused for
    business reasons (an unknown SKU, an order in the wrong state): those are documented."""
    return SchemathesisConfig.from_dict(
        {
            "base-url": url,
            "seed": 1,
            "generation": {"max-examples": max_examples},
            "phases": {phase: {"enabled": True} for phase in PHASES},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422"]}
            },
        }
    )


def schema_for(system: str, url: str, sim: Simulator, loop: LoopThread, max_examples: int) -> Any:
    schema = schemathesis.openapi.from_path(
        SPECS / f"{system}.yaml", config=config(url, max_examples)
    )

    def after_call(context: Any, case: Any, response: Any) -> None:
        """Clear the faults a control-plane call added, before the next case is sent."""
        if case.path.startswith(CONTROL) and case.method.upper() != "GET":
            loop.run(_clear_faults(sim))

    schema.hook(after_call)
    return schema


async def _clear_faults(sim: Simulator) -> None:
    sim.faults.clear()  # on the simulator's loop, between two requests


def run_system(
    system: str,
    max_examples: int = MAX_EXAMPLES,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
) -> EngineRun:
    """One simulator, built fresh, through every phase (``wrap``: around its app, to check
    that a broken answer is found)."""
    sim = build(system)
    with served(wrap(sim.app) if wrap else sim.app) as (url, loop):
        return run_engine(schema_for(system, url, sim, loop, max_examples))


def summary(system: str, run: EngineRun) -> str:
    parts = [f"{p} {t.cases} cases ({t.seconds:.1f} s)" for p, t in run.phases.items()]
    return f"{system}: " + ", ".join(parts) + f"; {len(run.findings)} findings"


@pytest.mark.long(25)
@pytest.mark.conformance
@pytest.mark.parametrize("system", TARGETS)
def test_every_phase_runs_and_finds_nothing(system: str) -> None:
    run = run_system(system)
    print(summary(system, run))
    assert list(run.phases) == list(PHASES), "a phase was skipped"
    assert all(tally.cases > 0 for tally in run.phases.values()), run.phases
    found = [f"{f.case}: {f.problem} -> {f.status} {f.body}\n{f.request}" for f in run.findings]
    assert found == []


@pytest.mark.conformance
def test_a_broken_answer_is_found() -> None:
    """The run above can fail: a label read answering an undocumented 418 is found."""

    def teapot(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/labels/"):
                await JSONResponse({"error": "teapot"}, 418)(scope, receive, send)
            else:
                await app(scope, receive, send)

        return wrapped

    run = run_system("carrier", max_examples=5, wrap=teapot)
    problems = {(f.case.split(": ", 1)[1], f.problem, f.status) for f in run.findings}
    undocumented = "status_code_conformance: Undocumented status code"
    assert ("GET /labels/{label_id}", undocumented, 418) in problems
