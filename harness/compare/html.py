"""``report.html`` of ``twinyard compare``: one self-contained page (inline CSS and SVG, no
scripts, no network) that shows a reader where two stacks did different business, order by
order, and what each stack said on the wire about it.

- the header says what was compared: the scenario, A's and B's targets, SAME or DIFFERENT,
  how close counts as the same, and the wall time;
- a table counts the differences per category and verdict (unexplained, expected, noise);
- per scenario and seed: how many orders are identical, each play's verdict and failing
  oracles (linked to its own report), then a card per differing order (the first
  ``MAX_ORDERS``; the page names the rest) with its differences side by side and A's and B's
  swimlanes on one shared time axis, so the same moment is the same x in both;
- differences that are not about an order (stock, service levels, oracles, adjustments,
  receipts) and orders that differ only as expected or as noise are plain tables.

The lanes come from each side's ``journal.jsonl``: read once per side, keeping only the
exchanges of the orders drawn, so a big day's journal is never held in memory. compare.json
holds every difference; the page says wherever it shows fewer.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from harness import scenario as scenarios
from harness.compare.diff import Difference
from harness.compare.outcome import CATEGORIES
from harness.compare.play import Played, seed_folder
from harness.compare.result import Comparison, SeedComparison
from harness.oracles import evidence
from harness.oracles.view import SystemsView
from harness.report.html import CSS as RUN_CSS
from harness.report.html_lanes import LANE_EDGE, exchange_rows, lane_axis, lane_svg
from harness.report.html_svg import FAIL_COLOUR, esc
from harness.report.run_files import JOURNAL, STATE
from simulators.common.faults import Fault

MAX_ORDERS = 20  # differing orders drawn per seed; the others are named, compare.json has all
MAX_NAMED = 200  # orders named in the "N of M shown" line before "..."
MAX_ROWS = 200  # rows of a plain difference table per seed
MAX_EXCHANGES = 150  # exchanges drawn per order and side (those that went wrong first)
MAX_ORPHANS = 20_000  # ref-less exchanges held while their correlation id is not yet known
MAX_ITEMS = 60  # items of a list or mapping value shown
MAX_CHARS = 800  # characters of a scalar value shown
VERDICTS = ("unexplained", "expected", "noise")
ANY_MIDNIGHT = datetime(2000, 1, 1, tzinfo=UTC)  # a lane's epoch when the scenario is gone

CSS = (
    RUN_CSS
    + f"""
.differing-order{{border-left:4px solid {LANE_EDGE}}}h3{{font-size:14px;margin:20px 0 8px}}
td.val{{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all;width:34%}}
mark{{background:#fbe3a6;color:inherit;border-radius:2px}}.side h4{{margin:12px 0 0;
font-size:13px}}.side-a{{color:#3b6ea8}}.side-b{{color:#8a5aa8}}.tag{{display:inline-block;
padding:0 8px;border-radius:9px;font-size:12px;font-weight:600}}.tag.unexplained{{
background:#f7d4ce;color:{FAIL_COLOUR}}}.tag.expected{{background:#dbe7f5;color:#244a75}}
.tag.noise{{background:#e6e9ef;color:#5b6475}}tr.quiet td{{color:#9aa1ad}}
tr.noise td,tr.expected td{{color:#5b6475}}.cols{{display:grid;grid-template-columns:1fr 1fr;
gap:14px}}td.num{{white-space:nowrap}}tr.total td{{font-weight:600;border-top:2px solid #d5d9e1}}
"""
)


@dataclass
class SideLanes:
    """One play's exchanges about the orders drawn, and what its lanes' axis needs."""

    epoch: datetime
    faults: tuple[Fault, ...]
    by_order: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)  # exchanges about it in all
    problem: str | None = None  # why there is nothing to draw from


def write(comparison: Comparison, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "report.html"
    path.write_text(render(comparison, report_dir), encoding="utf-8")
    return path


def render(comparison: Comparison, report_dir: Path | None = None) -> str:
    """The whole page; ``report_dir`` is where it goes, to link each play's own report."""
    verdict = "SAME" if comparison.passed else "DIFFERENT"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>twinyard compare: {esc(comparison.scenario)} {verdict}</title>",
        f"<style>{CSS}</style></head><body><main>",
        header(comparison),
        "<h2>Differences by category</h2>",
        category_table(comparison),
    ]
    for seed in comparison.seeds:
        parts.append(seed_section(seed, report_dir))
    parts.append("</main></body></html>")
    return "".join(parts)


# -- the header and the category table --------------------------------------------------------
def header(comparison: Comparison) -> str:
    """What was compared with what, how close counts as the same, and the verdict."""
    verdict, badge = ("SAME", "pass") if comparison.passed else ("DIFFERENT", "fail")
    spec, tol = comparison.spec, comparison.spec.tolerances
    seeds = list(dict.fromkeys(_seed_name(s.seed) for s in comparison.seeds))  # as given
    noise = any(s.a2 is not None for s in comparison.seeds)
    rows = [
        ("scenario", comparison.scenario),
        ("A", comparison.a),
        ("B", comparison.b),
        ("seeds", ", ".join(seeds) or "none"),
        ("noise", "measured: A played twice" if noise else "not measured (no --noise)"),
        (
            "the same when",
            f"instants within {tol.time_s:g} s, amounts within {tol.amount:g}, latencies "
            f"within {_latency(tol.latency_s)} or {tol.latency_ratio:.0%}",
        ),
        (
            "compare file",
            f"{len(spec.ignore)} field(s) ignored, {len(spec.expected)} expected difference(s)",
        ),
        ("wall time", f"{comparison.wall_s:.1f} s"),
    ]
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return (
        f"<header class=card><h1>compare {esc(Path(comparison.scenario).name)} "
        f"<span class='badge {badge}'>{verdict}</span></h1>"
        "<p class=sub>The same scenario world played against two stacks, compared by business "
        "key (order, SKU, receipt, service level, oracle). compare.json holds every "
        f"difference.</p><dl class=facts>{facts}</dl></header>"
    )


def category_table(comparison: Comparison) -> str:
    """Every category with its count per verdict; categories with no difference greyed."""
    counted = comparison.by_category()
    rows = []
    for name, counts in counted.items():
        quiet = "" if sum(counts.values()) else " class=quiet"
        cells = "".join(
            f"<td class='num{' bad' if v == 'unexplained' and counts[v] else ''}'>{counts[v]}</td>"
            for v in VERDICTS
        )
        rows.append(
            f"<tr data-category={esc(name)}{quiet}><td><b>{esc(name)}</b><br>"
            f"<span class=sub>{esc(CATEGORIES[name])}</span></td>{cells}</tr>"
        )
    totals = "".join(f"<td class=num>{sum(c[v] for c in counted.values())}</td>" for v in VERDICTS)
    head = "<tr><th>category</th>" + "".join(f"<th>{v}</th>" for v in VERDICTS) + "</tr>"
    total = f"<tr class=total><td>all</td>{totals}</tr>"
    return f"<div class=card><table class=categories>{head}{''.join(rows)}{total}</table></div>"


# -- a scenario and seed ----------------------------------------------------------------------
def seed_section(seed: SeedComparison, report_dir: Path | None) -> str:
    """Orders identical and differing, the plays, the differing orders' cards and the rest."""
    slug = f"{seed.scenario}-{seed_folder(seed.seed)}"
    badge = "pass" if seed.passed else "fail"
    title = f"{seed.scenario}, {_seed_name(seed.seed)}"
    parts = [
        f"<section class=seed id='{esc(slug)}'><h2>{esc(title)} "
        f"<span class='badge {badge}'>{'SAME' if seed.passed else 'DIFFERENT'}</span></h2>"
    ]
    plays = plays_table(seed, report_dir)
    if seed.error:
        parts.append(f"<div class=card><p class=bad>not compared: {esc(seed.error)}</p>{plays}")
        return "".join([*parts, "</div></section>"])
    orders, differing = seed.orders, seed.differing_orders
    counts = {v: sum(d.verdict == v for d in seed.differences) for v in VERDICTS}
    parts.append(
        f"<div class='card seed-summary'><p><b>{len(orders) - len(differing)}</b> of "
        f"{len(orders)} orders identical, <b>{len(differing)}</b> differing. Differences: "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + f".</p>{plays}</div>"
    )
    drawn = list(differing)[:MAX_ORDERS]
    if drawn:
        a, b = read_lanes(seed.a, drawn), read_lanes(seed.b, drawn)
        parts += ["<h3>Differing orders</h3>", shown_line(list(differing), drawn)]
        by_order: dict[str, list[Difference]] = defaultdict(list)
        for d in seed.differences:
            if d.order in differing:
                by_order[d.order].append(d)
        parts += [order_card(slug, order, by_order[order], a, b) for order in drawn]
    explained = [d for d in seed.differences if d.order is not None and d.order not in differing]
    if explained:
        parts.append("<h3>Orders that differ only as expected or as noise</h3>")
        parts.append(f"<div class=card>{difference_table(explained, 'order')}</div>")
    beyond = [d for d in seed.differences if d.order is None]
    if beyond:
        parts.append("<h3>Differences beyond orders</h3>")
        parts.append(f"<div class=card>{difference_table(beyond, 'key')}</div>")
    if not seed.differences:
        parts.append("<p class=sub>No differences: every order and every total the same.</p>")
    return "".join([*parts, "</section>"])


def plays_table(seed: SeedComparison, report_dir: Path | None) -> str:
    """Each play: its target, verdict, failing oracles, and a link to its own report."""
    rows = []
    for played in (seed.a, seed.b, seed.a2):
        if played is None:
            continue
        name = {"a": "A", "b": "B", "a2": "A again"}.get(played.side.name, played.side.name)
        if played.passed is None:
            result = f"<span class=bad>not played</span> {esc(played.error or '')}"
        elif played.passed:
            result = "<span class=ok>pass</span>"
        else:
            result = "<span class=bad>FAIL</span>"
        target = esc(played.side.target) + "".join(
            f"<br><span class=sub>--set {esc(o)}</span>" for o in played.side.overrides
        )
        rows.append(
            f"<tr data-side={esc(played.side.name)}><td><b>{esc(name)}</b></td>"
            f"<td><code>{target}</code></td><td>{result}</td>"
            f"<td>{esc(', '.join(played.failing_oracles)) or '<span class=sub>none</span>'}</td>"
            f"<td class=num>{played.exit_code}</td><td class=num>{played.wall_s:.1f} s</td>"
            f"<td>{_report_link(played, report_dir)}</td></tr>"
        )
    head = (
        "<tr><th>play</th><th>target</th><th>verdict</th><th>failing oracles</th>"
        "<th>exit</th><th>wall</th><th>its reports</th></tr>"
    )
    return f"<table class=plays>{head}{''.join(rows)}</table>"


def _report_link(played: Played, report_dir: Path | None) -> str:
    """The play's own report.html, relative to this page, when it wrote one."""
    page = played.folder / "report.html"
    if report_dir is None or not page.is_file():
        return f"<code>{esc(played.folder)}</code>"
    href = quote(Path(os.path.relpath(page, report_dir)).as_posix())
    return f"<a href='{esc(href)}'>report.html</a> <code>{esc(played.folder)}</code>"


def shown_line(differing: list[str], drawn: list[str]) -> str:
    """How many differing orders have a card, and where the rest are."""
    if len(drawn) == len(differing):
        return f"<p class=shown>All {len(differing)} differing orders shown.</p>"
    rest = differing[len(drawn) :]
    named = ", ".join(rest[:MAX_NAMED]) + (", ..." if len(rest) > MAX_NAMED else "")
    return (
        f"<p class=shown><b>{len(drawn)} of {len(differing)} differing orders shown.</b> "
        f"The other {len(rest)} ({esc(named)}) are in compare.json "
        "(<code>seeds[].differences</code>, every one of them).</p>"
    )


def order_card(slug: str, order: str, found: list[Difference], a: SideLanes, b: SideLanes) -> str:
    """The order's differences side by side, then A's and B's lanes on one time axis."""
    categories = sorted({d.category for d in found})
    summary = f"{len(found)} difference(s): {', '.join(categories)}"
    return (
        f"<div class='card differing-order' id='{esc(slug)}-{esc(order)}' "
        f"data-order='{esc(order)}'><b>{esc(order)}</b> <span class=sub>{esc(summary)}</span>"
        f"{difference_table(found, None)}{lanes(order, a, b)}</div>"
    )


def lanes(order: str, a: SideLanes, b: SideLanes) -> str:
    """A's lane over B's, both on the axis spanning both sides' exchanges about the order."""
    mine = {"a": a.by_order.get(order, []), "b": b.by_order.get(order, [])}
    both = mine["a"] + mine["b"]
    if not both:
        why = "; ".join(p for p in (a.problem, b.problem) if p)
        return f"<p class=sub>No exchanges about {esc(order)} in either journal. {esc(why)}</p>"
    axis = lane_axis(a.epoch, both)
    parts, tables = ["<div class=lanes>"], []
    for name, side in (("a", a), ("b", b)):
        exchanges, total = mine[name], side.counted.get(order, 0)
        drawn = f"{len(exchanges)} of {total}" if total > len(exchanges) else f"{total}"
        note = f" ({side.problem})" if side.problem else ""
        parts.append(
            f"<div class=side data-side={name}><h4><span class=side-{name}>{name.upper()}</span>"
            f" <span class=sub>{drawn} exchange(s) about {esc(order)}{esc(note)}</span></h4>"
            f"{lane_svg(exchanges, axis, side.faults)}</div>"
        )
        tables.append(
            f"<div><b class=side-{name}>{name.upper()}</b><table>{exchange_rows(exchanges)}"
            "</table></div>"
        )
    parts.append(
        f"</div><details><summary>exchanges</summary><div class=cols>{''.join(tables)}</div>"
        "</details>"
    )
    return "".join(parts)


def difference_table(found: Sequence[Difference], key: str | None) -> str:
    """Differences as rows: category, (key,) field, A's value, B's value, and the verdict
    with its reason; unexplained first, at most ``MAX_ROWS``."""
    ranked = sorted(found, key=lambda d: VERDICTS.index(d.verdict))
    head = f"<th>{esc(key)}</th>" if key else ""
    rows = []
    for d in ranked[:MAX_ROWS]:
        named = f"<td>{esc(d.key)}</td>" if key else ""
        reason = f" <span class=sub>{esc(d.reason)}</span>" if d.reason else ""
        rows.append(
            f"<tr class={d.verdict} data-verdict={d.verdict} data-category={esc(d.category)} "
            f"data-field={esc(d.field)}><td>{esc(d.category)}</td>{named}<td>{esc(d.field)}</td>"
            f"<td class=val data-side=a>{value_html(d.field, d.a, d.b)}</td>"
            f"<td class=val data-side=b>{value_html(d.field, d.b, d.a)}</td>"
            f"<td><span class='tag {d.verdict}'>{d.verdict}</span>{reason}</td></tr>"
        )
    more = len(ranked) - MAX_ROWS
    tail = f"<p class=sub>and {more} more in compare.json</p>" if more > 0 else ""
    return (
        f"<table class=diff><tr><th>category</th>{head}<th>field</th><th>A</th><th>B</th>"
        f"<th>verdict</th></tr>{''.join(rows)}</table>{tail}"
    )


def value_html(field_name: str, value: Any, other: Any) -> str:
    """A value as compact JSON, escaped; in a list or mapping the items the other side does
    not have are marked. A record on one side only reads present / absent."""
    if field_name == "present":
        return "present" if value else "absent"
    if isinstance(value, list) and isinstance(other, list):
        items = [_marked(compact(v), v not in other) for v in value[:MAX_ITEMS]]
        return "[" + ",".join(items) + _more(len(value)) + "]"
    if isinstance(value, dict) and isinstance(other, dict):
        items = [
            _marked(f"{compact(k)}:{compact(v)}", k not in other or other[k] != v)
            for k, v in list(value.items())[:MAX_ITEMS]
        ]
        return "{" + ",".join(items) + _more(len(value)) + "}"
    text = compact(value)
    return esc(text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "...")


def compact(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _marked(text: str, differs: bool) -> str:
    text = text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "..."
    return f"<mark>{esc(text)}</mark>" if differs else esc(text)


def _more(count: int) -> str:
    return f",... {count - MAX_ITEMS} more" if count > MAX_ITEMS else ""


def _seed_name(seed: int | None) -> str:
    return "its own seed" if seed is None else f"seed {seed}"


# -- reading a play's journal -----------------------------------------------------------------
def read_lanes(played: Played, orders: Collection[str]) -> SideLanes:
    """The play's exchanges about ``orders``, its journal streamed once.

    An exchange is about an order when its business reference leads to it (the order, its
    WMS orders, its TMS shipments), or when it names none but carries a correlation id one of
    the order's exchanges carries (as ``twinyard trace`` counts them). Each order keeps at
    most ``MAX_EXCHANGES``, those that went wrong first, in journal order."""
    epoch, faults = _clock(played)
    side = SideLanes(epoch, faults)
    journal, state = played.folder / JOURNAL, played.folder / STATE
    try:
        view = SystemsView(orjson.loads(state.read_bytes()))
        found = _stream(journal, view, set(orders))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        side.problem = f"no journal to draw from in {played.folder}: {exc}"
        return side
    for order, entries in found.items():
        side.counted[order] = len(entries)
        side.by_order[order] = _chosen(entries)
    return side


def _stream(
    journal: Path, view: SystemsView, wanted: set[str]
) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """(line number, exchange) per wanted order."""
    found: dict[str, list[tuple[int, dict[str, Any]]]] = {order: [] for order in wanted}
    by_correlation: dict[str, set[str]] = defaultdict(set)
    orphans: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    held = 0
    with journal.open("rb") as lines:
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            entry = orjson.loads(line)
            order = view.order_of(entry.get("ref"))
            correlation = entry.get("correlation_id")
            if order is not None:  # about an order: that order's, whatever it carries
                if order in wanted:
                    found[order].append((n, evidence.exchange_line(entry)))
                    if correlation:
                        by_correlation[correlation].add(order)
            elif correlation in by_correlation:
                for known in by_correlation[correlation]:
                    found[known].append((n, evidence.exchange_line(entry)))
            elif correlation and held < MAX_ORPHANS:
                orphans[correlation].append((n, evidence.exchange_line(entry)))
                held += 1
    for correlation, entries in orphans.items():
        for known in by_correlation.get(correlation, ()):
            found[known].extend(entries)
    return found


def _chosen(entries: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """At most ``MAX_EXCHANGES``, those that went wrong first, back in journal order."""
    entries = sorted(entries, key=lambda ne: ne[0])
    if len(entries) > MAX_EXCHANGES:
        wrong = [e for e in entries if _went_wrong(e[1])]
        rest = [e for e in entries if not _went_wrong(e[1])]
        entries = sorted((wrong + rest)[:MAX_EXCHANGES], key=lambda ne: ne[0])
    return [line for _, line in entries]


def _went_wrong(exchange: dict[str, Any]) -> bool:
    return not exchange["status"] or exchange["status"] >= 400 or bool(exchange["fault"])


def _clock(played: Played) -> tuple[datetime, tuple[Fault, ...]]:
    """The play's epoch and faults (the scenario with its side's overrides): the lanes'
    clock times and fault bands. Any midnight keeps the times of day right without it."""
    try:
        scenario = scenarios.load(played.scenario, played.side.overrides)
    except (scenarios.ScenarioError, OSError):
        return ANY_MIDNIGHT, ()
    return scenario.epoch, scenario.faults


def _latency(seconds: float | None) -> str:
    return "two wall seconds of the scenario's clock" if seconds is None else f"{seconds:g} s"
