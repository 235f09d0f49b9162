"""contracts diff against a corpus of spec pairs: tests/openapi_pairs/<case>/{old,new,expected}.

Each ``expected.yaml`` says what the change is about (``about``), what oasdiff does with it
where that differs (``oasdiff``), and the findings: ``breaking``, ``operation`` and ``where``
must match a change exactly, ``message`` is matched as a part of the change's message. Every
breaking change the diff reports must be expected (no false alarms); with ``exact: true`` every
change must be, breaking or not.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.contracts.openapi_diff import Change, diff

PAIRS = Path(__file__).resolve().parent / "openapi_pairs"
CASES = sorted(p.name for p in PAIRS.iterdir() if (p / "expected.yaml").is_file())


def _pair(case: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    def read(name: str) -> dict[str, Any]:
        return yaml.safe_load((PAIRS / case / f"{name}.yaml").read_text())

    return read("old"), read("new"), read("expected")


def _matches(expected: dict[str, Any], change: dict[str, Any]) -> bool:
    return (
        expected["breaking"] == change["breaking"]
        and expected["operation"] == change["operation"]
        and expected["where"] == change["where"]
        and str(expected.get("message", "")).lower() in change["message"].lower()
    )


def _compare(expected: dict[str, Any], changes: list[dict[str, Any]]) -> None:
    wanted = expected["findings"] or []
    missing = [w for w in wanted if not any(_matches(w, c) for c in changes)]
    judged = changes if expected.get("exact") else [c for c in changes if c["breaking"]]
    unexpected = [c for c in judged if not any(_matches(w, c) for w in wanted)]
    assert not missing and not unexpected, {"missing": missing, "unexpected": unexpected}


def _as_dict(change: Change) -> dict[str, Any]:
    return {
        "breaking": change.breaking,
        "operation": change.operation,
        "where": change.where,
        "message": change.message,
    }


def test_the_corpus_is_large_and_each_case_says_what_it_is_about():
    assert len(CASES) >= 25
    for case in CASES:
        _, _, expected = _pair(case)
        assert expected.get("about"), case
        assert isinstance(expected.get("findings"), list), case


@pytest.mark.parametrize("case", CASES)
def test_each_pair_reports_what_it_expects(case: str):
    old, new, expected = _pair(case)
    _compare(expected, [_as_dict(c) for c in diff(old, new)])


@pytest.mark.parametrize("case", CASES)
def test_each_spec_against_itself_reports_nothing(case: str):
    old, new, _ = _pair(case)
    assert diff(old, old) == [] and diff(new, new) == []


# -- the command ----------------------------------------------------------------------------

THROUGH_THE_COMMAND = [
    "allof_required_added_request",
    "oneof_field_removed_response",
    "security_added_on_operation",
    "allof_identical_part_added",
]


def _run_json(capsys: pytest.CaptureFixture[str], old: str, new: str) -> tuple[int, dict]:
    code = main(["contracts", "diff", old, new, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("case", THROUGH_THE_COMMAND)
def test_the_command_prints_the_same_findings_as_json(case: str, capsys):
    _, _, expected = _pair(case)
    old, new = str(PAIRS / case / "old.yaml"), str(PAIRS / case / "new.yaml")
    code, document = _run_json(capsys, old, new)
    _compare(expected, document["changes"])
    breaking = sum(f["breaking"] for f in expected["findings"])
    assert code == (1 if breaking else 0)
    assert (document["old"], document["new"], document["breaking"]) == (old, new, breaking)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: stderr must hold only the command's own line."""


@pytest.fixture
def served() -> Iterator[str]:
    """The corpus over HTTP on loopback, for specs given as URLs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(PAIRS)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_old_and_new_may_be_urls(served: str, capsys):
    case = "oneof_field_removed_response"
    old, new = f"{served}/{case}/old.yaml", f"{served}/{case}/new.yaml"
    code, document = _run_json(capsys, old, new)
    assert code == 1 and (document["old"], document["new"]) == (old, new)
    _compare(_pair(case)[2], document["changes"])


def test_a_url_that_cannot_be_fetched_is_one_line_and_exit_2(served: str, capsys):
    local = str(PAIRS / "callbacks" / "old.yaml")
    for url, reason in (
        (f"{served}/nowhere.yaml", "HTTP 404"),
        ("http://127.0.0.1:9/spec.yaml", ""),  # nothing listens on the discard port
    ):
        assert main(["contracts", "diff", url, local]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"twinyard: error: cannot fetch {url}: ")
        assert reason in err[0]


def test_contracts_check_takes_a_url_too(served: str, capsys, tmp_path: Path):
    pact = {
        "consumer": {"name": "stack"},
        "provider": {"name": "pets"},
        "interactions": [
            {
                "type": "Synchronous/HTTP",
                "description": "a pet is added",
                "request": {"method": "POST", "path": "/pets", "body": {"name": "Rex"}},
                "response": {"status": 201},
            }
        ],
        "metadata": {"pactSpecification": {"version": "3.0.0"}},
    }
    (tmp_path / "pact.json").write_text(json.dumps(pact))
    url = f"{served}/allof_required_added_request/new.yaml"
    argv = ["contracts", "check", "--pacts", str(tmp_path), "--openapi", url, "--format", "json"]
    assert main(argv) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["openapi"] == url
    problems = {(p["where"], p["message"]) for p in document["interactions"][0]["problems"]}
    assert ("request body: species", "required field not sent") in problems
    assert ("request body: owner", "required field not sent") in problems
