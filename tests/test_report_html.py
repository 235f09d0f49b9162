"""report.html tells the truth: failing oracles first; when, which version, which stack, which
scenario; one time axis of real clock ticks; each fault a band over its own window; lockstep
latency explained or not drawn; "8 of 13 failing orders shown"; cancelled and backordered on
the cards. Checked in the markup and, for a clean and a failing run, on a headless Chromium
screenshot.

Both runs play the WMS outage incident (WMS down 10:00-10:45 on day 0): the clean one against
the reference stack as it is, the failing one with ``no-retry-wms``, which loses the 13
orders released during the outage.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report import html
from harness.report.html_charts import HIDDEN_LATENCY, LOCKSTEP_LATENCY
from harness.report.html_lanes import LANE_EDGE, MAX_SWIMLANES
from harness.report.html_svg import COLOURS, FAIL_COLOUR, FAULT_FILL, OPEN_COLOUR, PASS_COLOUR
from harness.runner import RunOutcome
from harness.scenario import ClockSettings
from simulators.common.faults import Fault
from tests.support import play

pytestmark = pytest.mark.e2e

OUTAGE = Path(__file__).resolve().parent.parent / "scenarios" / "incidents"
OUTAGE = OUTAGE / "wms_outage_during_wave.yaml"
WINDOW = (10 * 3600.0, 10 * 3600.0 + 2700.0)  # the WMS outage: 10:00 for 45 minutes
TICK_STEPS_H = (1, 2, 3, 6, 12, 24, 48, 168)


@dataclass
class Run:
    outcome: RunOutcome
    folder: Path

    @property
    def page(self) -> str:
        return (self.folder / "report.html").read_text()

    @property
    def verdict(self) -> dict:
        return json.loads((self.folder / "verdict.json").read_text())


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("failing")
    return Run(play(OUTAGE, folder, "no-retry-wms"), folder)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("clean")
    return Run(play(OUTAGE, folder), folder)


# -- reading the page --------------------------------------------------------------------------
@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def iter(self, tag: str | None = None, cls: str | None = None) -> Iterator[Node]:
        for child in self.children:
            if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                yield child
            yield from child.iter(tag, cls)

    def all_text(self) -> str:
        return "".join(self.text) + "".join(c.all_text() for c in self.children)


class _Tree(HTMLParser):
    VOID = {"br", "meta", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].text.append(data)


def parse(page: str) -> Node:
    tree = _Tree()
    tree.feed(page)
    return tree.root


def charts(page: str) -> dict[str, Node]:
    return {svg.attrs["data-chart"]: svg for svg in parse(page).iter("svg", "chart")}


def ticks(chart: Node) -> list[tuple[float, float, str]]:
    """(virtual seconds, x, label) of each tick under a chart."""
    return [
        (float(t.attrs["data-t"]), float(t.attrs["x"]), t.all_text())
        for t in chart.iter("text", "tick")
    ]


def x_of(chart: Node, t: float) -> float:
    """Where virtual time ``t`` lies on the chart, read off its first and last tick."""
    (t0, x0, _), *_, (t1, x1, _) = ticks(chart)
    return x0 + (t - t0) * (x1 - x0) / (t1 - t0)


def hhmm(seconds: float) -> str:
    """Virtual 0 is midnight of the start day, so this is the clock time."""
    rest = int(seconds) % 86_400
    return f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"


def variant(outcome: RunOutcome, **changes) -> str:
    return html.render(dataclasses.replace(outcome, **changes))


def with_latency(outcome: RunOutcome, seconds: float) -> list:
    """The outcome's service levels with the first sample of the first measure at ``seconds``."""
    levels = list(outcome.service_levels)
    first = levels[0]
    levels[0] = dataclasses.replace(first, samples=[seconds, *first.samples[1:]])
    return levels


# -- the markup ----------------------------------------------------------------------------------
def test_the_html_report_is_self_contained_and_names_the_same_failing_orders(failing):
    page, verdict = failing.page, failing.verdict
    junit_text = "".join(
        f.text or "" for f in ET.parse(failing.folder / "junit.xml").getroot().iter("failure")
    )
    failing_ids = {f["entity"].split(" ", 1)[0] for o in verdict["oracles"] for f in o["findings"]}
    assert failing_ids
    for order in failing_ids:  # the same ids in all three reports
        assert order in page and order in junit_text
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "<img" not in page  # nothing fetched
    assert len(charts(page)) >= 2 and "<polyline" in page and "FAIL" in page
    lanes = [order for order in failing_ids if f"id='{order}'" in page]
    assert lanes  # a swimlane per failing order (up to MAX_SWIMLANES)


def test_every_chart_shares_one_time_axis_ticked_at_real_clock_times(failing):
    page = variant(failing.outcome, service_levels=with_latency(failing.outcome, 900.0))
    drawn = charts(page)
    assert set(drawn) == {"orders", "latency", "traffic"}
    axes = {key: ticks(chart) for key, chart in drawn.items()}
    first = axes["orders"]
    assert all(axis == first for axis in axes.values())  # same times, same x, same labels
    times = [t for t, _, _ in first]
    steps = {b - a for a, b in itertools.pairwise(times)}
    assert len(steps) == 1 and steps.pop() / 3600 in TICK_STEPS_H  # even, on whole hours
    assert 4 <= len(times) <= 17
    for t, x, label in first:
        assert label == hhmm(t)  # labelled with the clock time it stands for
        assert x == pytest.approx(x_of(drawn["orders"], t), abs=0.11)  # linear in time
    journal_times = [e["virtual_time"] for es in failing.outcome.journals.values() for e in es]
    assert times[0] <= min(journal_times) and times[-1] >= failing.outcome.virtual_s
    assert times[-1] - failing.outcome.virtual_s < times[1] - times[0]  # no empty tick at the end


def test_a_fault_is_a_band_over_its_own_window_labelled_by_system_and_kind(failing):
    fault = failing.outcome.scenario.faults[0]  # the 10:00 outage (its crash at 11:15 aside)
    assert (fault.at, fault.until) == WINDOW
    late = Fault.model_validate({"system": "erp", "kind": "error", "at": "20:00"})  # no `for`
    scenario = failing.outcome.scenario.model_copy(update={"faults": (fault, late)})
    drawn = charts(variant(failing.outcome, scenario=scenario))
    assert set(drawn) == {"orders", "traffic"}
    for chart in drawn.values():
        bands = {b.attrs["data-system"]: b for b in chart.iter("rect", "fault")}
        assert {s: b.attrs["data-kind"] for s, b in bands.items()} == {
            "wms": "outage",
            "erp": "error",
        }
        wms, erp = bands["wms"], bands["erp"]
        start, end = (x_of(chart, t) for t in WINDOW)
        assert float(wms.attrs["x"]) == pytest.approx(start, abs=0.15)
        assert float(wms.attrs["width"]) == pytest.approx(end - start, abs=0.2)
        assert 0 < float(wms.attrs["width"]) < 0.02 * 1000  # a band, not a shade
        last_tick = ticks(chart)[-1][1]  # a fault without `for` lasts to the end of the run
        assert float(erp.attrs["x"]) == pytest.approx(x_of(chart, 20 * 3600.0), abs=0.15)
        assert float(erp.attrs["x"]) + float(erp.attrs["width"]) == pytest.approx(last_tick, 0.2)
        labels = [t.all_text() for t in chart.iter("text", "band-label")]
        assert sorted(labels) == ["erp error", "wms outage"]


def test_the_header_says_when_which_version_which_stack_and_which_scenario(failing):
    verdict = failing.verdict
    root = parse(failing.page)
    [header] = root.iter("header")
    facts = dict(
        zip(
            (dt.all_text() for dt in header.iter("dt")),
            (dd.all_text() for dd in header.iter("dd")),
            strict=True,
        )
    )
    run = verdict["run"]
    started = run["started_at"]  # 2026-12-05T09:08:04Z
    assert facts["started"] == f"{started[:10]} {started[11:19]} UTC"
    assert facts["twinyard"].startswith(verdict["versions"]["twinyard"] + " ")
    assert facts["stack"] == run["stack"] and "reference_stack" in run["stack"]
    assert facts["scenario digest"] == run["scenario_digest"]
    assert facts["outcome digest"] == run["outcome_digest"]
    assert facts["scenario"].startswith("wms_outage_during_wave")
    assert "lockstep" in facts["clock"]
    badge = next(header.iter("span", "badge"))
    assert badge.all_text() == "FAIL" and "fail" in badge.classes
    assert failing.page.index("</header>") < failing.page.index("<h2>Oracles</h2>")


def test_the_cards_count_cancelled_and_backordered_orders_as_the_erp_ends_the_day(failing):
    def cards(page: str) -> dict[str, int]:
        return {
            div.attrs["data-kpi"]: int(next(div.iter("b")).all_text().replace(",", ""))
            for div in parse(page).iter("div", "kpi")
        }

    real = cards(failing.page)
    state = json.loads((failing.folder / "state.json").read_text())
    counts = failing.verdict["counts"]
    assert real["released"] == counts["released"] and real["shipped"] == counts["shipped"]
    assert real["cancelled"] == sum(o["status"] == "cancelled" for o in state["erp"]["orders"])
    assert real["backordered"] == len({b["order_id"] for b in state["erp"]["backorders"]})

    snapshots = copy.deepcopy(failing.outcome.snapshots)
    orders = snapshots["erp"]["orders"]
    for order in orders[:2]:
        order["status"] = "cancelled"
    snapshots["erp"]["backorders"] = [  # three orders short, one of them twice
        {"id": f"BO-{i}", "order_id": orders[n]["id"], "lines": [], "created_at": "x"}
        for i, n in enumerate((5, 6, 7, 7))
    ]
    made = cards(variant(failing.outcome, snapshots=snapshots))
    assert (made["cancelled"], made["backordered"]) == (2, 3)


def test_failing_oracles_come_first_in_the_oracle_table(failing):
    results = failing.outcome.results
    failed = {r.name for r in results if not r.passed}
    assert failed and len(failed) < len(results)
    for order in (results, list(reversed(results))):  # whatever order they were judged in
        rows = list(parse(variant(failing.outcome, results=order)).iter("tr"))
        names = [row.attrs["data-oracle"] for row in rows if "data-oracle" in row.attrs]
        assert len(names) == len(results)
        assert set(names[: len(failed)]) == failed


def test_more_failing_orders_than_lanes_says_how_many_are_shown_and_where_the_rest_are(failing):
    verdict = failing.verdict
    orders = {f["entity"].split(" ", 1)[0] for o in verdict["oracles"] for f in o["findings"]}
    assert all(o.startswith("SO-") for o in orders) and len(orders) > MAX_SWIMLANES
    root = parse(failing.page)
    lanes = [div.attrs["id"] for div in root.iter("div", "failing-order")]
    assert len(lanes) == MAX_SWIMLANES and set(lanes) < orders
    [shown] = root.iter("p", "shown")
    text = shown.all_text()
    assert f"{MAX_SWIMLANES} of {len(orders)} failing orders shown" in text
    assert "verdict.json" in text and "twinyard trace" in text
    for order in orders - set(lanes):  # the rest are named
        assert order in text


def test_every_failing_order_drawn_says_so_and_a_clean_day_has_no_section(failing, clean):
    keep = sorted({f.entity.split(" ", 1)[0] for r in failing.outcome.results for f in r.findings})
    keep = keep[:3]
    results = [
        dataclasses.replace(
            r, findings=[f for f in r.findings if f.entity.split(" ", 1)[0] in keep]
        )
        for r in failing.outcome.results
    ]
    root = parse(variant(failing.outcome, results=results))
    [shown] = root.iter("p", "shown")
    assert shown.all_text() == "All 3 failing orders shown."
    assert sorted(div.attrs["id"] for div in root.iter("div", "failing-order")) == keep
    assert clean.outcome.passed
    clean_root = parse(clean.page)
    assert "Failing orders" not in [h2.all_text() for h2 in clean_root.iter("h2")]
    assert not list(clean_root.iter("div", "failing-order"))
    assert not list(clean_root.iter("p", "shown"))


def test_lockstep_latency_is_explained_or_not_drawn_and_the_page_says_which(failing):
    outcome = failing.outcome
    assert outcome.scenario.clock.mode == "lockstep"
    assert not any(v for level in outcome.service_levels for v in level.samples)
    hidden = failing.page
    assert "latency" not in charts(hidden)  # a flat line at 0 says nothing
    [why] = parse(hidden).iter("div", "latency-hidden")
    assert "not drawn" in why.all_text() and "lockstep" in why.all_text()
    assert HIDDEN_LATENCY[:40] in hidden

    waited = variant(outcome, service_levels=with_latency(outcome, 900.0))
    assert "latency" in charts(waited) and "latency-hidden" not in waited
    assert LOCKSTEP_LATENCY in waited  # drawn, with what lockstep latency means

    realtime = outcome.scenario.model_copy(update={"clock": ClockSettings(mode="realtime")})
    timed = variant(outcome, scenario=realtime)
    assert "latency" in charts(timed) and "Realtime: virtual time ran at 60 x wall" in timed


# -- the screenshots ------------------------------------------------------------------------------
def screenshot(page: Path, shot: Path, height: int) -> tuple[bytes, int, int]:
    """The page as headless Chromium draws it, 1200 px wide: raw RGB bytes, width, height."""
    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "make test installs Debian's chromium; run `make chromium`"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size=1200,{height}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, height)
    return image.tobytes(), 1200, height


def rgb(hex_colour: str) -> bytes:
    return bytes(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def columns(data: bytes, width: int, y: int, colour: str) -> list[int]:
    """The x of every pixel of exactly ``colour`` on row ``y``."""
    row = data[y * width * 3 : (y + 1) * width * 3]
    return [m.start() // 3 for m in re.finditer(re.escape(rgb(colour)), row) if m.start() % 3 == 0]


def count(data: bytes, width: int, rows: range, colour: str) -> int:
    return sum(len(columns(data, width, y, colour)) for y in rows)


def stacked(rows: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    """Rows grouped into vertical runs; a gap of a few rows (where a grid line or a label
    crosses the band) does not end a run."""
    runs: list[list[tuple[int, int, int]]] = []
    for row in rows:
        if runs and row[0] - runs[-1][-1][0] <= 4:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs


def test_a_clean_report_in_headless_chromium_shows_pass_and_no_failing_orders(clean, tmp_path):
    data, width, height = screenshot(clean.folder / "report.html", tmp_path / "clean.png", 5200)
    badge = range(0, 120)  # the header's first line
    assert count(data, width, badge, PASS_COLOUR) > 300  # the PASS badge
    assert count(data, width, badge, FAIL_COLOUR) == 0
    assert count(data, width, range(height), LANE_EDGE) == 0  # no failing-order swimlane
    assert count(data, width, range(height), OPEN_COLOUR) > 100  # the orders chart is drawn
    assert count(data, width, range(height), COLOURS["wms"]) > 100  # and the traffic chart


def test_a_failing_report_in_headless_chromium_shows_fail_bands_and_lanes(failing, tmp_path):
    data, width, height = screenshot(failing.folder / "report.html", tmp_path / "fail.png", 6800)
    badge = range(0, 120)
    assert count(data, width, badge, FAIL_COLOUR) > 300  # the FAIL badge
    assert count(data, width, badge, PASS_COLOUR) == 0
    assert count(data, width, range(height), LANE_EDGE) > 1000  # failing-order swimlanes
    assert count(data, width, range(height), COLOURS["erp"]) > 100
    # The outage is a narrow band as tall as the plot in each chart, at the same x in both (one
    # shared axis). Swimlanes, on an order's own hour, show it wide; the legend's key is short.
    narrow = []
    for y in range(height):
        xs = columns(data, width, y, FAULT_FILL)
        if xs and max(xs) - min(xs) < 0.02 * width:
            narrow.append((y, min(xs), max(xs)))
    bands = [band for band in stacked(narrow) if band[-1][0] - band[0][0] > 100]
    assert len(bands) == 2  # the orders and traffic charts (latency is not drawn: all 0 s)
    left = min(x0 for band in bands for _, x0, _ in band)
    right = max(x1 for band in bands for _, _, x1 in band)
    assert 0 < right - left < 0.02 * width  # both charts' bands in the same few columns
    assert 0.1 * width < left and right < 0.9 * width  # inside the plot, not at its edges
    verdict = failing.verdict
    orders = {f["entity"].split(" ", 1)[0] for o in verdict["oracles"] for f in o["findings"]}
    assert f"{MAX_SWIMLANES} of {len(orders)} failing orders shown" in failing.page
