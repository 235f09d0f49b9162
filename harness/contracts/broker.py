"""Publishing to a Pact Broker, through the ``pact`` CLI (package ``pact-python-cli``).

No broker runs in twinyard's own tests, so the command lines are built here, where they can
be checked, and run as they are. Credentials are never on the command line: the ``pact`` CLI
reads ``PACT_BROKER_TOKEN`` (or ``PACT_BROKER_USERNAME`` / ``PACT_BROKER_PASSWORD``) itself.

Two steps, as a vendor-upgrade job needs them: publish the consumer's pacts (so the broker
holds what was verified), then have Pact's verifier fetch them from the broker, verify them
against the vendor and publish the result under the vendor's version.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


class BrokerError(Exception):
    """The broker step cannot run (no ``pact`` CLI) or failed; one line for the operator."""


@dataclass(frozen=True, slots=True)
class Publication:
    broker_url: str
    pacts: Path
    consumer: str
    provider: str
    provider_url: str
    consumer_version: str
    provider_version: str
    branch: str | None = None
    state_url: str | None = None


def publish_pacts_command(p: Publication) -> list[str]:
    command = ["pact", "broker", "publish", str(p.pacts), "--broker-base-url", p.broker_url]
    command += ["--consumer-app-version", p.consumer_version]
    if p.branch:
        command += ["--branch", p.branch]
    return command


def verify_and_publish_command(p: Publication) -> list[str]:
    """``pact verifier`` fetching ``provider``'s pacts from the broker and publishing results."""
    target = urlsplit(p.provider_url)
    port = target.port or (443 if target.scheme == "https" else 80)
    command = ["pact", "verifier", "--broker-url", p.broker_url]
    command += ["--provider-name", p.provider]
    command += ["--transport", target.scheme or "http", "--hostname", target.hostname or ""]
    command += ["--port", str(port)]
    if target.path.strip("/"):
        command += ["--base-path", target.path]
    if p.state_url:
        command += ["--state-change-url", p.state_url, "--state-change-teardown"]
    command += ["--filter-consumer", p.consumer]
    command += ["--publish", "--provider-version", p.provider_version]
    if p.branch:
        command += ["--provider-branch", p.branch]
    return command


def commands(p: Publication) -> list[list[str]]:
    return [publish_pacts_command(p), verify_and_publish_command(p)]


def run(p: Publication) -> None:
    """Run both steps; a missing CLI or a failing step is a ``BrokerError``."""
    if shutil.which("pact") is None:
        raise BrokerError("--broker-url needs the pact CLI on PATH: pip install pact-python-cli")
    for command in commands(p):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BrokerError(f"{' '.join(command[:3])} failed ({done.returncode}): {last[0]}")
