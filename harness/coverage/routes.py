"""A called path, normalised to the OpenAPI path template it falls under.

``POST /orders/SO-000042/goods-issue`` on the ERP is the route
``POST /orders/{order_id}/goods-issue``: one row of the map however many orders went through
it. The templates come from the simulators' published contracts (``contracts/openapi/``):
every version a system serves (``carrier.yaml``, ``carrier.v2.yaml`` ...), so a run against a
vendor's next version is read as well. A path no contract documents for its method is not a
route of the map (the simulator answered it 404 or 405).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

import simulators
from harness import bundled

DEFAULT_OPENAPI = bundled.OPENAPI
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_BUSINESS = ("/_sim", "/webhooks")  # the control plane and subscriptions: never a cell
# YAML's C loader when there is one: the six contracts load in a fraction of the time.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def is_business_write(method: str, path: str) -> bool:
    """A call that changes a vendor's business state: a write method off the control plane
    and the webhook subscriptions."""
    if method.upper() not in WRITE_METHODS:
        return False
    bare = path.split("?", 1)[0]
    return not any(bare == p or bare.startswith(p + "/") for p in NOT_BUSINESS)


@dataclass(frozen=True)
class _Template:
    text: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    parameters: int  # a literal segment wins over a parameter


class Templates:
    """The path templates each system documents, with the methods each accepts."""

    def __init__(self, specs: dict[str, list[dict[str, Any]]]) -> None:
        self._by_system: dict[str, list[tuple[str, _Template]]] = {}
        for system, documents in specs.items():
            found: dict[tuple[str, str], _Template] = {}
            for spec in documents:
                for base in _bases(spec):
                    for text, item in (spec.get("paths") or {}).items():
                        if not isinstance(item, dict):
                            continue
                        methods = frozenset(m.upper() for m in item if m in _METHODS)
                        previous = found.get((base, str(text)))
                        if previous is not None:
                            methods |= previous.methods
                        found[(base, str(text))] = _Template(
                            str(text), _pattern(str(text)), methods, str(text).count("{")
                        )
            self._by_system[system] = [(base, t) for (base, _), t in found.items()]

    @classmethod
    def load(cls, folder: Path = DEFAULT_OPENAPI) -> Templates:
        """Every ``<system>.yaml`` and ``<system>.<version>.yaml`` of the contracts folder."""
        specs: dict[str, list[dict[str, Any]]] = {}
        for system in simulators.SYSTEMS:
            for file in sorted(folder.glob(f"{system}.yaml")) + sorted(
                folder.glob(f"{system}.*.yaml")
            ):
                document = yaml.load(file.read_text(), Loader=_LOADER)
                if isinstance(document, dict):
                    specs.setdefault(system, []).append(document)
        return cls(specs)

    def match(self, system: str, method: str, path: str) -> str | None:
        """The template of ``path`` for ``method`` on ``system``, or None when no contract of
        the system documents that operation."""
        bare = path.split("?", 1)[0].rstrip("/") or "/"
        best: tuple[int, str] | None = None
        for base, template in self._by_system.get(system, ()):
            if method.upper() not in template.methods:
                continue
            if base and not (bare == base or bare.startswith(base + "/")):
                continue
            rest = bare[len(base) :] or "/"
            if template.pattern.fullmatch(rest) and (best is None or template.parameters < best[0]):
                best = (template.parameters, template.text)
        return None if best is None else best[1]


def _bases(spec: dict[str, Any]) -> list[str]:
    """The base paths the spec's servers put in front of its paths ("" always)."""
    found = {urlparse(str(s.get("url", ""))).path.rstrip("/") for s in spec.get("servers") or []}
    return ["", *sorted(b for b in found if b)]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}/]+\}", template.rstrip("/") or "/")
    return re.compile("[^/]+".join(re.escape(part) for part in parts))
