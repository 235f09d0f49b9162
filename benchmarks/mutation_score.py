"""Mutation score of the incident library: how much of the reference stack's business logic
would the scenarios in ``scenarios/incidents/`` (judged by twinyard's oracles) catch if broken?

    .venv/bin/pip install -e '.[mutation]'
    .venv/bin/python benchmarks/mutation_score.py [--sample 200] [--seed 1] [--jobs 2]
        [--scenarios DIR] [--json reports/mutation.json] [--only KEY ...] [--source-root DIR]

Each sampled mutant is one small edit of one business module of ``reference_stack`` (a ``<``
made ``<=``, a ``not`` added, a number moved by one, ...). For each, a private copy of the
package with that edit is made and the incident library is played against a stack started
from that copy, scenario after scenario, until one fails (the mutant is *killed*) or all pass
(it *survived*). A run that cannot judge (exit 2, a crash, a stack that will not start) or
that overruns its timeout (4x the scenario's clean time, at least 60 s; a second run with twice
that confirms it) kills the mutant too ("error", "timeout"). Survivors are looked up in
``benchmarks/mutation_triage.yaml``: ``equivalent`` (no observable business behaviour changed)
leaves the denominator, ``gap`` is a real miss of the library. Score = killed / (sampled -
equivalent). docs/mutation.md has the figures and how to triage.

Mutant generation: Cosmic Ray (``cosmic-ray>=8.7``, the ``mutation`` extra). Both maintained
tools were tried here. Cosmic Ray's operators are plugins with a small public API: every
position an operator can mutate (``operator.mutation_positions`` over
``cosmic_ray.ast.ast_nodes``) and one mutation applied to a source text
(``cosmic_ray.mutating.mutate_code(code, operator, occurrence)``), which is what its own
``init`` and workers use. A mutant is then named by (module, operator, occurrence): the stable
key the triage file needs, and a plain source edit that runs as ordinary code in the stack's
own process. mutmut 3.8 builds its mutants as "trampolines" (every function of a module
copied once per mutant, chosen at call time by ``MUTANT_UNDER_TEST``), drives them from its
pytest-based runner and stats phase, names them by function and index only, keeps its
per-mutant API in internal modules (moved from ``mutmut.file_mutation`` to
``mutmut.mutation.file_mutation`` in 3.8), will not enumerate without a ``[tool.mutmut]``
configuration in the working folder, and skips every decorated function. Cosmic Ray's runner is
serial and test-command based, so this script runs the library itself, ``--jobs`` mutants side
by side.

Not mutated: ``defects.py`` (the switchable known defects, the selftest's subject),
``config.py`` (environment parsing; a broken variable is a start-up error, not business),
``__main__.py``, ``stack.py`` and ``subscriptions.py`` (process start-up, wiring and webhook
subscription: plumbing). Inside the mutated modules, mutants are left out where they cannot
change a clean stack: type annotations (every module has ``from __future__ import
annotations``, so they are never evaluated), code reachable only with a known defect switched
on (``if NAME in defects:`` bodies, what a defect flag short-circuits, loops over the empty
defect set), and functions referenced only from such code (``parse_strictly``).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import difflib
import hashlib
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "reference_stack"
MODULES = ("handlers.py", "steps.py", "worker.py", "store.py", "clients.py", "app.py")
TRIAGE_FILE = REPO / "benchmarks" / "mutation_triage.yaml"
MIN_TIMEOUT_S = 60.0
TIMEOUT_FACTOR = 4.0
# Cosmic Ray's ExceptionReplacer writes ``except CosmicRayTestingException:``; its own test
# process imports that class, a stack process does not, so the mutant copy defines it.
TESTING_EXCEPTION = "CosmicRayTestingException"
KILLED, SURVIVED, ERROR, TIMEOUT = "killed", "survived", "error", "timeout"
INCOMPETENT = "incompetent"  # the mutated module does not compile: not run, not counted
KILLING = (KILLED, ERROR, TIMEOUT)
EQUIVALENT, GAP = "equivalent", "gap"
# Cosmic Ray 8.7 takes the keyword-only marker (``def f(a, *, b)``) and dict unpacking
# (``{**a}``) for binary operators: their "mutants" are syntax errors or no change at all.
NOT_AN_OPERATOR = "not a binary operator"


# -- which code may be mutated -------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Span:
    """A source region, lines 1-based and columns 0-based (``ast`` and parso agree)."""

    start: tuple[int, int]
    end: tuple[int, int]

    @classmethod
    def of(cls, node: ast.AST) -> Span:
        end_line = node.end_lineno or node.lineno  # type: ignore[attr-defined]
        end_col = node.end_col_offset or 0  # type: ignore[attr-defined]
        return cls((node.lineno, node.col_offset), (end_line, end_col))  # type: ignore[attr-defined]

    def __contains__(self, pos: object) -> bool:
        return isinstance(pos, tuple) and self.start <= pos < self.end


def defect_names(defects_source: str) -> frozenset[str]:
    """The constants of ``reference_stack/defects.py`` that name a defect (``NO_DEDUP = ...``)."""
    names = set()
    for node in ast.parse(defects_source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper()
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            names.add(node.targets[0].id)
    return frozenset(names)


def _is_defect_set(node: ast.AST) -> bool:
    """``defects``, ``self.defects``, ``stack.config.defects``: the set of switched-on defects."""
    return (isinstance(node, ast.Name) and node.id == "defects") or (
        isinstance(node, ast.Attribute) and node.attr == "defects"
    )


class _Flags:
    """What a clean stack knows for sure about an expression: ``NAME in defects`` is False,
    ``NAME not in defects`` True, and so are names and attributes assigned from them."""

    def __init__(self, names: frozenset[str], attributes: Mapping[str, bool]) -> None:
        self.names = names
        self.attributes = dict(attributes)
        self.locals: dict[str, bool] = {}

    def value(self, node: ast.AST) -> bool | None:
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and isinstance(node.left, ast.Name)
            and node.left.id in self.names
            and _is_defect_set(node.comparators[0])
        ):
            return isinstance(node.ops[0], ast.NotIn)
        if isinstance(node, ast.Name):
            return self.locals.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return self.attributes.get(node.attr) if node.value.id == "self" else None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.value(node.operand)
            return None if inner is None else not inner
        if isinstance(node, ast.BoolOp):
            values = [self.value(v) for v in node.values]
            decisive = isinstance(node.op, ast.Or)  # or: a True decides; and: a False
            if decisive in values:
                return decisive
            if all(v is not None for v in values):
                return not decisive
        return None


def annotation_spans(tree: ast.AST) -> list[Span]:
    """Every type annotation: never evaluated under ``from __future__ import annotations``."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            spans.append(Span.of(node.annotation))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            spans.append(Span.of(node.returns))
        elif isinstance(node, ast.AnnAssign):
            spans.append(Span.of(node.annotation))
    return spans


def _defect_dead_spans(tree: ast.AST, names: frozenset[str]) -> list[Span]:
    """Code a clean stack never runs because a defect test decides it."""
    attributes: dict[str, bool] = {}
    probe = _Flags(names, {})
    for node in ast.walk(tree):  # self.strict = STRICT_PARSING in defects, module-wide
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            value = probe.value(node.value)
            if value is not None and isinstance(target, ast.Attribute):
                attributes[target.attr] = value
    spans: list[Span] = []

    def visit(scope: ast.AST, flags: _Flags) -> None:
        for node in ast.walk(scope):
            if node is not scope and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue  # visited with its own locals
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                value = flags.value(node.value)
                if value is not None and isinstance(node.targets[0], ast.Name):
                    flags.locals[node.targets[0].id] = value
        for node in _walk_scope(scope):
            if isinstance(node, ast.BoolOp):
                decisive = isinstance(node.op, ast.Or)
                for index, operand in enumerate(node.values[:-1]):
                    if flags.value(operand) is decisive:
                        spans.extend(Span.of(v) for v in node.values[index + 1 :])
                        break
            if isinstance(node, ast.If | ast.IfExp | ast.While):
                value = flags.value(node.test)
                branch = node.body if value is False else node.orelse if value else None
                for part in [branch] if isinstance(branch, ast.AST) else branch or []:
                    spans.append(Span.of(part))
            if isinstance(node, ast.For | ast.AsyncFor) and _is_defect_set(node.iter):
                spans.extend(Span.of(part) for part in node.body)  # the defect set is empty
            if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
                for index, generator in enumerate(node.generators):
                    if _is_defect_set(generator.iter):
                        inner = [*generator.ifs, *node.generators[index + 1 :]]
                        inner += [node.key, node.value] if isinstance(node, ast.DictComp) else []
                        inner += [] if isinstance(node, ast.DictComp) else [node.elt]
                        spans.extend(Span.of(part) for part in inner)
                        break

    visit(tree, _Flags(names, attributes))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            visit(node, _Flags(names, attributes))
    return spans


def _walk_scope(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of one function (or the module), not of the functions defined inside it."""
    pending = list(ast.iter_child_nodes(scope))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


@dataclass
class Exclusions:
    """Per module: the spans never mutated, each with why."""

    spans: dict[str, list[tuple[Span, str]]] = field(default_factory=dict)
    dead_functions: dict[str, str] = field(default_factory=dict)  # name -> why

    def reason(self, module: str, pos: tuple[int, int]) -> str | None:
        for span, why in self.spans.get(module, []):
            if pos in span:
                return why
        return None


def exclusions(sources: Mapping[str, str], names: frozenset[str]) -> Exclusions:
    """Annotations, defect-only code, and functions referenced only from defect-only code
    (iterated to a fixpoint over every module of the package, so a name is dead only when
    no live code anywhere refers to it)."""
    trees = {module: ast.parse(text) for module, text in sources.items()}
    dead = {module: _defect_dead_spans(tree, names) for module, tree in trees.items()}
    result = Exclusions()
    for module, tree in trees.items():
        result.spans[module] = [(s, "annotation") for s in annotation_spans(tree)]
        result.spans[module] += [(s, "defect-only") for s in dead[module]]
    while True:
        live_refs: set[str] = set()
        all_refs: set[str] = set()
        for module, tree in trees.items():
            for node in ast.walk(tree):
                name = _reference(node)
                if name is None:
                    continue
                all_refs.add(name)
                pos = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
                if not any(pos in span for span in dead[module]):
                    live_refs.add(name)
        grown = False
        for module, tree in trees.items():
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                name = node.name
                if name in all_refs and name not in live_refs and name not in result.dead_functions:
                    result.dead_functions[name] = f"{module}: referenced only from defect-only code"
                    dead[module].append(Span.of(node))
                    result.spans[module].append((Span.of(node), "defect-only"))
                    grown = True
        if not grown:
            return result


def binary_operator_spans(tree: ast.AST) -> list[Span]:
    """Where a binary operator's token can be: between the operands of each ``BinOp``."""
    return [
        Span(
            (node.left.end_lineno or 0, node.left.end_col_offset or 0),
            (node.right.lineno, node.right.col_offset),
        )
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
    ]


def _reference(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        return node.attr
    return None


# -- the mutants -----------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Mutant:
    module: str  # "steps.py"
    line: int
    col: int
    operator: str  # Cosmic Ray's name, "core/ReplaceComparisonOperator_Lt_LtE"
    occurrence: int  # the operator's n-th position in the module, as Cosmic Ray counts

    @property
    def op(self) -> str:
        return self.operator.split("/", 1)[-1]

    @property
    def key(self) -> str:
        return mutant_key(self.module, self.line, self.op, self.occurrence)


def mutant_key(module: str, line: int, op: str, occurrence: int) -> str:
    """``steps.py:270:ReplaceComparisonOperator_Gt_Lt:3``: the same for the same source."""
    return f"{module}:{line}:{op}:{occurrence}"


def enumerate_mutants(
    source_root: Path, modules: Sequence[str] = MODULES
) -> tuple[list[Mutant], Counter[str], Exclusions]:
    """Every mutant Cosmic Ray's core operators make in ``modules``, less the excluded ones
    (counted by reason)."""
    import cosmic_ray.plugins
    from cosmic_ray.ast import ast_nodes, get_ast

    package = source_root / PACKAGE
    sources = {p.name: p.read_text() for p in sorted(package.glob("*.py"))}
    excluded = exclusions(sources, defect_names(sources["defects.py"]))
    operators = []
    for name in cosmic_ray.plugins.operator_names():
        operator_class = cosmic_ray.plugins.get_operator(name)
        if not operator_class.arguments():  # those that need arguments need a config
            operators.append((name, operator_class()))
    population: list[Mutant] = []
    dropped: Counter[str] = Counter()
    for module in modules:
        nodes = list(ast_nodes(get_ast(sources[module])))
        binary = binary_operator_spans(ast.parse(sources[module]))
        for name, operator in operators:
            positions = (p for node in nodes for p in operator.mutation_positions(node))
            for occurrence, (start, _end) in enumerate(positions):
                why = excluded.reason(module, tuple(start))
                if (
                    why is None
                    and "ReplaceBinaryOperator" in name
                    and not any(tuple(start) in span for span in binary)
                ):
                    why = NOT_AN_OPERATOR
                if why is not None:
                    dropped[why] += 1
                    continue
                population.append(Mutant(module, start[0], start[1], name, occurrence))
    return sorted(population), dropped, excluded


def sample(population: Sequence[Mutant], n: int, seed: int) -> list[Mutant]:
    """``n`` mutants uniformly at random without replacement, the same for the same seed and
    population, listed in source order."""
    ordered = sorted(population)
    picked = random.Random(seed).sample(ordered, min(n, len(ordered)))
    return sorted(picked)


def mutated_source(source: str, mutant: Mutant) -> str | None:
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    operator = cosmic_ray.plugins.get_operator(mutant.operator)()
    mutated = mutate_code(source, operator, mutant.occurrence)
    if mutated is not None and TESTING_EXCEPTION in mutated:
        # Cosmic Ray 8.7 replaces the dot of a dotted name (``except orjson.JSONDecodeError``
        # becomes ``except orjsonCosmicRayTestingExceptionJSONDecodeError``); the mutation it
        # means is the whole name replaced.
        mutated = re.sub(rf"[\w.]*{TESTING_EXCEPTION}[\w.]*", TESTING_EXCEPTION, mutated)
    return mutated


def one_line_diff(before: str, after: str) -> str:
    """``old line -> new line`` (stripped; several changed lines joined by `` / ``)."""
    a, b = before.splitlines(), after.splitlines()
    old, new = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            old += [line.strip() for line in a[i1:i2]]
            new += [line.strip() for line in b[j1:j2]]
    # A removed decorator takes its blank lines and comments with it: not worth showing.
    old = [line for line in old if line and not line.startswith("#")]
    new = [line for line in new if line and not line.startswith("#")]
    return f"{' / '.join(old)} -> {' / '.join(new) or '(deleted)'}"


def make_copy(source_root: Path, mutant: Mutant | None, into: Path) -> tuple[Path, str]:
    """A private ``reference_stack`` under ``into`` with the mutant applied (none: clean);
    returns the folder to run from and the one-line diff. ValueError: no such mutation."""
    target = into / PACKAGE
    shutil.copytree(
        source_root / PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    if mutant is None:
        return into, ""
    path = target / mutant.module
    before = path.read_text()
    after = mutated_source(before, mutant)
    if after is None:
        raise ValueError(f"{mutant.key}: Cosmic Ray made no mutation at that occurrence")
    path.write_text(after)
    if TESTING_EXCEPTION in after:
        with (target / "__init__.py").open("a") as init:
            init.write(
                f"\nimport builtins as _b\n_b.{TESTING_EXCEPTION} = type("
                f"{TESTING_EXCEPTION!r}, (Exception,), {{}})\n"
            )
    return into, one_line_diff(before, after)


# -- running the library ---------------------------------------------------------------------
@dataclass
class Run:
    scenario: str
    status: str  # "passed", KILLED, ERROR, TIMEOUT
    wall_s: float
    oracles: list[str] = field(default_factory=list)  # failing oracles and service levels
    judged: int = 0  # oracles with something to judge (for ordering on the clean stack)
    error: str = ""


class Runner:
    def __init__(self, source_root: Path, work: Path) -> None:
        self.source_root = source_root
        self.work = work
        self.python = sys.executable
        self._live: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._count = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFSTACK_")}
        # The harness (and its oracles) come from the source root; the stack, started by
        # the harness with ``-m`` in the harness's working folder, from the private copy.
        env["PYTHONPATH"] = str(self.source_root)
        env["CI"] = "1"
        return env

    def run(
        self, copy: Path, scenario: Path, timeout_s: float, stack_cmd: str | None = None
    ) -> Run:
        with self._lock:
            self._count += 1
            report = self.work / f"run-{self._count}"
        argv = [self.python, "-m", "harness", "run", str(scenario), "--quiet"]
        argv += ["--report-dir", str(report)]
        argv += ["--stack-cmd", stack_cmd or f"{shlex.quote(self.python)} -m {PACKAGE}"]
        started = time.perf_counter()
        child = subprocess.Popen(
            argv,
            cwd=copy,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the harness and the stack it starts: one group to kill
        )
        with self._lock:
            self._live.add(child)
        try:
            try:
                _, stderr = child.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(child)
                child.communicate()
                wall = time.perf_counter() - started
                return Run(
                    scenario.stem, TIMEOUT, wall, error=f"no verdict after {timeout_s:.0f} s"
                )
        finally:
            with self._lock:
                self._live.discard(child)
        wall = time.perf_counter() - started
        try:
            return judged_run(scenario.stem, child.returncode, wall, report, stderr)
        finally:
            shutil.rmtree(report, ignore_errors=True)

    def stop_all(self) -> None:
        with self._lock:
            for child in list(self._live):
                _kill_group(child)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


def judged_run(scenario: str, code: int, wall: float, report: Path, stderr: bytes) -> Run:
    """A harness exit read back: 0 passed, 1 with a verdict killed (naming what failed),
    anything else (or 1 without a verdict: a traceback) an error."""
    verdict_file = report / "verdict.json"
    if code in (0, 1) and verdict_file.exists():
        verdict = json.loads(verdict_file.read_text())
        failing = [o["name"] for o in verdict.get("oracles", []) if not o.get("passed")]
        failing += [
            f"slo:{s['name']}" for s in verdict.get("service_levels", []) if not s.get("passed")
        ]
        judged = sum(1 for o in verdict.get("oracles", []) if o.get("checked"))
        status = "passed" if code == 0 else KILLED
        return Run(scenario, status, wall, failing, judged)
    lines = stderr.decode(errors="replace").strip().splitlines()
    tail = lines[-1] if lines else f"exit code {code}"
    tail = tail.split(" (its output: ")[0]  # the report folder is about to go
    stack_log = report / "stack.log"  # the stack's last word, usually its exception
    said = stack_log.read_text(errors="replace").strip().splitlines() if stack_log.exists() else []
    if said:
        tail += f"; stack: {said[-1].strip()}"
    return Run(scenario, ERROR, wall, error=f"exit {code}: {tail}"[:400])


@dataclass
class Result:
    key: str
    file: str
    line: int
    operator: str
    occurrence: int
    diff: str
    status: str
    scenario: str | None = None
    oracles: list[str] = field(default_factory=list)
    error: str = ""
    wall_s: float = 0.0
    scenarios_run: int = 0
    reached_by: int | None = None  # scenarios whose clean run executes the mutated statement
    triage: str | None = None  # for survivors: EQUIVALENT, GAP or None (untriaged)
    reason: str = ""
    catch: str = ""


def evaluate(
    runner: Runner,
    mutant: Mutant,
    scenarios: Sequence[tuple[Path, float]],
    reach: Reach | None = None,
    settled: Callable[[Result], bool] | None = None,
) -> Result:
    """Copy, mutate, and play the ordered library until a scenario fails: only the scenarios
    whose clean run executes the mutated statement, when ``reach`` knows them. A mutant
    ``settled`` says needs no play (triaged equivalent) survives unplayed."""
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="mutant-", dir=runner.work))
    result = Result(mutant.key, mutant.module, mutant.line, mutant.op, mutant.occurrence, "", "")
    try:
        try:
            copy, result.diff = make_copy(runner.source_root, mutant, folder)
            source = (copy / PACKAGE / mutant.module).read_text()
            with warnings.catch_warnings():  # "is" with a literal, from a replaced "=="
                warnings.simplefilter("ignore", SyntaxWarning)
                compile(source, mutant.module, "exec")
        except (ValueError, SyntaxError) as exc:
            result.status, result.error = INCOMPETENT, str(exc)
            return result
        result.status = SURVIVED
        if settled is not None and settled(result):
            result.error = "not played: triaged equivalent (--play-equivalent plays it)"
            return result
        if reach is not None:
            scenarios = reach.scenarios(mutant, scenarios)
            result.reached_by = len(scenarios)
        for scenario, timeout_s in scenarios:
            run = runner.run(copy, scenario, timeout_s)
            if run.status == TIMEOUT:  # a busy shared machine, or a hang: once more, twice as long
                run = runner.run(copy, scenario, 2 * timeout_s)
            result.scenarios_run += 1
            if run.status != "passed":
                result.status, result.scenario = run.status, run.scenario
                result.oracles, result.error = run.oracles, run.error
                break
        return result
    finally:
        result.wall_s = round(time.perf_counter() - started, 1)
        shutil.rmtree(folder, ignore_errors=True)


def order_scenarios(clean: Sequence[Run], files: Mapping[str, Path]) -> list[tuple[Path, float]]:
    """Cheap and broad first: clean seconds per oracle that had something to judge. Each with
    its timeout: TIMEOUT_FACTOR x its clean time, at least MIN_TIMEOUT_S."""
    ranked = sorted(clean, key=lambda r: (r.wall_s / max(r.judged, 1), r.scenario))
    return [(files[r.scenario], max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * r.wall_s)) for r in ranked]


# -- which scenarios can notice a mutant: line coverage of the clean library -----------------
# A mutant changes behaviour only when its statement runs. The clean library is played once
# more with the stack under coverage.py (mutmut's "stats" phase does the same): a mutant is
# then played only against the scenarios whose clean run executed its statement, and one no
# scenario executes survives unplayed. Without that, every survivor plays the whole library.
def coverage_stack_cmd(python: str, data_dir: Path) -> str:
    """The stack under coverage.py, one data file per process (a scenario may restart it)."""
    data_file = f"--data-file={data_dir / '.coverage'}"
    only_the_stack = f"--include=*/{PACKAGE}/*"
    run = [python, "-m", "coverage", "run", "--parallel-mode", data_file, only_the_stack]
    return shlex.join([*run, "-m", PACKAGE])


def executed_lines(data_dir: Path) -> dict[str, frozenset[int]]:
    """Module file name -> lines executed, from every coverage data file in ``data_dir``."""
    from coverage import CoverageData

    lines: dict[str, set[int]] = {}
    for path in sorted(data_dir.glob(".coverage.*")):
        data = CoverageData(basename=str(path))
        data.read()
        for measured in data.measured_files():
            lines.setdefault(Path(measured).name, set()).update(data.lines(measured) or ())
    return {module: frozenset(found) for module, found in lines.items()}


def statement_lines(tree: ast.AST, line: int, col: int) -> range:
    """The lines of the innermost statement holding (line, col), from its first line (its
    first decorator) to ``line``, or to the end of its header (a compound statement's lines
    before its body: a condition over several lines). Coverage reports a statement by the
    lines its bytecode carries (for ``if (`` on one line and its operands on the next ones, the
    operands' lines only); any of them executed means the statement ran. An ``except`` clause
    counts as its ``try`` (conservative: its type is evaluated only when something is
    raised)."""

    def span(node: ast.stmt) -> Span:  # a decorated definition starts at its first ``@``
        decorators = getattr(node, "decorator_list", [])
        start = min([(node.lineno, node.col_offset)] + [(d.lineno, 0) for d in decorators])
        return Span(start, Span.of(node).end)

    holding = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and (line, col) in span(n)]
    best = max(holding, key=lambda n: span(n).start, default=None)  # nested: latest start
    if best is None:
        return range(line, line + 1)
    body = getattr(best, "body", None)
    header_end = body[0].lineno - 1 if isinstance(body, list) and body else line
    return range(span(best).start[0], max(line, header_end) + 1)


@dataclass
class Reach:
    """Per scenario of the clean library, the lines of each module its stack executed."""

    executed: Mapping[str, Mapping[str, frozenset[int]]]  # scenario -> module -> lines
    trees: Mapping[str, ast.AST]  # module -> its parsed source

    def scenarios(
        self, mutant: Mutant, ordered: Sequence[tuple[Path, float]]
    ) -> list[tuple[Path, float]]:
        """The ordered scenarios whose clean run executed the mutant's statement."""
        lines = statement_lines(self.trees[mutant.module], mutant.line, mutant.col)
        return [
            (path, timeout)
            for path, timeout in ordered
            if any(n in self.executed.get(path.stem, {}).get(mutant.module, ()) for n in lines)
        ]


# -- triage and score ------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    verdict: str  # EQUIVALENT or GAP
    reason: str
    catch: str = ""
    diff: str = ""
    moved: bool = False  # matched by file, operator and diff, not by key


def load_triage(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("mutants", {}) or {}
    for key, entry in entries.items():
        if entry.get("verdict") not in (EQUIVALENT, GAP):
            raise ValueError(f"{path}: {key}: verdict must be {EQUIVALENT!r} or {GAP!r}")
    return entries


def triage_for(result: Result, entries: Mapping[str, Mapping[str, Any]]) -> Verdict | None:
    """The triage of a mutant: by key when the recorded diff still matches (an entry without a
    diff matches on the key alone), else by file, operator and diff when exactly one entry has
    them (the code moved); None when untriaged."""
    entry = entries.get(result.key)
    if entry is not None and entry.get("diff", result.diff) == result.diff:
        return _verdict(entry)
    file, _line, op, _occurrence = result.key.split(":")
    same = [
        e
        for k, e in entries.items()
        if k.split(":")[0] == file and k.split(":")[2] == op and e.get("diff") == result.diff
    ]
    if len(same) == 1:
        return _verdict(same[0], moved=True)
    return None


def _verdict(entry: Mapping[str, Any], moved: bool = False) -> Verdict:
    return Verdict(
        entry["verdict"],
        entry.get("reason", ""),
        entry.get("catch", ""),
        entry.get("diff", ""),
        moved,
    )


@dataclass
class Score:
    sampled: int
    killed: int  # all killing outcomes: an oracle, an error, a timeout
    errors: int
    timeouts: int
    survived: int
    equivalent: int
    gaps: int
    untriaged: int
    incompetent: int

    @property
    def denominator(self) -> int:
        return self.sampled - self.incompetent - self.equivalent

    @property
    def score(self) -> float:
        return self.killed / self.denominator if self.denominator else 0.0

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        return wilson(self.killed, self.denominator, z)


def score(results: Iterable[Result]) -> Score:
    results = list(results)
    status = Counter(r.status for r in results)
    survivors = [r for r in results if r.status == SURVIVED]
    return Score(
        sampled=len(results),
        killed=sum(status[s] for s in KILLING),
        errors=status[ERROR],
        timeouts=status[TIMEOUT],
        survived=len(survivors),
        equivalent=sum(1 for r in survivors if r.triage == EQUIVALENT),
        gaps=sum(1 for r in survivors if r.triage == GAP),
        untriaged=sum(1 for r in survivors if r.triage is None),
        incompetent=status[INCOMPETENT],
    )


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a sampled proportion (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# -- the command -----------------------------------------------------------------------------
def progress_line(done: int, total: int, result: Result) -> str:
    where = f"{result.file}:{result.line} {result.operator}"
    if result.status in (KILLED, ERROR, TIMEOUT):
        why = ", ".join(result.oracles) or result.error
        tail = f"by {result.scenario}: {why}"
    elif result.status == SURVIVED:
        tail = {EQUIVALENT: "(equivalent)", GAP: "(gap)"}.get(result.triage or "", "UNTRIAGED")
        if result.reached_by == 0:
            tail += " not executed by any scenario"
        elif result.reached_by is not None:
            tail += f" through {result.reached_by} scenarios"
    else:
        tail = result.error
    return (
        f"[{done:>3}/{total}] {result.status:<11} {where}  `{result.diff}`  {tail} "
        f"({result.wall_s:.0f} s)"
    )


def summary(s: Score, wall_s: float) -> str:
    low, high = s.interval()
    rows = [
        ("sampled", s.sampled),
        (
            "killed",
            f"{s.killed} (by an oracle {s.killed - s.errors - s.timeouts}, "
            f"errors {s.errors}, timeouts {s.timeouts})",
        ),
        (
            "survived",
            f"{s.survived} (equivalent {s.equivalent}, gap {s.gaps}, untriaged {s.untriaged})",
        ),
        ("errors", s.errors),
        ("timeouts", s.timeouts),
        ("equivalent (triage)", s.equivalent),
    ]
    if s.incompetent:
        rows.append(("incompetent (not run)", s.incompetent))
    rows += [
        (
            "score",
            f"{s.score:.1%} = {s.killed} / ({s.sampled} - {s.equivalent}"
            + (f" - {s.incompetent}" if s.incompetent else "")
            + ")",
        ),
        ("95% interval", f"{low:.1%} .. {high:.1%}"),
        ("wall time", f"{wall_s / 60:.1f} min ({wall_s:.0f} s)"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(payload, indent=1) + "\n")
    partial.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=200, help="mutants drawn (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="sampling seed (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants side by side (default 2)")
    parser.add_argument("--scenarios", type=Path, help="default: SOURCE_ROOT/scenarios/incidents")
    parser.add_argument("--json", type=Path, default=Path("reports/mutation.json"))
    parser.add_argument("--only", nargs="+", metavar="KEY", help="these mutant keys, unsampled")
    parser.add_argument(
        "--fresh-baseline",
        action="store_true",
        help="with --resume: play the clean baseline and the coverage pass again even when the "
        "JSON kept them for the same commit and library",
    )
    parser.add_argument("--source-root", type=Path, default=REPO, help="default: this repo")
    parser.add_argument("--triage", type=Path, default=TRIAGE_FILE)
    parser.add_argument(
        "--play-equivalent",
        action="store_true",
        help="play mutants the triage calls equivalent too (to check the triage)",
    )
    parser.add_argument("--list", action="store_true", help="list the sampled mutants; no runs")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the mutants already settled in --json (same sample) and run the rest",
    )
    parser.add_argument(
        "--rescore", action="store_true", help="re-apply the triage to --json's results; no runs"
    )
    parser.add_argument(
        "--modules",
        nargs="+",
        choices=MODULES,
        default=list(MODULES),
        metavar="FILE",
        help=f"modules to mutate (default: all of {', '.join(MODULES)})",
    )
    parser.add_argument(
        "--every-scenario",
        action="store_true",
        help="play each mutant against the whole library, not only the scenarios whose clean "
        "run executes its statement (no coverage pass)",
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # a log to tail
    if args.rescore:
        return rescore(args.json, load_triage(args.triage))
    source_root = args.source_root.resolve()
    scenario_dir = (args.scenarios or source_root / "scenarios" / "incidents").resolve()
    files = {p.stem: p for p in sorted(scenario_dir.glob("*.yaml"))}
    if not files:
        print(f"no scenarios in {scenario_dir}", file=sys.stderr)
        return 2
    try:
        population, dropped, excluded = enumerate_mutants(source_root, args.modules)
        if not args.every_scenario:
            import coverage  # noqa: F401  # the coverage pass needs it; fail before any run
    except ImportError as exc:
        print(f"{exc.name} is missing: .venv/bin/pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    if args.only:
        by_key = {m.key: m for m in population}
        unknown = [k for k in args.only if k not in by_key]
        if unknown:
            print(f"unknown mutant key(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        chosen = sorted(by_key[k] for k in args.only)
    else:
        chosen = sample(population, args.sample, args.seed)
    triage = load_triage(args.triage)
    print(
        f"{len(population)} mutants in {', '.join(args.modules)} of {source_root / PACKAGE} "
        f"(left out: {', '.join(f'{n} {why}' for why, n in sorted(dropped.items())) or 'none'}); "
        f"{len(chosen)} to run"
    )
    if args.list:
        for mutant in chosen:
            text = (source_root / PACKAGE / mutant.module).read_text()
            print(f"{mutant.key}  `{one_line_diff(text, mutated_source(text, mutant) or text)}`")
        return 0

    started = time.perf_counter()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill: stop runs, clean up
    work = Path(tempfile.mkdtemp(prefix="twinyard-mutation-"))
    runner = Runner(source_root, work)
    try:
        # 1. The library against an unmutated private copy: every scenario must pass there,
        #    which also gives each scenario's clean time (timeouts and ordering). A resumed
        #    run of the same commit and library takes the one its JSON kept (warm resume).
        clean_copy, _ = make_copy(source_root, None, work / "clean")
        stamp = baseline_stamp(source_root, files)
        warm = None
        if args.resume and not args.fresh_baseline and args.json.exists():
            warm = kept_baseline(json.loads(args.json.read_text()), stamp)
        if warm is not None:
            clean = warm.clean
            print(f"  clean baseline and coverage pass: kept from {args.json} ({stamp['commit']})")
        else:
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                jobs = files.values()
                clean = list(pool.map(lambda f: runner.run(clean_copy, f, 900.0), jobs))
        bad = [r for r in clean if r.status != "passed"]
        for r in sorted(clean, key=lambda r: r.wall_s):
            print(
                f"  clean {r.scenario:<34} {r.status:<7} {r.wall_s:5.1f} s  "
                f"{', '.join(r.oracles) or r.error}"
            )
        if bad:
            print("the unmutated stack fails the library: no score", file=sys.stderr)
            return 2
        ordered = order_scenarios(clean, files)
        # 2. The canary: a copy that cannot start must be caught, or the copy is not what runs.
        canary_dir = work / "canary"
        canary, _ = make_copy(source_root, None, canary_dir)
        app = canary / PACKAGE / "app.py"
        app.write_text(app.read_text() + '\nraise SystemExit("mutation canary")\n')
        check = runner.run(canary, ordered[0][0], ordered[0][1])
        if check.status != ERROR:
            print(
                f"canary not caught ({check.status}): the stack does not run from the copy",
                file=sys.stderr,
            )
            return 2
        print(f"  canary: a copy that cannot start is caught ({check.error})")
        print(f"  scenario order: {', '.join(p.stem for p, _ in ordered)}")
        # 3. The coverage pass: which statements each scenario's clean stack executes.
        if args.every_scenario:
            reach = None
        elif warm is not None and warm.executed is not None:
            reach = Reach(warm.executed, module_trees(clean_copy))
        else:
            reach = coverage_pass(runner, clean_copy, ordered, args)
        # 4. The mutants, --jobs side by side.
        results: list[Result] = []
        earlier_s = 0.0  # wall time of the interrupted run(s) this one resumes
        if args.resume and args.json.exists():
            done = json.loads(args.json.read_text())
            wanted = {m.key for m in chosen}
            results = [Result(**r) for r in done.get("mutants", []) if r["key"] in wanted]
            earlier_s = float(done.get("wall_s", 0.0))
            for result in results:
                apply_triage(result, triage)
            settled = {r.key for r in results}
            chosen = [m for m in chosen if m.key not in settled]
            print(f"  resuming {args.json}: {len(results)} mutants settled, {len(chosen)} to go")
        total = len(results) + len(chosen)
        payload: dict[str, Any] = {
            "source_root": str(source_root),
            "modules": list(args.modules),
            "population": len(population),
            "excluded": dict(dropped),
            "dead_functions": excluded.dead_functions,
            "sample": args.sample,
            "seed": args.seed,
            "only": args.only,
            "jobs": args.jobs,
            "scenarios": [
                {"name": r.scenario, "clean_s": round(r.wall_s, 1), "judged": r.judged}
                for r in clean
            ],
            "order": [p.stem for p, _ in ordered],
            "baseline": baseline_record(stamp, clean, reach),
            "reach": None
            if reach is None
            else {
                name: {module: len(lines) for module, lines in sorted(modules.items())}
                for name, modules in sorted(reach.executed.items())
            },
        }

        def skip_equivalent(result: Result) -> bool:
            """An equivalent mutant leaves the denominator whatever it does: playing it only
            checks the triage, and a constructor knob every scenario runs costs the whole
            library (about 300 s here). --play-equivalent plays them anyway."""
            if args.play_equivalent:
                return False
            verdict = triage_for(result, triage)
            return verdict is not None and verdict.verdict == EQUIVALENT

        def settle(result: Result) -> None:
            apply_triage(result, triage)
            results.append(result)
            print(progress_line(len(results), total, result), flush=True)
            payload.update(
                complete=len(results) == total,
                wall_s=round(earlier_s + time.perf_counter() - started, 1),
                summary=asdict(score(results)),
                mutants=[asdict(r) for r in sorted(results, key=lambda r: r.key)],
            )
            write_json(args.json, payload)

        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(evaluate, runner, m, ordered, reach, skip_equivalent) for m in chosen
            ]
            try:
                for future in concurrent.futures.as_completed(futures):
                    settle(future.result())
            except KeyboardInterrupt:
                for future in futures:
                    future.cancel()
                runner.stop_all()
                raise
        wall = earlier_s + time.perf_counter() - started
        s = score(results)
        payload["complete"] = len(results) == total
        payload["summary"] = asdict(s) | {"score": round(s.score, 4)}
        payload["wall_s"] = round(wall, 1)
        write_json(args.json, payload)
        print()
        print(f"mutation score of {scenario_dir} against {source_root / PACKAGE}")
        print(summary(s, wall))
        _print_survivors(results)
        print(f"\nJSON: {args.json}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def coverage_pass(
    runner: Runner, clean_copy: Path, ordered: Sequence[tuple[Path, float]], args: Any
) -> Reach:
    """The clean library once more with the stack under coverage.py: its executed lines."""
    data_root = runner.work / "coverage"
    started = time.perf_counter()

    def measure(item: tuple[Path, float]) -> tuple[str, dict[str, frozenset[int]], Run]:
        path, timeout = item
        data_dir = data_root / path.stem
        data_dir.mkdir(parents=True)
        command = coverage_stack_cmd(runner.python, data_dir)
        run = runner.run(clean_copy, path, 3 * timeout, stack_cmd=command)
        return path.stem, executed_lines(data_dir), run

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        measured = list(pool.map(measure, ordered))
    failed = [run for _, _, run in measured if run.status != "passed"]
    for run in failed:  # the statements it executed still count; say the run was not clean
        print(f"  coverage pass: {run.scenario} {run.status} {', '.join(run.oracles) or run.error}")
    executed = {name: lines for name, lines, _ in measured}
    print(f"  coverage pass: {len(executed)} scenarios in {time.perf_counter() - started:.0f} s")
    return Reach(executed, module_trees(clean_copy))


def module_trees(copy: Path) -> dict[str, ast.AST]:
    return {m: ast.parse((copy / PACKAGE / m).read_text()) for m in MODULES}


# -- warm resume: the clean baseline and the coverage pass kept in the JSON ------------------
@dataclass(frozen=True)
class Baseline:
    clean: list[Run]
    executed: dict[str, dict[str, frozenset[int]]] | None  # None: kept without a coverage pass


def baseline_stamp(source_root: Path, files: Mapping[str, Path]) -> dict[str, Any]:
    """What a kept baseline must match: the source root's commit (None when it is not a clean
    git checkout: then nothing is kept) and the library's files by content."""
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git = ["git", "-C", str(source_root)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, check=True)
        commit = head.stdout.decode().strip() if not dirty.stdout.strip() else None
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    return {"commit": commit, "scenarios": digests, "python": sys.version.split()[0]}


def baseline_record(stamp: dict[str, Any], clean: Sequence[Run], reach: Reach | None) -> Any:
    return {
        **stamp,
        "clean": [asdict(r) for r in clean],
        "executed": None
        if reach is None
        else {
            name: {module: sorted(lines) for module, lines in sorted(modules.items())}
            for name, modules in sorted(reach.executed.items())
        },
    }


def kept_baseline(payload: Mapping[str, Any], stamp: Mapping[str, Any]) -> Baseline | None:
    """The clean runs and executed lines a resumed JSON kept, if they were measured on the
    same commit (a clean checkout) with the same library and Python; else None."""
    kept = payload.get("baseline")
    if not isinstance(kept, dict) or stamp["commit"] is None:
        return None
    if any(kept.get(k) != stamp[k] for k in ("commit", "scenarios", "python")):
        return None
    executed = kept.get("executed")
    return Baseline(
        [Run(**r) for r in kept["clean"]],
        None
        if executed is None
        else {
            name: {module: frozenset(lines) for module, lines in modules.items()}
            for name, modules in executed.items()
        },
    )


def apply_triage(result: Result, entries: Mapping[str, Mapping[str, Any]]) -> None:
    result.triage, result.reason, result.catch = None, "", ""
    if result.status == SURVIVED and (verdict := triage_for(result, entries)):
        result.triage, result.reason, result.catch = verdict.verdict, verdict.reason, verdict.catch


def rescore(path: Path, entries: Mapping[str, Mapping[str, Any]]) -> int:
    """The score of a finished run again, under the triage as it is now (rewrites the JSON)."""
    payload = json.loads(path.read_text())
    results = [Result(**item) for item in payload["mutants"]]
    for result in results:
        apply_triage(result, entries)
    s = score(results)
    payload["summary"] = asdict(s) | {"score": round(s.score, 4)}
    payload["mutants"] = [asdict(r) for r in results]
    write_json(path, payload)
    print(f"mutation score of {payload['source_root']} (rescored from {path})")
    print(summary(s, payload.get("wall_s", 0.0)))
    _print_survivors(results)
    return 0


def _print_survivors(results: Sequence[Result]) -> None:
    survivors = sorted((r for r in results if r.status == SURVIVED), key=lambda r: r.key)
    untriaged = [r for r in survivors if r.triage is None]
    if untriaged:
        print(
            f"\nUNTRIAGED SURVIVORS ({len(untriaged)}): add them to {TRIAGE_FILE.relative_to(REPO)}"
        )
        for r in untriaged:
            print(f"  {r.key}  `{r.diff}`")
    triaged = [r for r in survivors if r.triage is not None]
    if triaged:
        print(f"\ntriaged survivors ({len(triaged)}):")
        for r in triaged:
            print(f"  {r.triage:<10} {r.key}  `{r.diff}`  {r.reason}")
    incompetent = [r for r in results if r.status == INCOMPETENT]
    for r in incompetent:
        print(f"  incompetent {r.key}: {r.error}")


if __name__ == "__main__":
    sys.exit(main())
