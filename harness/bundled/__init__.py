"""What twinyard ships besides code: the scenario library and the vendors' contracts.

They live inside the package and are found through ``importlib.resources``, so an installed
wheel finds its defaults from any folder, not only from a checkout (where ``scenarios/`` and
``contracts/`` at the top are links to these folders, for the paths the docs use).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _folder(*parts: str) -> Path:
    # pip unpacks wheels, so the package is a real folder; a zipped install is not supported.
    return Path(str(files(__name__).joinpath(*parts)))


SCENARIOS = _folder("scenarios")
HAPPY_DAY = SCENARIOS / "happy_day.yaml"
INCIDENTS = SCENARIOS / "incidents"
OPENAPI = _folder("contracts", "openapi")
PACTS = _folder("contracts", "pacts")
STACK_WEBHOOKS_SPEC = OPENAPI / "stack-webhooks.yaml"
