"""Digests that say "the same" without a diff: of a scenario, and of a day's business outcome.

The outcome digest covers what the business sees, keyed by business identity (order, line,
SKU), never by the ids simulators hand out in arrival order (goods-issue numbers, fulfilment
ids, tracking numbers): two runs whose stacks did the same to the business get the same
digest, however they interleaved their calls.
"""

from __future__ import annotations

from typing import Any

import orjson

from harness.compare.outcome import business_outcome
from harness.oracles.view import SystemsView
from simulators.common.journal import body_digest


def digest(value: Any) -> str:
    """The journal's body digest of ``value`` as canonical JSON (keys sorted)."""
    return body_digest(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def outcome(view: SystemsView) -> str:
    """The digest of the business outcome ``twinyard compare`` compares, record by record
    (``harness.compare.outcome``): one definition of "what the stack did to the business"."""
    found = business_outcome(view)
    # Dead letters are the stack's own list, which not every stack has: not in the digest.
    found.pop("dead_letter", None)
    return digest(found)
