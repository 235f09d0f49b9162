"""compare's report.html shows where two stacks did different business: every differing order
of compare.json with its fields and A's and B's values side by side, A's and B's swimlanes of
it (from each side's journal, the same exchanges ``twinyard trace`` finds), the verdict, and
no hostile text as markup. Checked in the markup and in headless Chromium's rendered DOM.

One real comparison per module: the short-pick incident against the reference stack as it is
(A) and with ``ordered-qty`` (B), which posts goods issues for the ordered quantity and so
never backorders a short pick.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness import trace
from harness.compare import html
from harness.compare.diff import Difference
from harness.compare.play import Played, Side
from harness.compare.result import Comparison, SeedComparison
from harness.compare.spec import CompareSpec
from harness.report.html_svg import FAIL_COLOUR
from harness.stack import REFERENCE_STACK_CMD
from tests.test_load import chromium, shot_has_content
from tests.test_report_html import Node, count, parse

e2e = pytest.mark.e2e  # the tests on the real comparison

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = Path("scenarios") / "incidents" / "short_pick_backorder.yaml"
A = shlex.join(REFERENCE_STACK_CMD)
B = f"env REFSTACK_DEFECTS=ordered-qty {A}"
HOSTILE = "<script>alert('x')</script>"


@dataclass
class Compared:
    folder: Path
    stdout: str

    @property
    def page(self) -> str:
        return (self.folder / "report.html").read_text()

    @property
    def facts(self) -> dict:
        return json.loads((self.folder / "compare.json").read_text())


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Compared:
    folder = tmp_path_factory.mktemp("compare")
    args = ["compare", str(SCENARIO), "--a", A, "--b", B, "--report-dir", str(folder)]
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    return Compared(folder, done.stdout)


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def shown(field: str, value: object) -> str:
    """How the page writes a value: compact JSON, a one-sided record as present / absent."""
    return ("present" if value else "absent") if field == "present" else compact(value)


def cards(root: Node) -> dict[str, Node]:
    return {div.attrs["data-order"]: div for div in root.iter("div", "differing-order")}


class Rows(HTMLParser):
    """The difference rows of the order cards, each cell's text in document order (a value's
    marked items are inline: ``Node.all_text`` would put them after the rest)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.order = ""
        self.cell: str | None = None

    @classmethod
    def of(cls, page: str) -> list[dict[str, str]]:
        rows = cls()
        rows.feed(page)
        return rows.rows

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag in ("h2", "h3"):  # the cards of a seed end where its next heading begins
            self.order = ""
        elif "differing-order" in found.get("class", "").split():
            self.order = found["data-order"]
        elif tag == "tr" and "data-field" in found and self.order:
            self.rows.append(
                {"order": self.order, "a": "", "b": "", "verdict": found["data-verdict"]}
                | {k: found[f"data-{k}"] for k in ("category", "field")}
            )
        elif tag == "td" and "data-side" in found and self.order:
            self.cell = found["data-side"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell:
            self.rows[-1][self.cell] += data


# -- a real comparison ---------------------------------------------------------------------------
@e2e
def test_every_differing_order_has_a_card_with_its_fields_and_both_values(compared):
    facts = compared.facts
    [seed] = facts["seeds"]
    differing = seed["orders_differing"]
    assert 0 < len(differing) <= html.MAX_ORDERS
    assert sorted(cards(parse(compared.page))) == sorted(differing)
    rows = Rows.of(compared.page)
    for order in differing:
        about = [d for d in seed["differences"] if d["key"] == order]
        assert len([r for r in rows if r["order"] == order]) == len(about)
        for d in about:
            [row] = [
                r
                for r in rows
                if (r["order"], r["category"], r["field"]) == (order, d["category"], d["field"])
            ]
            assert row["a"] == shown(d["field"], d["a"])
            assert row["b"] == shown(d["field"], d["b"])
            assert row["verdict"] == d["verdict"]
    [line] = parse(compared.page).iter("p", "shown")
    assert line.all_text() == f"All {len(differing)} differing orders shown."
    assert "report.html" not in compared.stdout  # the command prints nothing more


@e2e
def test_a_differing_order_has_as_and_bs_swimlanes_from_their_own_journals(compared):
    [seed] = compared.facts["seeds"]
    order = seed["orders_differing"][0]
    card = cards(parse(compared.page))[order]
    sides = {div.attrs["data-side"]: div for div in card.iter("div", "side")}
    assert set(sides) == {"a", "b"}
    for name, side in sides.items():
        [lane] = side.iter("svg", "lane")
        circles = list(lane.iter("circle"))
        exchanges = trace.load(Path(seed["plays"][name]["report_dir"]), order).entries
        assert exchanges and len(circles) == len(exchanges)  # the order's, as trace finds them
        assert f"{len(exchanges)} exchange(s) about {order}" in side.all_text()
    a_ticks = [t.attrs["x"] for t in sides["a"].iter("text", "tick")]
    assert a_ticks == [t.attrs["x"] for t in sides["b"].iter("text", "tick")]  # one axis


@e2e
def test_the_page_marks_the_verdict_and_counts_the_categories_as_compare_json(compared):
    facts, root = compared.facts, parse(compared.page)
    [header] = root.iter("header")
    badge = next(header.iter("span", "badge"))
    assert not facts["passed"] and badge.all_text() == "DIFFERENT" and "fail" in badge.classes
    text = header.all_text()
    assert A in text and B in text and str(SCENARIO) in text
    table = next(root.iter("table", "categories"))
    for tr in table.iter("tr"):
        if "data-category" in tr.attrs:
            numbers = [int(td.all_text()) for td in tr.iter("td") if "num" in td.classes]
            counts = facts["categories"][tr.attrs["data-category"]]
            assert numbers == [counts.get(v, 0) for v in html.VERDICTS]
    plays = {
        tr.attrs["data-side"]: tr.all_text() for tr in root.iter("tr") if "data-side" in tr.attrs
    }
    [seed] = facts["seeds"]
    assert "pass" in plays["a"] and "FAIL" in plays["b"]
    for oracle in seed["plays"]["b"]["failing_oracles"]:
        assert oracle in plays["b"]
    beyond = compared.page.split("Differences beyond orders", 1)[1]
    for d in seed["differences"]:
        if d["category"] in ("stock", "oracle"):
            assert d["key"] in beyond
    page = compared.page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "<img" not in page  # nothing fetched


@e2e
def test_headless_chromium_renders_the_page_with_the_differing_orders(compared, tmp_path):
    dom, shot = chromium(compared.folder / "report.html", tmp_path / "compare.png")
    [seed] = compared.facts["seeds"]
    assert sorted(cards(parse(dom))) == sorted(seed["orders_differing"])
    assert len(list(parse(dom).iter("svg", "lane"))) == 2 * len(seed["orders_differing"])
    assert shot_has_content(shot)
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert count(image.tobytes(), image.width, range(0, 120), FAIL_COLOUR) > 300  # DIFFERENT


# -- render functions on comparisons built by hand ----------------------------------------------
def played(tmp_path: Path, side: str, target: str) -> Played:
    folder = tmp_path / side  # no journal there: the page says so instead of a lane
    outcome: dict = {"erp_order": {}}
    return Played(
        Side(side, target), ROOT / SCENARIO, None, folder, 1, 1.0, outcome, False, [HOSTILE]
    )


def comparison(tmp_path: Path, differences: list[Difference]) -> Comparison:
    seed = SeedComparison(
        "short_pick_backorder",
        None,
        played(tmp_path, "a", f"stack {HOSTILE}"),
        played(tmp_path, "b", "stack b"),
        None,
        differences,
    )
    return Comparison(f"{HOSTILE}.yaml", f"a {HOSTILE}", "b", CompareSpec(), [seed], 1.0)


def test_hostile_text_anywhere_is_text_not_markup(tmp_path):
    d = Difference("erp_order", f"SO-{HOSTILE}", "status", HOSTILE, [HOSTILE], "noise", HOSTILE)
    other = Difference("stock", HOSTILE, "erp", {HOSTILE: 1}, {HOSTILE: 2})
    table = html.difference_table([d], None)
    assert "<script" not in table and "&lt;script&gt;" in table
    page = html.render(comparison(tmp_path, [d, other]))
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 6
    parsed = parse(page)
    assert not list(parsed.iter("script"))
    assert f"<mark>{escape(compact(HOSTILE))}:1</mark>" in page  # a mapping's key, as text


def test_the_journal_missing_is_said_and_a_noise_difference_is_marked_with_its_reason(tmp_path):
    found = [
        Difference("goods_issue", "SO-1", "lines", [[1, "S", 1]], [[1, "S", 3]]),
        Difference("tracking", "SO-1", "posted_at", ["x"], ["y"], "noise", "differs A to A too"),
        Difference("label", "SO-1", "cost", "5.40 EUR", "5.90 EUR", "expected", "new tariff"),
    ]
    root = parse(html.render(comparison(tmp_path, found)))
    [card] = cards(root).values()
    verdicts = {tr.attrs["data-field"]: tr.all_text() for tr in card.iter("tr", "noise")}
    assert "differs A to A too" in verdicts["posted_at"]
    [expected] = card.iter("tr", "expected")
    assert "new tariff" in expected.all_text()
    assert "No exchanges about SO-1 in either journal" in card.all_text()
    [lines] = [tr for tr in card.iter("tr") if tr.attrs.get("data-field") == "lines"]
    marked = [m.all_text() for m in lines.iter("mark")]
    assert marked == [compact([1, "S", 1]), compact([1, "S", 3])]  # what differs in the lines


def test_more_differing_orders_than_cards_says_how_many_and_where_the_rest_are(tmp_path):
    orders = [f"SO-{n:06d}" for n in range(1, html.MAX_ORDERS + 6)]
    found = [Difference("backorder", o, "present", True, False) for o in orders]
    root = parse(html.render(comparison(tmp_path, found)))
    assert sorted(cards(root)) == orders[: html.MAX_ORDERS]
    [line] = root.iter("p", "shown")
    text = line.all_text()
    assert f"{html.MAX_ORDERS} of {len(orders)} differing orders shown" in text
    assert "compare.json" in text and all(o in text for o in orders[html.MAX_ORDERS :])


def exchange(seq: int, system: str, ref: str | None, correlation: str | None, **more) -> dict:
    return {
        "seq": seq,
        "system": system,
        "direction": "in",
        "method": "POST",
        "path": f"/{seq}",
        "status": 200,
        "correlation_id": correlation,
        "virtual_time": 10.0 * seq,
        "event_type": None,
        "ref": ref,
        "fault": None,
        "error": None,
    } | more


def test_a_side_keeps_only_the_drawn_orders_exchanges_found_by_ref_or_correlation_id(
    tmp_path, monkeypatch
):
    state = {
        "erp": {"orders": [{"id": "SO-1"}, {"id": "SO-2"}]},
        "wms": {"orders": [{"id": "FO-9", "order_ref": "SO-1"}]},
        "tms": {"shipments": [{"id": "SH-1", "order_ref": "SO-1"}]},
        "carrier": {},
    }
    journal = [
        exchange(1, "erp", None, "c1"),  # before SO-1's exchanges show c1 is its
        exchange(2, "wms", "FO-9", "c1"),  # SO-1's WMS order
        exchange(3, "tms", "SH-1", None),  # SO-1's shipment
        exchange(4, "erp", "SO-2", "c1"),  # about another order: that order's
        exchange(5, "carrier", None, "c1", status=503),
        exchange(6, "erp", None, "c2"),
        exchange(7, "erp", "SKU-1", None),
    ]
    (tmp_path / "state.json").write_text(json.dumps(state))
    lines = "".join(json.dumps(e) + "\n" for e in journal)
    (tmp_path / "journal.jsonl").write_text(lines + "\n")
    side = html.read_lanes(Played(Side("a", A), ROOT / SCENARIO, None, tmp_path, 0, 0.0), ["SO-1"])
    assert side.problem is None and list(side.by_order) == ["SO-1"]
    assert [x["seq"] for x in side.by_order["SO-1"]] == [1, 2, 3, 5]
    monkeypatch.setattr(html, "MAX_EXCHANGES", 2)
    side = html.read_lanes(Played(Side("a", A), ROOT / SCENARIO, None, tmp_path, 0, 0.0), ["SO-1"])
    assert [x["seq"] for x in side.by_order["SO-1"]] == [1, 5]  # the failed one kept
    assert side.counted == {"SO-1": 4}
    card = html.order_card("s", "SO-1", [], side, side)
    assert "2 of 4 exchange(s) about SO-1" in card
