"""Business invariants judged from simulator state and journals (never from the stack)."""

from __future__ import annotations

# Importing registers the oracles; registration order is report order.
# isort: off
from harness.oracles import orders, shipping, stock  # noqa: F401
from harness.oracles import integrity, retries  # noqa: F401
from harness.oracles import returns  # noqa: F401
from harness.oracles import masterdata  # noqa: F401
from harness.oracles import sites  # noqa: F401
from harness.oracles import lineage_table  # noqa: F401

# isort: on
from harness.oracles.base import REGISTRY, Oracle, OracleResult
from harness.oracles.view import SystemsView


def select(names: list[str] | None) -> list[Oracle]:
    """The named oracles (all when None); an unknown name is a configuration error."""
    if names is None:
        return list(REGISTRY.values())
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown oracle(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return [REGISTRY[n] for n in names]


def judge(view: SystemsView, names: list[str] | None = None) -> list[OracleResult]:
    return [o.judge(view) for o in select(names)]


__all__ = ["REGISTRY", "Oracle", "OracleResult", "SystemsView", "judge", "select"]
