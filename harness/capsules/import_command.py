"""``twinyard import``: a capsule (a scenario file) from what an incident left behind.

The command's body, so ``harness.cli`` stays a thin layer: read every piece of evidence into
one neutral form, reconstruct the scripted day, write and validate the capsule, and say in
one summary line what it holds. Misuse and unreadable evidence are ``ImportProblem``: one
line, exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.capsules import evidence as evidences
from harness.capsules import reconstruct as reconstructing
from harness.capsules import write as writing

SYSTEMS = evidences.SYSTEMS


class ImportProblem(Exception):
    """Misuse or evidence that cannot be read: one line for the user."""


@dataclass
class Imported:
    out: Path
    result: reconstructing.Reconstruction

    def summary(self) -> str:
        r = self.result
        kinds = ", ".join(dict.fromkeys(r.kinds))
        return (
            f"imported {len(r.sources)} piece(s) of evidence ({kinds}): "
            f"orders {r.orders}, timeline entries {r.timeline}, faults {r.faults}, "
            f"unmapped {len(r.unmapped)}"
        )


def hosts_of(pairs: list[str]) -> dict[str, str]:
    """``--system HOST=SYSTEM`` options as a host -> system map."""
    hosts: dict[str, str] = {}
    for pair in pairs:
        host, sep, system = pair.partition("=")
        host, system = host.strip().lower(), system.strip().lower()
        if not sep or not host or system not in SYSTEMS:
            raise ImportProblem(
                f"--system {pair}: give HOST=SYSTEM, SYSTEM one of {', '.join(SYSTEMS)}"
            )
        hosts[host] = system
    return hosts


def run_import(
    paths: list[Path],
    out: Path,
    *,
    name: str | None = None,
    systems: list[str] | None = None,
    fmt: str | None = None,
) -> Imported:
    """Import ``paths`` into the capsule ``out``."""
    if fmt is not None and fmt not in evidences.FORMATS:
        raise ImportProblem(f"--format {fmt}: unknown; give one of {', '.join(evidences.FORMATS)}")
    if not paths:
        raise ImportProblem("give at least one piece of evidence")
    if out.exists() and out.is_dir():
        raise ImportProblem(f"--out {out}: a folder; give a file name")
    hosts = hosts_of(systems or [])
    merged = evidences.Evidence()
    try:
        for path in paths:
            merged.merge(evidences.read(path, fmt, hosts))
    except evidences.EvidenceError as exc:
        raise ImportProblem(str(exc)) from None
    result = reconstructing.reconstruct(merged, name)
    try:
        writing.write(result, out)
    except writing.CapsuleError as exc:
        raise ImportProblem(str(exc)) from None
    return Imported(out, result)
