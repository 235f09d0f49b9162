"""The README's scenario examples are real scenarios: a user copying one gets a valid file."""

from __future__ import annotations

import re
from pathlib import Path

from harness import scenario

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_yaml_example_in_the_readme_validates():
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README shows no scenario example"
    for block in blocks:
        scenario.parse(block, "README.md example")  # raises ScenarioError naming the line
