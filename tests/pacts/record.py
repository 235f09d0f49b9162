"""Run the consumer cases against Pact's mock provider and write the pact files.

``python -m tests.pacts.record contracts/pacts`` rewrites the committed pacts (``make pacts``);
the tests run the same cases into a temporary folder and compare.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from pact import Pact, match

from reference_stack.app import parse_event
from reference_stack.clients import Outcome, Vendors
from reference_stack.handlers import handle
from reference_stack.store import Store
from tests.pacts.interactions import (
    CONSUMER,
    HTTP,
    MESSAGES,
    HttpCase,
    MessageCase,
    envelope,
)


class ConsumerMismatch(AssertionError):
    """The stack did not read the answer (or the event) the way the case says it must."""


def new_pact(provider: str) -> Pact:
    return Pact(CONSUMER, provider).with_specification("V4")


def record_http(case: HttpCase, pact_dir: Path) -> Outcome:
    """Declare the interaction, run the stack's client against the mock, write the pact."""
    pact = new_pact(case.provider)
    interaction = pact.upon_receiving(case.description)
    for state, params in case.states:
        interaction.given(state, **params)
    interaction.with_request(case.method, case.path)
    if case.query:
        interaction.with_query_parameters(case.query)
    interaction.with_header("X-Correlation-Id", match.str("corr-SO-000001-0a1b2c3d"))
    if case.keyed:
        interaction.with_header("Idempotency-Key", match.str("wms-create-SO-000001"))
    if case.body is not None:
        interaction.with_body(case.body, content_type="application/json")
    interaction.will_respond_with(case.status)
    if case.response is not None:
        interaction.with_body(case.response, content_type="application/json")
    with pact.serve() as server:
        outcome = asyncio.run(_call(case, str(server.url)))
    if outcome.verdict is not case.verdict:
        raise ConsumerMismatch(
            f"{case.provider}: {case.description}: the stack read HTTP {outcome.status} as "
            f"{outcome.verdict.value}, expected {case.verdict.value} ({outcome.error})"
        )
    pact.write_file(pact_dir)
    return outcome


async def _call(case: HttpCase, url: str) -> Outcome:
    vendors = Vendors({case.provider: url.rstrip("/")})
    try:
        return await case.call(vendors)
    finally:
        await vendors.aclose()


def record_message(case: MessageCase, pact_dir: Path) -> list[str]:
    """Declare the event, feed it to the stack's parser and handler, write the pact."""
    pact = new_pact(case.provider)
    interaction = pact.upon_receiving(case.description, "Async")
    for state, params in case.states:
        interaction.given(state, **params)
    interaction.with_body(envelope(case), content_type="application/json")
    started: list[str] = []

    def consume(body: Any, metadata: dict[str, Any]) -> None:
        started.extend(consume_event(case, str(body)))

    pact.verify(consume, "Async")
    if started != case.jobs:
        raise ConsumerMismatch(
            f"{case.provider}: {case.description}: the stack started {started}, "
            f"expected {case.jobs}"
        )
    pact.write_file(pact_dir)
    return started


def consume_event(case: MessageCase, body: str) -> list[str]:
    """The job kinds the stack's handler starts for this event, on a store that knows the
    parcels the case names."""
    event = parse_event(case.provider, body.encode())
    if event is None:
        raise ConsumerMismatch(f"{case.description}: the stack cannot parse the envelope {body}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "stack.db")
        try:
            for tracking_number, order_ref in case.known_parcels.items():
                store.ensure_order(order_ref, "corr")
                store.index_tracking(tracking_number, order_ref)
            with store.transaction():
                jobs = handle(store, event, frozenset())
            return [job.kind for job in jobs]
        finally:
            store.close()


def record_all(pact_dir: Path) -> list[Path]:
    """Every case, into fresh pact files in ``pact_dir`` (one per provider)."""
    pact_dir.mkdir(parents=True, exist_ok=True)
    for stale in pact_dir.glob(f"{CONSUMER}-*.json"):
        stale.unlink()
    for case in HTTP:
        record_http(case, pact_dir)
    for message in MESSAGES:
        record_message(message, pact_dir)
    return sorted(pact_dir.glob(f"{CONSUMER}-*.json"))


def comparable(path: Path) -> dict[str, Any]:
    """A pact without what changes from one pact-python release to the next."""
    pact = json.loads(path.read_text())
    pact.get("metadata", {}).pop("pactRust", None)
    pact.get("metadata", {}).pop("pactPython", None)
    pact["interactions"] = sorted(pact["interactions"], key=lambda i: i["description"])
    return pact


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path("contracts/pacts")
    with tempfile.TemporaryDirectory() as tmp:
        written = record_all(Path(tmp))
        target.mkdir(parents=True, exist_ok=True)
        for path in written:
            shutil.copy(path, target / path.name)
            print(f"{target / path.name}: {len(comparable(path)['interactions'])} interactions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
