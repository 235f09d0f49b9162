"""Reading a scenario file without trusting it: bounded, plain YAML, every problem located.

A scenario file may come from anywhere (a pull request, an incident ticket, a generator), so
reading one must never hang, never run out of memory and never end in a traceback. This
module turns a path into plain data (dicts with text keys, lists, text, numbers, booleans,
None, dates) and the line of every field path, or raises ``Problem`` saying what is wrong
and where. ``harness.scenario`` validates the data and writes ``file:line: field: message``.
docs/scenario-loading.md lists the rules; in short:

- only a regular file of at most ``MAX_BYTES``, in UTF-8 (a FIFO or a device is refused
  before it is opened for good, so nothing blocks);
- one YAML document of plain values: no tags beyond the core ones, no merge keys (``<<``);
- at most ``MAX_VALUES`` values, counted after aliases are expanded (a "billion laughs"
  stops there), at most ``MAX_ALIASES`` aliases, nested at most ``MAX_DEPTH`` deep, and no
  alias inside the value it names (a recursive alias);
- keys are text, each given once in its mapping (a duplicate names both lines);
- numbers are finite (``.nan`` and ``.inf`` are refused), dates are real dates.
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

MAX_BYTES = 256 * 1024  # a large scenario is a few KB; PyYAML reads 256 KiB in ~0.4 s
MAX_VALUES = 20_000  # scalars, lists and mappings, after alias expansion (keys count too)
MAX_ALIASES = 1_000
MAX_DEPTH = 64  # lists and mappings inside each other
MAX_NUMBER_CHARS = 64  # an integer written with more characters is no scenario's number
CLIP = 60  # characters of a user's text quoted in a message

Path_ = tuple[Any, ...]  # a field path: keys and list indexes

_CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null"))
SEQ, MAP, TIMESTAMP, MERGE = (f"{_CORE}{t}" for t in ("seq", "map", "timestamp", "merge"))
# Plain dates resolve to timestamps anyway, so writing the tag is allowed too.
SCALAR_TAGS = {STR: "text", INT: "integer", FLOAT: "number", BOOL: "boolean", NULL: "null"}
SCALAR_TAGS[TIMESTAMP] = "date"
_A = {"integer": "an integer", "null": "null"}


class Problem(Exception):
    """What is wrong and where: ``line`` is 1-based, None for the file as a whole; ``field``
    is the path of the value in the document (``()``: the top level), None when the problem
    is not in a value (YAML syntax, limits met while reading)."""

    def __init__(self, message: str, line: int | None = None, field: Path_ | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.field = field


def clip(text: str, limit: int = CLIP) -> str:
    """A user's text short enough to quote in a one-line message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the file -------------------------------------------------------------------------------
_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _not_a_file(mode: int) -> Problem | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return Problem("is a folder, not a scenario file")
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return Problem(f"is {kind}, not a regular file: a scenario is read from a file")


def _too_big(size: int | None) -> Problem:
    """``size`` None: the file grew past the limit while read (its size said otherwise)."""
    limit = f"a scenario file is at most {MAX_BYTES:,} bytes ({MAX_BYTES // 1024} KiB)"
    return Problem(f"is {'over the limit' if size is None else f'{size:,} bytes'}: {limit}")


def read(path: str | Path) -> str:
    """The text of a scenario file: a regular file, at most ``MAX_BYTES``, UTF-8."""
    try:
        problem = _not_a_file(os.stat(path).st_mode)
        if problem is not None:
            raise problem  # before opening: opening a FIFO for reading waits for a writer
        # Non-blocking, in case the path became a FIFO or a device since the stat.
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
        try:
            info = os.fstat(fd)
            problem = _not_a_file(info.st_mode)
            if problem is not None:
                raise problem
            if info.st_size > MAX_BYTES:
                raise _too_big(info.st_size)
            data = _read_at_most(fd, MAX_BYTES + 1)  # st_size may be 0 (/proc) or stale
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise Problem("no such scenario file") from None
    except OSError as exc:
        raise Problem(f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a path with a NUL byte in it
        raise Problem(f"cannot read: {exc}") from None
    if len(data) > MAX_BYTES:
        raise _too_big(None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Problem(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8", line
        ) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65_536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


# -- YAML to nodes ------------------------------------------------------------------------
class Alias:
    """Where the document says ``*name``: the node it stands for, and the alias's own line
    (the composed tree keeps aliases, so expanding them is counted and located)."""

    __slots__ = ("anchor", "line", "node")

    def __init__(self, node: Node, anchor: str, line: int) -> None:
        self.node = node
        self.anchor = anchor
        self.line = line


class ScenarioLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits, composing only (nothing is constructed here).

    It also reads ``17:00`` as the text "17:00", as YAML 1.2 does: PyYAML follows YAML 1.1,
    where an unquoted 17:00 is the base-60 integer 1020, and a cut-off or a fault window
    would silently move to 00:17. Times work quoted or not. A lone ``=`` is text too (YAML
    1.1's "value" key, which no constructor reads).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.scenario_depth = 0
        self.scenario_values = 0
        self.scenario_aliases = 0
        self.scenario_line = 1  # the line of the last node begun, for a problem found without one
        self.scenario_open: set[str] = set()  # anchors whose value is being composed

    def compose_node(self, parent: Node | None, index: Any) -> Any:
        event = self.peek_event()
        line = self.scenario_line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            self.get_event()
            return self._alias(event.anchor, line)
        self.scenario_values += 1
        if self.scenario_values > MAX_VALUES:
            raise Problem(f"more than {MAX_VALUES:,} values: a scenario is far smaller", line)
        self.scenario_depth += 1
        if self.scenario_depth > MAX_DEPTH:
            raise Problem(f"values nested more than {MAX_DEPTH} deep", line)
        anchor = event.anchor
        if anchor is not None:
            if anchor in self.anchors:
                first = self.anchors[anchor].start_mark.line + 1
                name = clip(anchor)
                raise Problem(f"anchor &{name} is defined twice, at lines {first} and {line}", line)
            self.scenario_open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.scenario_depth -= 1
            if anchor is not None:
                self.scenario_open.discard(anchor)

    def _alias(self, anchor: str, line: int) -> Alias:
        self.scenario_aliases += 1
        name = clip(anchor)
        if self.scenario_aliases > MAX_ALIASES:
            raise Problem(f"more than {MAX_ALIASES:,} aliases (*{name})", line)
        if anchor in self.scenario_open:
            first = self.anchors[anchor].start_mark.line + 1
            raise Problem(
                f"alias *{name} is inside the value &{name} names (line {first}): "
                "a value cannot contain itself",
                line,
            )
        if anchor not in self.anchors:
            raise Problem(f"not valid YAML: alias *{name} names no anchor &{name} above it", line)
        return Alias(self.anchors[anchor], anchor, line)


_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
ScenarioLoader.yaml_implicit_resolvers = {
    first: [
        *([("tag:yaml.org,2002:str", _SEXAGESIMAL)] if first in "+-0123456789" else []),
        *(r for r in resolvers if r[0] != "tag:yaml.org,2002:value"),
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def compose(text: str) -> Node | None:
    """The document's node tree (aliases kept as ``Alias``), or None for no document."""
    if len(text) > MAX_BYTES:  # text given directly, not read by ``read``
        raise Problem(f"is {len(text):,} characters: a scenario is at most {MAX_BYTES:,} bytes")
    loader = None
    try:
        loader = ScenarioLoader(text)  # checks every character first
        return loader.get_single_node()
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise Problem(f"not valid YAML: character #x{char:04x} is not allowed here", line) from None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_problem(exc) from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise Problem(f"not valid YAML: {first}", loader.scenario_line if loader else 1) from None
    except RecursionError:
        line = loader.scenario_line if loader else 1
        raise Problem(f"values nested too deep to read (at most {MAX_DEPTH})", line) from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_problem(exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "unreadable"
    if exc.context and exc.problem:
        where = exc.context_mark
        same = where is None or mark is None or where.line == mark.line
        problem = f"{exc.context}{'' if same else f' (line {where.line + 1})'}: {problem}"
    return Problem(f"not valid YAML: {problem}", mark.line + 1 if mark else 1)


# -- nodes to data ------------------------------------------------------------------------
def to_data(root: Node) -> tuple[Any, dict[Path_, int]]:
    """Plain data from the node tree, and the line of every field path (a key's line for a
    mapping's field, the item's line for a list's)."""
    walk = _Walk()
    try:
        return walk.value(root, (), 1, None), walk.lines
    except RecursionError:
        raise Problem(f"values nested too deep to read (at most {MAX_DEPTH})", walk.line) from None


Via = tuple[int, Path_] | None  # the outermost alias being expanded: its line and field path


class _Walk:
    """Expands the tree into plain data, counting every value it makes."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}
        self.values = 0
        self.line = 1
        self.constructor = SafeConstructor()

    def count(self, line: int, path: Path_, via: Via) -> None:
        self.line = line
        self.values += 1
        if self.values > MAX_VALUES:
            if via is None:  # the composer counted these already; kept as a guard
                raise Problem(f"more than {MAX_VALUES:,} values: a scenario is far smaller", line)
            raise Problem(f"aliases expand the scenario to more than {MAX_VALUES:,} values", *via)

    def value(self, node: Node | Alias, path: Path_, depth: int, via: Via) -> Any:
        if isinstance(node, Alias):
            line, node = node.line, node.node
            via = via or (line, path)
        else:
            line = node.start_mark.line + 1
        self.lines[path] = line
        self.count(line, path, via)
        if depth > MAX_DEPTH:
            raise Problem(f"aliases nest values more than {MAX_DEPTH} deep", *(via or (line, path)))
        if isinstance(node, MappingNode):
            self._tag(node, MAP, line, path)
            return self.mapping(node, path, depth, via)
        if isinstance(node, SequenceNode):
            self._tag(node, SEQ, line, path)
            return [
                self.value(item, (*path, i), depth + 1, via) for i, item in enumerate(node.value)
            ]
        return self.scalar(node, line, path)

    def mapping(self, node: MappingNode, path: Path_, depth: int, via: Via) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, line = self.key(key_node, path, via)
            here = (*path, key)
            if key in seen:
                raise Problem(
                    f"given twice, at lines {seen[key]} and {line} (one would silently win)",
                    line,
                    here,
                )
            seen[key] = line
            result[key] = self.value(value_node, here, depth + 1, via)
            self.lines[here] = line
        return result

    def key(self, node: Node | Alias, path: Path_, via: Via) -> tuple[str, int]:
        if isinstance(node, Alias):
            line, node = node.line, node.node
        else:
            line = node.start_mark.line + 1
        self.count(line, path, via)
        if node.tag == MERGE:
            raise Problem(
                "merge keys (<<) are not supported: write the fields out "
                "(an alias can stand for a whole value)",
                line,
                path,
            )
        if not isinstance(node, ScalarNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            raise Problem(f"a key must be text, not {kind}", line, path)
        key = self.scalar(node, line, path)
        if not isinstance(key, str):
            shown = clip(node.value)
            if not shown:
                raise Problem("a key must be text, not empty", line, path)
            kind = SCALAR_TAGS.get(node.tag, "value")
            kind = _A.get(kind, f"a {kind}")
            raise Problem(
                f"a key must be text: {shown} reads as {kind}; write it in quotes", line, path
            )
        return key, line

    def scalar(self, node: ScalarNode, line: int, path: Path_) -> Any:
        kind = SCALAR_TAGS.get(node.tag)
        if kind is None:
            self._tag(node, STR, line, path)
        shown = clip(node.value)
        if node.tag == INT and len(node.value) > MAX_NUMBER_CHARS:
            raise Problem(f"{shown} is too long for a number", line, path)
        try:
            value = SafeConstructor.yaml_constructors[node.tag](self.constructor, node)
        except Exception as exc:  # any constructor's complaint about its text
            why = _why(exc) if node.tag == TIMESTAMP else ""
            raise Problem(f"{shown} is not a valid {kind}{why}", line, path) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise Problem(
                f"{shown} is not a finite number: NaN and infinities are not allowed", line, path
            )
        return value

    @staticmethod
    def _tag(node: Node, expected: str, line: int, path: Path_) -> None:
        """Refuse a tag that is not the one plain YAML gives this kind of node."""
        tag = node.tag
        if tag == expected:
            return
        shown = clip("!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag)
        if tag in (MAP, SEQ, *SCALAR_TAGS):
            what = {MAP: "a mapping", SEQ: "a list"}.get(expected, "a single value")
            raise Problem(f"tag {shown} cannot be given to {what}", line, path)
        raise Problem(
            f"tag {shown} is not allowed: a scenario is plain YAML (text, numbers, booleans, "
            "dates, lists and mappings)",
            line,
            path,
        )


def _why(exc: Exception) -> str:
    """Why a date is not one, as ``: reason`` (the calendar's words: "month must be in
    1..12"), when there is a reason worth reading."""
    if not isinstance(exc, ValueError | OverflowError) or not str(exc).strip():
        return ""
    reason = str(exc).strip().splitlines()[0]
    if reason.startswith("offset must be"):
        reason = "a timezone offset must be less than 24 hours"
    return f": {clip(reason, 120)}"
