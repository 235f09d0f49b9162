"""Hostile scenario files: every one is refused with exit 2 and one located line, quickly, in
little memory, never with a traceback (docs/scenario-loading.md).

tests/scenarios_hostile/ holds the corpus, each file saying on its first line what it attacks;
expected.yaml there gives the line each error names and a fragment of its message. Files that
cannot live in git (a FIFO, a file over the size limit) are made here. Timings are asserted
only as hang guards (the machines are shared); the limits they guard are seconds and MB.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import uvloop
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import scenario, scenario_yaml
from harness.cli import main

HOSTILE = Path(__file__).parent / "scenarios_hostile"
EXPECTED: dict[str, dict[str, object]] = yaml.safe_load((HOSTILE / "expected.yaml").read_text())
CORPUS = sorted(p.name for p in HOSTILE.glob("*.yaml") if p.name != "expected.yaml")
SHIPPED = Path(__file__).parent.parent / "scenarios"
HANG_GUARD_S = 20.0  # the loader's aim is well under 5 s; this only catches a hang
LIMIT_AS = 1 << 30  # address space of a child that reads one hostile file


def validate(path: Path | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    capsys.readouterr()
    started = time.perf_counter()
    code = main(["validate", str(path)])
    elapsed = time.perf_counter() - started
    return code, capsys.readouterr().err, elapsed


def assert_one_line(err: str, prefix: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"twinyard: error: {prefix}"), lines[0]
    return lines[0]


def test_the_corpus_is_large_and_every_file_is_listed():
    assert len(CORPUS) >= 40
    assert sorted(EXPECTED) == CORPUS
    for name in CORPUS:
        data = (HOSTILE / name).read_bytes()
        says_what_it_attacks = data.startswith(b"#") or data.decode("utf-16").startswith("#")
        assert says_what_it_attacks or name == "empty.yaml", name


@pytest.mark.parametrize("name", CORPUS)
def test_a_hostile_file_is_one_located_line_and_exit_2(name, capsys):
    path = HOSTILE / name
    code, err, elapsed = validate(path, capsys)
    assert code == 2, err
    line = assert_one_line(err, f"{path}:{EXPECTED[name]['line']}: ")
    assert EXPECTED[name]["says"] in line
    assert elapsed < HANG_GUARD_S


@pytest.mark.parametrize(
    "name",
    ["billion_laughs.yaml", "seed_above_2_64.yaml", "fault_after_horizon.yaml", "empty.yaml"],
)
def test_run_refuses_a_hostile_file_before_anything_plays(name, capsys, monkeypatch, tmp_path):
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the day was played")

    monkeypatch.setattr("harness.cli.run", never)
    monkeypatch.setattr(uvloop, "run", never)
    path = HOSTILE / name
    capsys.readouterr()
    code = main(["run", str(path), "--report-dir", str(tmp_path / "report"), "--quiet"])
    assert code == 2
    assert_one_line(capsys.readouterr().err, f"{path}:{EXPECTED[name]['line']}: ")
    assert not (tmp_path / "report").exists()


def test_a_fifo_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "day.yaml"
    os.mkfifo(fifo)
    code, err, elapsed = validate(fifo, capsys)
    assert code == 2
    line = assert_one_line(err, f"{fifo}: ")
    assert "FIFO" in line and "not a regular file" in line
    assert elapsed < HANG_GUARD_S


@pytest.mark.parametrize(
    ("path", "says"),
    [("/dev/null", "a character device"), ("/dev/zero", "a character device")],
)
def test_a_device_is_refused_without_reading_it(path, says, capsys):
    if not os.path.exists(path):
        pytest.skip(f"no {path} here")
    code, err, _ = validate(path, capsys)
    assert code == 2
    assert says in assert_one_line(err, f"{path}: ")


def test_a_folder_is_refused(tmp_path, capsys):
    code, err, _ = validate(tmp_path, capsys)
    assert code == 2
    assert "is a folder, not a scenario file" in assert_one_line(err, f"{tmp_path}: ")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"name: big\n" + b"# padding\n" * (scenario_yaml.MAX_BYTES // 10))
    code, err, elapsed = validate(big, capsys)
    assert code == 2
    assert "a scenario file is at most 262,144 bytes (256 KiB)" in assert_one_line(err, f"{big}: ")
    assert elapsed < HANG_GUARD_S


def test_a_file_of_more_values_than_the_limit_is_refused(tmp_path, capsys):
    many = tmp_path / "many.yaml"
    many.write_text("name: many\nexpect:\n  catches: [" + "x, " * scenario_yaml.MAX_VALUES + "x]\n")
    code, err, elapsed = validate(many, capsys)
    assert code == 2
    assert "more than 20,000 values" in assert_one_line(err, f"{many}:3: ")
    assert elapsed < HANG_GUARD_S


def test_the_limits_leave_room_for_real_scenarios():
    biggest = max(len(p.read_bytes()) for p in SHIPPED.rglob("*.yaml"))
    assert biggest * 50 < scenario_yaml.MAX_BYTES
    # fifteen hundred faults, a third of them one fault repeated by an alias: still well inside
    repeated = "  - *same\n" * 500
    distinct = "".join(
        f"  - {{system: wms, kind: error, at: {i}, rate: 0.5, match: SO-{i:06d}}}\n"
        for i in range(1000)
    )
    text = (
        f"name: busy\nfaults:\n  - &same {{system: erp, kind: error, at: 60}}\n{repeated}{distinct}"
    )
    started = time.perf_counter()
    loaded = scenario.parse(text, "busy.yaml")
    assert len(loaded.faults) == 1501
    assert time.perf_counter() - started < HANG_GUARD_S


def test_one_problem_line_stays_one_line_in_the_listing(tmp_path, capsys):
    """With several files, validate prints each problem on stdout: one line each, whatever
    the file held (a newline in a key, a value 5000 characters long)."""
    files = [HOSTILE / "newline_in_key.yaml", HOSTILE / "huge_curve_name.yaml"]
    capsys.readouterr()
    assert main(["validate", *map(str, files)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert all(len(line) < 600 for line in out), [len(line) for line in out]


# -- memory and time in a child process -----------------------------------------------------
CHILD = textwrap.dedent(
    """
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from harness.cli import main
    started = time.perf_counter()
    code = main(["validate", sys.argv[1]])
    elapsed = time.perf_counter() - started
    # VmHWM: this program's own peak (ru_maxrss would count the pytest process it forked from)
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    sys.stderr.write("measured %.3f %s\\n" % (elapsed, status))
    sys.exit(code)
    """
)


def in_a_child(path: Path) -> tuple[int, str, float, int]:
    """Exit code, stderr, seconds validate took, peak RSS (KiB) of a child under RLIMIT_AS."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(limit=LIMIT_AS), str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
        check=False,
    )
    *lines, measured = done.stderr.strip().splitlines() or [""]
    assert measured.startswith("measured "), done.stderr
    _, elapsed, peak_kib = measured.split()
    return done.returncode, "\n".join(lines), float(elapsed), int(peak_kib)


def dense(tmp_path: Path) -> Path:
    """A file at the size limit, of values as small as YAML writes them: the composer's
    count stops it long before the end."""
    path = tmp_path / "dense.yaml"
    head = b"name: dense\nexpect:\n  catches: ["
    path.write_bytes(head + b"x," * ((scenario_yaml.MAX_BYTES - len(head) - 2) // 2) + b"x]")
    return path


@pytest.mark.parametrize(
    "name",
    [
        "billion_laughs.yaml",
        "laughs_in_mappings.yaml",
        "deep_flow_nesting.yaml",
        "too_many_aliases.yaml",
        "alias_deep_nesting.yaml",
        "dense",
    ],
)
def test_the_worst_files_stay_small_and_quick_in_a_child(name, tmp_path):
    path = dense(tmp_path) if name == "dense" else HOSTILE / name
    code, err, elapsed, peak_kib = in_a_child(path)
    assert code == 2, err
    assert_one_line(err + "\n", f"{path}:")
    assert elapsed < HANG_GUARD_S
    # A whole twinyard process importing everything is ~70 MB; the file adds little.
    assert peak_kib < 200 * 1024, f"{name}: peak RSS {peak_kib} KiB"
    print(f"{name}: {elapsed:.2f} s, peak RSS {peak_kib / 1024:.0f} MiB")


# -- generated YAML ---------------------------------------------------------------------------
FIELDS = sorted(
    {
        *scenario.Scenario.model_fields,
        *scenario.Demand.model_fields,
        *scenario.Warehouse.model_fields,
        *scenario.Fault.model_fields,
        "for",
    }
)
HOSTILE_SCALARS = [
    ".nan", ".NaN", ".inf", "-.inf", "1.0e+999", "1e999", "2026-13-45", "2026-11-23",
    "2026-11-23T06:00:00Z", "9999-12-31T23:59:59-01:00", "0000-01-01", "18446744073709551617",
    "-1", "0", "1", "0.5", "17:00", "1:2:3", "0x1F", "0o17", "0b1012", "yes", "no", "on", "~",
    "null", "true", "=", "<<", "!!python/name:os.system x", "!!binary aGk=", "!!int x", "!!bool x",
    "!!timestamp x", "!include x", "!!str", "!!set", "*undefined", "'quoted'", '"\\x00"', '"\\q"',
    "wms", "outage", "erp", "carrier", "tracking.updated", "peak_monday", '"10:00"', "9" * 5000,
]  # fmt: skip
KEYS = st.one_of(
    st.sampled_from(FIELDS),
    st.sampled_from(["yes", "~", "<<", "1", "2026-01-01", "? [a]", "''", '"a\\nb"']),
    st.text(alphabet="abcxyz_", min_size=1, max_size=8),
)
SCALARS = st.one_of(
    st.sampled_from(HOSTILE_SCALARS),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=20).map(json.dumps),
)


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """A YAML value in flow style, with anchors, aliases and hostile scalars here and there."""
    anchor = draw(st.sampled_from(["", "", "", "&a ", "&b "]))
    kind = draw(st.sampled_from(["scalar", "alias", "list", "map"] if depth < 4 else ["scalar"]))
    if kind == "scalar":
        return anchor + draw(SCALARS)
    if kind == "alias":
        return draw(st.sampled_from(["*a", "*b", "*c"]))
    items = draw(st.lists(documents(depth + 1), max_size=4))
    if kind == "list":
        return anchor + "[" + ", ".join(items) + "]"
    keys = draw(st.lists(KEYS, min_size=len(items), max_size=len(items)))
    return anchor + "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items, strict=True)) + "}"


@st.composite
def block_scenarios(draw: st.DrawFn) -> str:
    """A block mapping of scenario fields whose values are generated documents."""
    keys = draw(st.lists(KEYS, min_size=1, max_size=6))
    return "".join(f"{k}: {draw(documents())}\n" for k in keys)


@st.composite
def mutated_shipped(draw: st.DrawFn) -> str:
    """A shipped scenario with lines dropped, doubled, swapped or spliced with junk."""
    files = sorted(SHIPPED.rglob("*.yaml"))
    lines = draw(st.sampled_from(files)).read_text().splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "double", "junk", "indent"]))
        if action == "drop":
            del lines[i]
        elif action == "double":
            lines.insert(i, lines[i])
        elif action == "junk":
            lines[i] += " " + draw(st.one_of(st.sampled_from(HOSTILE_SCALARS), st.text(max_size=8)))
        else:
            lines[i] = "  " + lines[i]
        if not lines:
            break
    return "\n".join(lines) + "\n"


TEXTS = st.one_of(
    block_scenarios(),
    documents(),
    mutated_shipped(),
    st.text(max_size=200),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated") / "generated.yaml"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=TEXTS)
def test_generated_yaml_is_valid_or_one_located_line(text, scratch, capsys):
    scratch.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
    code, err, elapsed = validate(scratch, capsys)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        line = assert_one_line(err, f"{scratch}:")
        assert re.match(rf"twinyard: error: {re.escape(str(scratch))}:\d+: ", line), line
    assert elapsed < HANG_GUARD_S
