"""Every misuse of every command is one line on stderr and exit code 2, never a traceback.

The arguments come from a grammar: a command, the arguments that make it otherwise usable, and
one thing broken (an unknown flag, a bad number, a port out of range, a URL without a scheme,
a missing path or one of the wrong kind, a broken scenario file, a missing required option).
A misuse must be refused before anything is played: the ``nothing_starts`` guard fails the
test if a case reaches a day, a library, the simulators or a verifier.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import typer
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import bundled, selftest
from harness import settings as cli_settings
from harness.cli import app, main

Case = list[str]

WORDS = st.text(string.ascii_letters, min_size=1, max_size=8)
NOT_INTEGERS = WORDS | st.sampled_from(["", "1.5", "0x10", "1e3", "--", " "])
NOT_FLOATS = WORDS.filter(lambda w: w.lower() not in ("nan", "inf", "infinity")) | st.just("")
PORTS_OUT_OF_RANGE = st.integers(65533, 10**7) | st.integers(-(10**6), 0)
NO_SCHEME = st.from_regex(r"[a-z]{1,12}(\.[a-z]{2,6})?(:[0-9]{1,5})?", fullmatch=True) | (
    st.sampled_from(["http://", "ftp://example.com", "//localhost:8700", "http://:80"])
)
BROKEN_YAML = st.one_of(
    st.builds(lambda w: f"demand: {{orders: [{w}\n", WORDS),  # not YAML at all
    st.builds(lambda w: f"zz_{w}: 1\n", WORDS),  # an unknown field
    st.builds(lambda w: f"demand: {{orders: {w}}}\n", WORDS),  # a word for a number
    st.builds(lambda n: f"demand: {{orders: {-n}}}\n", st.integers(1, 10**6)),  # below 0
    st.sampled_from(["- a list\n", "just words\n", "seed: [1, 2]\n"]),  # not a mapping
)


def option(flag: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[Case]:
    return values.map(lambda v: [flag, v])


def known_flags() -> set[str]:
    """Every flag any command has, and the root's: an unknown one is none of these."""
    root = typer.main.get_command(app)
    found = {"--help"} | {o for p in root.params for o in (*p.opts, *p.secondary_opts)}
    for _, command in cli_settings.leaves(root):
        found |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return found


KNOWN_FLAGS = known_flags()


def unknown_flag() -> st.SearchStrategy[Case]:
    flags = st.from_regex(r"--[a-z][a-z-]{2,15}", fullmatch=True)
    return flags.filter(lambda f: f not in KNOWN_FLAGS).map(lambda f: [f])


class Files:
    """What the cases point at: a file, a folder, nothing, and a scenario broken anew."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.file = root / "a-file.txt"
        self.file.write_text("not a folder\n")
        self.folder = root / "a-folder"
        self.folder.mkdir()
        self.missing = root / "missing" / "nowhere"
        self.library = root / "library"  # a scenario library of one small day
        self.library.mkdir()
        self.ok = self.library / "ok.yaml"
        self.ok.write_text("seed: 1\ndemand: {orders: 2}\n")
        self.cases = cases(self)

    def broken(self) -> st.SearchStrategy[str]:
        """A scenario file whose text breaks it (written when the case is drawn)."""

        def write(text: str) -> str:
            path = self.root / "broken.yaml"
            path.write_text(text)
            return str(path)

        return BROKEN_YAML.map(write)

    def not_a_file(self) -> st.SearchStrategy[str]:
        return st.sampled_from([str(self.missing), str(self.folder)]) | self.broken()

    def not_a_folder(self) -> st.SearchStrategy[str]:
        """A file, or somewhere below a file: no folder can be made there."""
        return st.sampled_from([str(self.file), str(self.file / "below")])


def grammar(f: Files) -> dict[str, tuple[Case, list[st.SearchStrategy[Case]]]]:
    """Command -> (the arguments that make it usable, the ways to break one of them)."""
    ok, openapi = str(f.ok), str(bundled.OPENAPI / "carrier.yaml")
    fmt = option("--format", WORDS.filter(lambda w: w not in ("table", "json")))
    return {
        "run": (
            [],
            [
                option("--stack-url", NO_SCHEME),
                option("--stack-cmd", st.sampled_from(["", "  ", "stack 'unclosed", 'a "b'])),
                option("--seed", NOT_INTEGERS),
                option("--port-base", PORTS_OUT_OF_RANGE.map(str)),
                option("--report-dir", f.not_a_folder()),
                option("--ready-timeout", NOT_FLOATS | st.sampled_from(["0", "-1", "3601"])),
                option("--health-path", st.from_regex(r"[a-z_]{1,10}", fullmatch=True)),
                f.not_a_file().map(lambda p: [p]),
            ],
        ),
        "trace": (
            ["SO-000001", "--run", str(f.folder)],
            [fmt, option("--run", st.sampled_from([str(f.file), str(f.missing)]))],
        ),
        "selftest": (
            ["--clean-only", "--scenarios", str(f.library)],
            [
                fmt,
                option("--scenarios", st.sampled_from([str(f.file), str(f.missing)])),
                option("--defect", WORDS.filter(lambda w: w not in selftest.DEFECTS)),
                option("--jobs", NOT_INTEGERS | st.sampled_from(["0", "-3"])),
                option("--seeds", NOT_INTEGERS | st.just("-1")),
                option("--report-dir", f.not_a_folder()),
                option("--json", st.just(str(f.folder))),
            ],
        ),
        "coverage": (
            ["--runs", str(f.folder)],
            [
                fmt,
                option("--runs", st.sampled_from([str(f.file), str(f.missing)])),
                option("--jobs", NOT_INTEGERS | st.just("0")),
                option("--stack-url", NO_SCHEME),
                option("--stack-cmd", st.sampled_from(["", "x 'y"])),
                option("--report-dir", f.not_a_folder()),
                option("--pacts", st.just(str(f.missing))),
            ],
        ),
        "contracts diff": (
            [],
            [
                fmt.map(lambda bad: [openapi, openapi, *bad]),
                f.not_a_file().map(lambda p: [p, openapi]),
                f.not_a_file().map(lambda p: [openapi, p]),
                st.just([openapi, openapi, "third.yaml"]),
            ],
        ),
        "contracts check": (
            ["--pacts", str(bundled.PACTS), "--openapi", openapi],
            [
                fmt,
                option("--openapi", f.not_a_file()),
                option("--pacts", st.sampled_from([str(f.missing), str(f.folder), str(f.file)])),
                option("--junit", st.just(str(f.folder))),
            ],
        ),
        "contracts fuzz": (
            ["--url", "http://127.0.0.1:9", "--secret", "s"],
            [
                option("--url", NO_SCHEME),
                option("--max-examples", NOT_INTEGERS | st.just("0")),
                option("--junit", st.just(str(f.folder))),
            ],
        ),
        "contracts verify": (
            ["--provider", "carrier"],
            [
                option("--provider-url", NO_SCHEME),
                option("--state-url", NO_SCHEME),
                option("--broker-url", NO_SCHEME),
                option("--junit", st.just(str(f.folder))),
                st.just(["--broker-url", "http://127.0.0.1:9"]),  # publishes a vendor: no URL
            ],
        ),
        "sims": (
            [],
            [
                option("--port-base", PORTS_OUT_OF_RANGE.map(str)),
                option("--skus", NOT_INTEGERS | st.just("0")),
                option("--stock", NOT_INTEGERS | st.just("-1")),
                option("--carrier-api-version", WORDS),
                option("--scenario", f.not_a_file()),
            ],
        ),
        "compare": (
            [ok, "--a", "python -m legacy", "--b", "python -m new"],
            [
                fmt,
                option("--a", st.sampled_from(["", "x 'y", "http://", "https://:80"])),
                option("--b", NO_SCHEME.filter(lambda u: u.startswith("http"))),
                option("--seeds", NOT_INTEGERS | st.just("-1")),
                option("--jobs", NOT_INTEGERS | st.just("0")),
                option("--report-dir", f.not_a_folder()),
                option("--compare-file", f.not_a_file()),
                option("--set", st.sampled_from(["nope", "demand.orders=x", "seed.x=1"])),
                option("--b-set", st.sampled_from(["carrier.api_version=v9", "=1"])),
            ],
        ),
        "validate": ([ok], [fmt, f.not_a_file().map(lambda p: [p])]),
        "schema": ([], [WORDS.map(lambda w: [w])]),
    }


MISSING = [  # a required argument or option left out
    ["trace"],
    ["validate"],
    ["contracts", "diff"],
    ["contracts", "diff", "only-one.yaml"],
    ["contracts", "check", "--openapi", "x.yaml"],
    ["contracts", "check", "--pacts", "x"],
    ["contracts", "fuzz", "--secret", "s"],
    ["contracts", "fuzz", "--url", "http://127.0.0.1:9"],  # no secret to sign with
    ["run", "--seed"],
    ["compare", "x.yaml", "--a", "python -m a"],  # no B
]


def cases(f: Files) -> st.SearchStrategy[Case]:
    rules = grammar(f)
    broken = [
        st.tuples(st.just(name), st.just(base), st.one_of(ways))
        for name, (base, ways) in rules.items()
    ]
    commands = st.sampled_from(sorted(rules)).flatmap(
        lambda name: unknown_flag().map(lambda flag: (name, rules[name][0], flag))
    )
    built = st.one_of(*broken, commands).map(lambda t: [*t[0].split(), *t[1], *t[2]])
    known = {name.split()[-1] for name in rules} | {"contracts"}
    strangers = WORDS.filter(lambda w: w not in known)
    return st.one_of(
        built,
        st.sampled_from(MISSING),
        strangers.map(lambda w: [w]),  # no such command
        strangers.map(lambda w: ["contracts", w]),  # no such subcommand
        unknown_flag(),  # before any command
    )


@pytest.fixture
def nothing_starts(monkeypatch):
    """Fail loudly, rather than play for minutes, if a misuse gets past the checks."""

    def started(*args, **kwargs):
        raise AssertionError("a misuse started real work")

    monkeypatch.setattr(uvloop, "run", started)
    monkeypatch.setattr("harness.contracts.verify.verify_simulators", started)
    monkeypatch.setattr("harness.contracts.verify.verify_url", started)
    monkeypatch.setattr("harness.contracts.fuzz.run", started)
    monkeypatch.setattr("harness.sims.serve", started, raising=False)
    monkeypatch.setattr("harness.compare.command.play_all", started)
    monkeypatch.delenv("TWINYARD_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv(cli_settings.OFF, "1")  # the developer's TWINYARD_* stay out of it


@pytest.fixture
def files(tmp_path, monkeypatch) -> Files:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with a [tool.twinyard] above
    return Files(tmp_path)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_misuse_is_one_line_and_exit_2(data, files, nothing_starts, capsys):
    argv = data.draw(files.cases, label="argv")
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (argv, code, err)
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith("twinyard: error: "), (argv, err)


@pytest.mark.parametrize("argv", [[], ["contracts"]])
def test_a_bare_group_prints_its_help_and_exit_2(argv, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("Usage: twinyard") and "Traceback" not in out + err


def test_a_scenario_with_many_problems_is_still_one_line(tmp_path, capsys):
    day = tmp_path / "day.yaml"
    day.write_text("seed: x\ndemand: {orders: -1}\nzz: 1\n")
    assert main(["run", str(day)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"twinyard: error: {day}:1: seed: ")
    assert "(+2 more problems: twinyard validate" in line


def test_the_run_named_in_the_issue_are_refused_before_anything_starts(
    tmp_path, nothing_starts, capsys
):
    day = tmp_path / "day.yaml"
    day.write_text("seed: 1\ndemand: {orders: 2}\n")
    (tmp_path / "a-file").write_text("")
    for argv, words in [
        (["--stack-url", "localhost:8700"], "localhost:8700 is not an http(s) URL"),
        (["--port-base", "70000"], "less than or equal to 65532"),
        (["--report-dir", str(tmp_path / "a-file")], "is a file, not a folder"),
    ]:
        assert main(["run", str(day), *argv]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("twinyard: error: Invalid value for ") and words in line, line
