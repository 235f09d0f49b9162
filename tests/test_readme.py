"""The README's scenario examples are real scenarios: a user copying one gets a valid file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harness import scenario

README = Path(__file__).resolve().parent.parent / "README.md"


WORKFLOW = "# .github/workflows/"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)


STACK_FILE = "# my_stack.yaml"  # a --stack-config file: a scenario's stack: section


def test_every_yaml_example_in_the_readme_validates():
    blocks = [b for b in yaml_blocks() if not b.startswith((WORKFLOW, STACK_FILE))]
    assert blocks, "the README shows no scenario example"
    for block in blocks:
        scenario.parse(block, "README.md example")  # raises ScenarioError naming the line
    stack_files = [b for b in yaml_blocks() if b.startswith(STACK_FILE)]
    assert stack_files, "the README shows no --stack-config example"
    for block in stack_files:
        assert scenario.Stack.model_validate(yaml.safe_load(block)).schedule


def test_the_upgrade_day_workflow_is_yaml_calling_real_subcommands():
    from harness.cli import app

    workflows = [b for b in yaml_blocks() if b.startswith(WORKFLOW)]
    assert len(workflows) == 1
    steps = yaml.safe_load(workflows[0])["jobs"]["gate"]["steps"]
    commands = [" ".join(s["run"].split()) for s in steps if "twinyard" in s.get("run", "")]
    known = {c.name for c in app.registered_commands} | {"contracts"}
    contracts = {
        c.name for g in app.registered_groups for c in g.typer_instance.registered_commands
    }
    for command in commands:
        words = command.split()
        assert words[1] in known, command
        if words[1] == "contracts":
            assert words[2] in contracts, command
