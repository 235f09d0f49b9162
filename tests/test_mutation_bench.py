"""The pure helpers of benchmarks/mutation_score.py: exclusions, sampling, triage, score.

The benchmark itself (hundreds of scenario runs) is never run here; Cosmic Ray is not needed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location(
        "mutation_score", ROOT / "benchmarks" / "mutation_score.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


ms = _load()

DEFECTS = textwrap.dedent(
    """
    NO_DEDUP = "no-dedup"
    STRICT = "strict-parsing"
    HONEST = "honest"
    NAMES = frozenset({NO_DEDUP})
    """
)

CODE = textwrap.dedent(
    """
    from __future__ import annotations


    def stale(order: dict[str, int] | None, defects) -> bool:
        if NO_DEDUP in defects:
            return False
        return order is not None and order["seq"] > 1


    def qty(line, picked, defects) -> int:
        if NO_DEDUP in defects and picked is not None:
            return picked + 1
        return line - 1


    def once(kind, defects) -> bool:
        return all(TABLE[name] != kind for name in defects if name in TABLE)


    class Client:
        def __init__(self, defects) -> None:
            self.strict = STRICT in defects
            self.honour = HONEST not in defects

        def call(self, answer):
            blind = NO_DEDUP in self.defects
            key = None if blind else answer + 1
            if self.strict and answer is not None:
                return parse(answer)
            return answer if self.honour else 0.5


    def parse(answer):
        return helper(answer) * 2


    def helper(answer):
        return answer - 1
    """
)


def _line(text: str) -> int:
    return next(i for i, line in enumerate(CODE.splitlines(), 1) if text in line)


def _excluded(pos: tuple[int, int]) -> str | None:
    found = ms.exclusions({"code.py": CODE}, ms.defect_names(DEFECTS))
    return found.reason("code.py", pos)


def test_defect_names_are_the_string_constants():
    assert ms.defect_names(DEFECTS) == {"NO_DEDUP", "STRICT", "HONEST"}


def test_a_defect_branch_is_excluded_and_its_test_is_not():
    line = _line("return False")
    assert _excluded((line, 15)) == "defect-only"
    assert _excluded((_line("if NO_DEDUP in defects:"), 16)) is None  # the `in` is live
    assert _excluded((_line('order["seq"] > 1'), 40)) is None


def test_what_a_false_defect_test_short_circuits_is_excluded():
    line = _line("if NO_DEDUP in defects and picked")
    source = CODE.splitlines()[line - 1]
    assert _excluded((line, source.index("is not"))) == "defect-only"
    assert _excluded((line, source.index(" in "))) is None
    assert _excluded((_line("return picked + 1"), 20)) == "defect-only"
    assert _excluded((_line("return line - 1"), 16)) is None


def test_a_loop_over_the_defect_set_is_excluded():
    line = _line("return all(")
    source = CODE.splitlines()[line - 1]
    assert _excluded((line, source.index("!="))) == "defect-only"
    assert _excluded((line, source.index("if name in") + 8)) == "defect-only"


def test_flags_assigned_from_defect_tests():
    call = CODE.splitlines()
    strict = _line("if self.strict and answer")
    assert _excluded((strict, call[strict - 1].index("is not"))) == "defect-only"
    assert _excluded((_line("return parse(answer)"), 20)) == "defect-only"
    honour = _line("if self.honour else 0.5")
    assert _excluded((honour, call[honour - 1].index("0.5"))) == "defect-only"
    assert _excluded((honour, call[honour - 1].index("self.honour"))) is None
    blind = _line("key = None if blind")
    assert _excluded((blind, call[blind - 1].index("+"))) is None  # the live branch


def test_functions_called_only_from_defect_code_are_excluded_to_a_fixpoint():
    found = ms.exclusions({"code.py": CODE}, ms.defect_names(DEFECTS))
    assert set(found.dead_functions) == {"parse", "helper"}
    assert found.reason("code.py", (_line("return answer - 1"), 18)) == "defect-only"


def test_annotations_are_excluded():
    line = _line("def stale(")
    source = CODE.splitlines()[line - 1]
    assert _excluded((line, source.index("|"))) == "annotation"


def test_binary_operator_spans_skip_keyword_only_markers_and_unpacking():
    code = "def f(a, *, b):\n    return {**a, 'x': a * b}\n"
    spans = ms.binary_operator_spans(ms.ast.parse(code))
    assert not any((1, 9) in s for s in spans)  # the `*` of `*,`
    assert not any((2, 12) in s for s in spans)  # the `**` of `{**a`
    assert any((2, 25) in s for s in spans)  # a * b


def _population(n: int):
    return [ms.Mutant("m.py", i, 0, "core/NumberReplacer", i) for i in range(n)]


def test_sample_is_reproducible_in_source_order_and_capped():
    population = _population(500)
    first = ms.sample(population, 200, 1)
    assert first == ms.sample(list(reversed(population)), 200, 1)
    assert first == sorted(first) and len(set(first)) == 200
    assert first != ms.sample(population, 200, 2)
    assert len(ms.sample(population[:10], 200, 1)) == 10


def test_key_and_one_line_diff():
    mutant = ms.Mutant("steps.py", 270, 8, "core/ReplaceComparisonOperator_Gt_Lt", 3)
    assert mutant.key == "steps.py:270:ReplaceComparisonOperator_Gt_Lt:3"
    before = "a = 1\nif x > 1:\n    pass\n"
    assert ms.one_line_diff(before, before.replace(">", "<")) == "if x > 1: -> if x < 1:"
    decorated = "\n\n# note\n@dataclass\nclass A:\n    pass\n"
    assert ms.one_line_diff(decorated, "\n\nclass A:\n    pass\n") == "@dataclass -> (deleted)"


def _result(key: str, diff: str, status: str = ms.SURVIVED):
    file, line, op, occurrence = key.split(":")
    return ms.Result(key, file, int(line), op, int(occurrence), diff, status)


def test_triage_by_key_by_moved_code_and_stale_entries():
    entries = {
        "a.py:10:AddNot:1": {"verdict": "equivalent", "reason": "log text", "diff": "x -> y"},
        "a.py:20:AddNot:2": {"verdict": "gap", "reason": "r", "catch": "c", "diff": "p -> q"},
    }
    assert ms.triage_for(_result("a.py:10:AddNot:1", "x -> y"), entries).verdict == "equivalent"
    moved = ms.triage_for(_result("a.py:25:AddNot:2", "p -> q"), entries)
    assert moved.verdict == "gap" and moved.moved and moved.catch == "c"
    assert ms.triage_for(_result("a.py:10:AddNot:1", "x -> z"), entries) is None  # stale
    assert ms.triage_for(_result("b.py:10:AddNot:1", "x -> y"), entries) is None


def test_a_bad_triage_verdict_is_refused(tmp_path):
    path = tmp_path / "triage.yaml"
    path.write_text("mutants:\n  'a.py:1:AddNot:0': {verdict: maybe, reason: x}\n")
    with pytest.raises(ValueError, match="verdict"):
        ms.load_triage(path)


def test_score_leaves_equivalent_survivors_out_of_the_denominator():
    results = [_result(f"a.py:{i}:AddNot:{i}", "", ms.KILLED) for i in range(6)]
    results += [
        _result("a.py:7:AddNot:7", "", ms.ERROR),
        _result("a.py:8:AddNot:8", "", ms.TIMEOUT),
    ]
    survivors = [_result(f"b.py:{i}:AddNot:{i}", "") for i in range(4)]
    survivors[0].triage, survivors[1].triage = ms.EQUIVALENT, ms.GAP
    s = ms.score(results + survivors)
    assert (s.sampled, s.killed, s.errors, s.timeouts, s.survived) == (12, 8, 1, 1, 4)
    assert (s.equivalent, s.gaps, s.untriaged) == (1, 1, 2)
    assert s.score == pytest.approx(8 / 11)
    low, high = s.interval()
    assert low < 8 / 11 < high


def test_wilson_interval():
    assert ms.wilson(0, 0) == (0.0, 1.0)
    low, high = ms.wilson(150, 200)
    assert low == pytest.approx(0.6856, abs=1e-3) and high == pytest.approx(0.8046, abs=1e-3)


REACHED = textwrap.dedent(
    """
    @decorator(
        limit=3 + 1,
    )
    def handle(event):
        if (event.kind == "scan"
                and event.seq > 2):
            return post(event)
        try:
            return parse(event)
        except ValueError:
            return None
    """
)


def _mutant_at(line: int, col: int) -> object:
    return ms.Mutant("steps.py", line, col, "core/ReplaceComparisonOperator_Gt_GtE", 0)


def test_statement_lines_run_from_a_statements_first_line_to_the_mutant():
    tree = ms.ast.parse(REACHED)
    assert ms.statement_lines(tree, 7, 18) == range(6, 8)  # `event.seq > 2`, inside the `if`
    assert ms.statement_lines(tree, 8, 19) == range(8, 9)  # in the body: its own statement
    assert ms.statement_lines(tree, 6, 8) == range(6, 8)  # `if (`: its whole condition
    assert ms.statement_lines(tree, 3, 10) == range(2, 6)  # a decorator's argument: `@` to `def`
    assert ms.statement_lines(tree, 11, 11) == range(9, 12)  # `except`: as its `try`


def test_a_mutant_is_played_only_where_its_statement_ran():
    tree = ms.ast.parse(REACHED)
    ordered = [(Path("a.yaml"), 60.0), (Path("b.yaml"), 90.0), (Path("c.yaml"), 60.0)]
    executed = {
        "a": {"steps.py": frozenset({2, 5, 6, 9, 10})},  # parsed, never a scan
        "b": {"steps.py": frozenset({2, 5, 6, 8})},  # a scan posted
        "c": {"steps.py": frozenset({2, 5, 9, 10, 11, 12}), "app.py": frozenset({8})},
    }
    reach = ms.Reach(executed, {"steps.py": tree})
    assert reach.scenarios(_mutant_at(8, 19), ordered) == [ordered[1]]
    assert reach.scenarios(_mutant_at(7, 18), ordered) == ordered[:2]  # the `if` ran in a, b
    assert reach.scenarios(_mutant_at(11, 11), ordered) == [ordered[0], ordered[2]]  # `try` ran
    executed_nowhere = ms.Reach({"a": {"app.py": frozenset({8})}}, {"steps.py": tree})
    assert executed_nowhere.scenarios(_mutant_at(8, 19), ordered) == []


def test_the_coverage_pass_runs_the_stack_under_coverage_with_one_file_per_process(tmp_path):
    command = ms.shlex.split(ms.coverage_stack_cmd("/venv/bin/python", tmp_path))
    assert command[:4] == ["/venv/bin/python", "-m", "coverage", "run"]
    assert "--parallel-mode" in command  # a restarted stack writes its own data file
    assert f"--data-file={tmp_path / '.coverage'}" in command
    assert command[-2:] == ["-m", "reference_stack"]


def test_a_resumed_run_keeps_its_baseline_only_for_the_same_commit_and_library(tmp_path):
    """A sample longer than a session resumes without playing the clean library and the
    coverage pass again (half an hour on a loaded machine), but only where nothing that
    judges it changed: the source root's commit (a clean checkout) and the scenario files."""
    import subprocess

    root = tmp_path / "root"
    (root / "scenarios").mkdir(parents=True)
    scenario = root / "scenarios" / "a.yaml"
    scenario.write_text("name: a\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    files = {"a": scenario}
    stamp = ms.baseline_stamp(root, files)
    assert stamp["commit"] is not None
    clean = [ms.Run("a", "passed", 3.5, [], 12)]
    reach = ms.Reach({"a": {"steps.py": frozenset({3, 1})}}, {})
    payload = {"baseline": ms.baseline_record(stamp, clean, reach)}
    payload = json.loads(json.dumps(payload))  # as the JSON file keeps it
    kept = ms.kept_baseline(payload, ms.baseline_stamp(root, files))
    assert kept is not None
    assert kept.clean == clean and kept.executed == {"a": {"steps.py": frozenset({1, 3})}}
    scenario.write_text("name: a\nseed: 2\n")  # the library changed: dirty, and another digest
    assert ms.kept_baseline(payload, ms.baseline_stamp(root, files)) is None
    subprocess.run([*git, "commit", "-qam", "y"], check=True)  # committed: another commit
    assert ms.kept_baseline(payload, ms.baseline_stamp(root, files)) is None
    assert ms.kept_baseline({}, stamp) is None  # a JSON from before baselines were kept
