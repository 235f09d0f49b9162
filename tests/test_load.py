"""``twinyard load`` end to end: Locust (as its own process, a master and two workers)
releases a short day's orders through the ERP simulator while the reference stack carries
them and the world plays on; the business flows come back into Locust's statistics, the day
is judged by the oracles, and a threshold the stack cannot meet fails the run through
Locust's exit code, naming the flow.

No timing is asserted: counts, names, files and exit codes only. Every port is ephemeral and
every report folder a tmp_path, so the tests run side by side with the rest of the suite.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli import main
from harness.load.flows import FLOWS, ROW

pytestmark = pytest.mark.e2e

# 45 orders (30 x 1.5) in half an hour, packed within minutes, shipped by a truck at 09:30,
# delivered after the hub (1-3 virtual hours) and settled 3 minutes later: about 4.5 virtual
# hours, some 20 wall seconds at 900x.
SHORT_DAY = """\
name: load_short_day
seed: 11
start: 2026-11-27T00:00:00Z
horizon_days: 1
demand:
  orders: 30
  open: "08:00"
  close: "08:30"
  curve: flat
catalogue: {skus: 30, initial_stock: 100000}
warehouse:
  pickers: 40
  packers: 40
  pick_minutes_per_line: 0.5
  pack_minutes: 0.5
  short_pick_rate: 0
  waves: {every_minutes: 0, lead_minutes: 1}
  cutoff: "09:30"
  staging_minutes: 1
stock:
  cycle_count: {share_per_day: 0}
carrier:
  ground_transit_days: 0
  express_transit_days: 0
  delivery_hour: 0
  settle_after_hours: 0.05
clock: {factor: 900}
"""
IMPOSSIBLE = "expect:\n  slos:\n    release_latency: {p50: 0}\n"


def load(tmp_path: Path, text: str, *options: str) -> tuple[int, Path, str]:
    scenario = tmp_path / "day.yaml"
    scenario.write_text(text)
    reports = tmp_path / "reports"
    argv = ["load", str(scenario), "--rate-multiplier", "1.5", "--report-dir", str(reports)]
    code = main([*argv, "--quiet", *options])
    return code, reports, scenario.name


def flow_rows(stats_csv: Path) -> dict[str, dict[str, str]]:
    with stats_csv.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f) if row["Type"] == "flow"}


@pytest.mark.long(30)
def test_a_headless_load_on_two_processes_passes_with_every_flow_in_locusts_statistics(
    tmp_path, capsys
):
    code, reports, _ = load(tmp_path, SHORT_DAY, "--processes", "2")
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]

    verdict = json.loads((reports / "verdict.json").read_text())
    assert verdict["passed"]
    oracles = {o["name"]: o for o in verdict["oracles"]}
    assert oracles["orders_terminal"]["passed"] and oracles["orders_terminal"]["checked"] > 0
    assert oracles["flows_completed"]["passed"]
    levels = {s["name"]: s for s in verdict["service_levels"]}
    assert set(levels) == set(FLOWS)
    assert all(levels[m]["count"] > 0 for m in FLOWS)
    assert any(note.startswith("load: ") for note in verdict["notes"])

    # Locust's own statistics: the ERP's HTTP rows and, beside them, every business flow.
    with (reports / "locust_stats.csv").open(newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["POST /orders/{id}/release"]["Request Count"]) > 0
    flows = flow_rows(reports / "locust_stats.csv")
    assert set(flows) == {ROW + flow for flow in FLOWS.values()}
    for name, row in flows.items():
        assert int(row["Request Count"]) > 0, name
        assert int(row["Failure Count"]) == 0, name
    released = int(rows["POST /orders/{id}/release"]["Request Count"])
    assert int(flows[ROW + FLOWS["release_latency"]]["Request Count"]) == released

    log = (reports / "locust.log").read_text()
    assert "2 workers connected" in log  # --processes 2: a master and two workers
    assert (reports / "locust.html").stat().st_size > 10_000
    facts = json.loads((reports / "load.json").read_text())
    assert facts["locust"]["exit_code"] == 0 and facts["orders_released"] == released
    assert facts["backlog"] and set(FLOWS) <= set(facts["backlog"][0])
    page = (reports / "report.html").read_text()
    assert "data-chart=backlog" in page and "<h2>Load</h2>" in page
    assert (reports / "junit.xml").is_file() and (reports / "journal.jsonl").is_file()

    # Locust's HTML report as a browser draws it: the flow rows are rendered in its table.
    rendered, shot = chromium(reports / "locust.html", tmp_path / "locust.png")
    for flow in FLOWS.values():
        assert re.search(
            rf"<td[^>]*>\s*{re.escape(ROW + flow).replace('>', '&gt;')}\s*</td>", rendered
        )
    assert shot_has_content(shot)


@pytest.mark.long(22)
def test_a_threshold_the_stack_cannot_meet_fails_through_locusts_exit_code(tmp_path, capsys):
    code, reports, _ = load(tmp_path, SHORT_DAY + IMPOSSIBLE)
    out = capsys.readouterr().out
    assert code == 1, out[-3000:]
    missed = f"{ROW}{FLOWS['release_latency']} p50"
    assert f"missed: {missed}" in out
    facts = json.loads((reports / "load.json").read_text())
    assert facts["locust"]["exit_code"] == 1  # Locust's process_exit_code, set by the locustfile
    assert any(missed in line for line in facts["judgement"]["breaches"])
    assert f"service level missed: {missed}" in (reports / "locust.log").read_text()
    verdict = json.loads((reports / "verdict.json").read_text())
    assert not verdict["passed"]
    failed = [s["name"] for s in verdict["service_levels"] if not s["passed"]]
    assert failed == ["release_latency"]
    assert all(o["passed"] for o in verdict["oracles"])  # the day itself was fine


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["missing.yaml"], "no such scenario file"),
        (["{day}", "--rate-multiplier", "0"], "--rate-multiplier"),
        (["{day}", "--locustfile", "nowhere.py"], "--locustfile nowhere.py: no such file"),
        (["{day}", "--processes", "0"], "--processes"),
        (
            ["{day}", "--stack-url", "http://127.0.0.1:9", "--stack-cmd", "python -m x"],
            "give one of --stack-url, --stack-cmd and --stack-image",
        ),
    ],
)
def test_misuse_is_one_line_and_exit_2(tmp_path, capsys, args, words):
    day = tmp_path / "day.yaml"
    day.write_text(SHORT_DAY)
    argv = [a.replace("{day}", str(day)) for a in args]
    code = main(["load", *argv, "--report-dir", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("twinyard: error: "), err
    assert words in err


def test_a_day_without_orders_is_refused_before_anything_starts(tmp_path, capsys):
    day = tmp_path / "empty.yaml"
    day.write_text(SHORT_DAY.replace("orders: 30", "orders: 0"))
    assert main(["load", str(day), "--report-dir", str(tmp_path / "r"), "--quiet"]) == 2
    assert "the load window brings no orders" in capsys.readouterr().err


# -- Chromium ----------------------------------------------------------------------------------
def chromium(page: Path, shot: Path) -> tuple[str, Path]:
    """Locust's report as headless Chromium renders it (its tables are drawn by script):
    the DOM after rendering, and a screenshot."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "make test installs Debian's chromium; run `make chromium`"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    common += ["--virtual-time-budget=5000", "--window-size=1400,1400"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=90,
    ).stdout
    subprocess.run(
        [*common, f"--screenshot={shot}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=90,
    )
    return dom, shot


def shot_has_content(shot: Path) -> bool:
    """The screenshot is the page, drawn: 1400 px square, and not one flat colour."""
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1400, 1400)
    low, high = image.getextrema()
    return high - low > 100
