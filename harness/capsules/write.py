"""The capsule file: a scenario YAML with a header saying where it came from.

What is written is validated as the harness will read it (``harness.scenario.parse``), so a
capsule that ``twinyard import`` hands over always loads; a reconstruction the schema refuses
is an error here, naming the field, never a file that fails later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness import scenario as scenarios
from harness.capsules.reconstruct import Reconstruction


class CapsuleError(Exception):
    """The reconstruction does not make a valid scenario (a bug, or evidence too large)."""


class _Dumper(yaml.SafeDumper):
    """Never anchors and aliases: a capsule is read by people (and scenario_yaml caps aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(result: Reconstruction) -> str:
    """The capsule's text: header comment lines, then the scenario."""
    unmapped = result.unmapped
    header = [
        f"# CAPSULE: imported by `twinyard import` from {', '.join(result.sources)}"
        f" ({', '.join(dict.fromkeys(result.kinds))})",
    ]
    if result.original:
        header.append(f"# world sections from the run's scenario {result.original}")
    header.append(
        f"# orders {result.orders}, timeline entries {result.timeline}, faults {result.faults}, "
        f"unmapped {len(unmapped)}"
    )
    for line in unmapped[:10]:
        header.append(f"# unmapped: {_one_line(line)}")
    if len(unmapped) > 10:
        header.append(f"# ... {len(unmapped) - 10} more under capsule.unmapped")
    body = yaml.dump(
        result.data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=100,
    )
    return "\n".join(header) + "\n" + body


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def validate(text: str, filename: str) -> scenarios.Scenario:
    try:
        return scenarios.parse(text, filename)
    except scenarios.ScenarioError as exc:
        first = exc.lines[0] if exc.lines else str(exc)
        more = f" (and {len(exc.lines) - 1} more)" if len(exc.lines) > 1 else ""
        raise CapsuleError(f"the capsule would not load: {first}{more}") from None


def write(result: Reconstruction, out: Path) -> scenarios.Scenario:
    """Render, validate and write the capsule; the scenario as the harness will load it."""
    text = render(result)
    loaded = validate(text, str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as exc:
        raise CapsuleError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return loaded


def data_of(text: str) -> Any:
    """The scenario data of a capsule's text (for tests and tools)."""
    return yaml.safe_load(text)
