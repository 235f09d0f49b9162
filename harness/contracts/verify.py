"""Verify pacts against the simulators, or against a vendor's sandbox, with Pact's verifier.

Against the simulators, each provider named by a pact is served over real HTTP on a free
port; provider states go to its control plane (``POST /_sim/provider-states``, with teardown
resetting it between interactions; closed by a token made for this verification, which the
verifier sends as ``X-Twinyard-Token``), and a message interaction is answered with the latest
event of its type the simulator sent while its states were set up. Every state is checked
against the vocabulary first, so an unknown one fails at once, naming the known ones.

Against a vendor (``provider_url``), the same pacts go to that URL, with the vendor's own
state-change URL if it has one; message interactions cannot be produced by a sandbox and are
reported as skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pact import Verifier

import simulators
from harness import hosting
from harness.contracts.pacts import MESSAGE, Interaction, PactError, files, load
from harness.report import junit_xml
from simulators import provider_states
from simulators.common.clock import WallClock
from simulators.common.guard import TOKEN_HEADER, Guard, new_token
from simulators.common.simulator import Simulator

# Pact's usage telemetry is off unless the user turned it on: a CI job here sends nothing.
os.environ.setdefault("PACT_DO_NOT_TRACK", "true")


class UnknownStates(PactError):
    """A pact names a provider state the simulator does not know: the contract cannot hold."""


@dataclass
class Outcome:
    """One interaction's verdict: passed, failed (with the mismatches) or skipped (why)."""

    interaction: Interaction
    status: str
    problems: list[str] = field(default_factory=list)


@dataclass
class Verification:
    outcomes: list[Outcome]
    output: str = ""

    @property
    def ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


# -- reading pacts ---------------------------------------------------------------------------
def consumer_name(source: Path) -> str:
    """The consumer the pacts speak for (the first one's, when several)."""
    return load(files(source)[0]).consumer


def by_provider(paths: list[Path], provider: str | None) -> dict[str, list[Path]]:
    grouped: dict[str, list[Path]] = {}
    for path in paths:
        name = load(path).provider
        if provider is None or name == provider:
            grouped.setdefault(name, []).append(path)
    if not grouped:
        raise PactError(f"no pact has the provider {provider!r}")
    return grouped


def interactions(paths: list[Path]) -> list[Interaction]:
    return [item for path in paths for item in load(path).interactions]


def check_states(system: str, found: list[Interaction]) -> None:
    """Fail at once on a state the simulator does not know (the verifier would retry it)."""
    for item in found:
        for state in item.states:
            if not state.strip():
                continue
            try:
                provider_states.find(system, state)
            except provider_states.UnknownState:
                known = "; ".join(provider_states.known(system))
                raise UnknownStates(
                    f"{system}: interaction {item.description!r}: unknown provider state "
                    f"{state!r}. Known states: {known}"
                ) from None


# -- verifying against the simulators --------------------------------------------------------
def verify_simulators(
    source: Path,
    provider: str | None = None,
    *,
    prepare: Callable[[Simulator], None] | None = None,
    quiet: bool = True,
) -> dict[str, Verification]:
    """Each provider's pacts against its simulator; a provider twinyard does not simulate is
    a ``PactError`` naming the ones it does. ``prepare`` may change a simulator before it is
    verified (tests give it a schema drift: "the vendor changed a field")."""
    grouped = by_provider(files(source), provider)
    for name, paths in grouped.items():
        if name not in simulators.SYSTEMS:
            raise PactError(
                f"{paths[0]}: provider {name!r} is not simulated; "
                f"known: {', '.join(simulators.SYSTEMS)}"
            )
        check_states(name, interactions(paths))
    return asyncio.run(_verify_all(grouped, prepare, quiet))


async def _verify_all(
    grouped: dict[str, list[Path]], prepare: Callable[[Simulator], None] | None, quiet: bool
) -> dict[str, Verification]:
    clock = WallClock()
    guard = Guard(token=new_token())  # provider states go to a closed control plane
    sims = [simulators.build(name, clock, guard=guard) for name in grouped]
    for sim in sims:
        if prepare is not None:
            prepare(sim)
    hosted = await hosting.serve(sims, [0] * len(sims))
    try:
        results = {}
        for item in hosted:
            system = item.sim.system
            url = f"http://{item.host}:{item.port}"
            states = f"{url}/_sim/provider-states"
            results[system] = await asyncio.to_thread(
                _verify, system, grouped[system], url, states, item.sim, quiet, guard.token
            )
        return results
    finally:
        await hosting.shutdown(hosted)


def _verify(
    system: str,
    paths: list[Path],
    url: str,
    state_url: str | None,
    sim: Simulator | None,
    quiet: bool = True,
    token: str | None = None,
) -> Verification:
    """Each pact file on its own verifier: the results name interactions by description,
    which is unique within a pact but not across two consumers' pacts. ``token``: the
    simulators' control-plane token (never sent to a vendor)."""
    verdicts, output = [], []
    for path in paths:
        one = _verify_file(system, path, url, state_url, sim, quiet, token)
        verdicts += one.outcomes
        output.append(one.output)
    return Verification(verdicts, "\n".join(output))


def _verify_file(
    system: str,
    path: Path,
    url: str,
    state_url: str | None,
    sim: Simulator | None,
    quiet: bool,
    token: str | None = None,
) -> Verification:
    found = interactions([path])
    verifier = Verifier(system, host=urlsplit(url).hostname).add_transport(url=url)
    if token is not None:
        # Sent on every request, state changes included; our own header, so a vendor's
        # Authorization in a pact's request is never replaced.
        verifier.add_custom_header(TOKEN_HEADER, token)
    if state_url:
        verifier.state_handler(state_url, teardown=True, body=True)
    if sim is not None and any(i.kind == MESSAGE for i in found):
        verifier.message_handler(_producer(sim, found))
    verifier.add_source(path)
    # The Rust verifier prints its own report (we keep ours) and raises on a failure (which
    # the results describe).
    with silenced_stdout(quiet), contextlib.suppress(RuntimeError):
        verifier.verify()
    return Verification(outcomes(found, verifier.results), verifier.output(strip_ansi=True))


@contextlib.contextmanager
def silenced_stdout(quiet: bool) -> Iterator[None]:
    """Descriptors 1 and 2 to /dev/null: the verifier writes its report there from native
    code, and pact-python's message server logs each request."""
    if not quiet:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        for fd, copy in enumerate(saved, 1):
            os.dup2(copy, fd)
            os.close(copy)


def _producer(sim: Simulator, found: list[Interaction]) -> Any:
    """The message for an interaction: the latest event of its type the simulator sent."""
    types = {i.description: i for i in found if i.kind == MESSAGE}

    def produce(name: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        item = types.get(name)
        if item is None or item.event_type is None:
            raise KeyError(f"{name!r}: the pact's message names no event type")
        body = sim.webhooks.latest.get(item.event_type)
        if body is None:
            raise KeyError(
                f"{sim.system} sent no {item.event_type} event while setting up "
                f"{list(item.states) or 'no state'}"
            )
        return {
            "contents": body,
            "metadata": {"contentType": "application/json"},
            "content_type": "application/json",
        }

    return produce


# -- verifying against a vendor --------------------------------------------------------------
def verify_url(
    source: Path,
    provider: str,
    provider_url: str,
    state_url: str | None = None,
    *,
    quiet: bool = True,
) -> Verification:
    """The pacts of ``provider`` against a running vendor; messages are skipped."""
    paths = by_provider(files(source), provider)[provider]
    found = interactions(paths)
    skipped = [
        Outcome(i, "skipped", ["a message: a sandbox cannot be asked to send it"])
        for i in found
        if i.kind == MESSAGE
    ]
    with tempfile.TemporaryDirectory() as tmp:
        http_only = [_without_messages(p, Path(tmp)) for p in paths]
        http_only = [p for p in http_only if p is not None]
        if not http_only:
            return Verification(skipped)
        url = provider_url.rstrip("/")
        result = _verify(provider, http_only, url, state_url, None, quiet)
    result.outcomes += skipped
    return result


def _without_messages(path: Path, tmp: Path) -> Path | None:
    pact = json.loads(path.read_text())
    pact["interactions"] = [item for item in pact.get("interactions", []) if "request" in item]
    if not pact["interactions"]:
        return None
    copy = tmp / path.name
    copy.write_text(json.dumps(pact))
    return copy


# -- reading the verifier's results ----------------------------------------------------------
def outcomes(found: list[Interaction], results: dict[str, Any]) -> list[Outcome]:
    """Each interaction with the verifier's mismatches for it, in words that name the field.
    An interaction the verifier did not report on (it stopped early) counts as failed."""
    reported = {r.get("description"): r for r in results.get("interactionResults") or []}
    verdicts = []
    for item in found:
        result = reported.get(item.description)
        if result is None:
            verdicts.append(Outcome(item, "failed", ["not verified (the verifier stopped)"]))
        elif result.get("result") == "OK":
            verdicts.append(Outcome(item, "passed"))
        else:
            verdicts.append(Outcome(item, "failed", describe(result.get("mismatch") or {})))
    return verdicts


def describe(mismatch: dict[str, Any]) -> list[str]:
    """The verifier's mismatch report as one line per problem."""
    if mismatch.get("type") == "error":
        return [str(mismatch.get("message", "error"))]
    lines = []
    for item in mismatch.get("mismatches") or []:
        where = item.get("path") or item.get("key") or item.get("type", "")
        message = item.get("mismatch") or item.get("description") or json.dumps(item)
        where = re.sub(r"^\$\.?", "", str(where)) or "body"
        lines.append(f"{item.get('type', 'mismatch')} {where}: {message}")
    return lines or [json.dumps(mismatch)[:500]]


# -- JUnit -----------------------------------------------------------------------------------
def write_junit(results: dict[str, Verification], path: Path) -> Path:
    """One test suite per provider, one test case per interaction (a CI page shows each)."""
    suites = []
    for provider, verification in results.items():
        name = f"pact.{provider}"
        cases = [
            junit_xml.Case(
                name,
                o.interaction.description,
                failure="; ".join(o.problems) if o.status == "failed" else None,
                text="\n".join(o.problems) if o.status == "failed" else "",
                skipped="; ".join(o.problems) if o.status == "skipped" else None,
            )
            for o in verification.outcomes
        ]
        suites.append(junit_xml.Suite(name, cases))
    return junit_xml.write(path, "twinyard contracts verify", suites)
