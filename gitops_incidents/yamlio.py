"""Reading and writing the tracker's YAML and JSON files.

Two readers serve two needs:

- `load` is the safe, fast reader for every bulk read (validation, history).
  It drives libyaml's event parser (ruamel's C extension) and builds plain
  Python values itself, so the guards run before anything is built: size,
  UTF-8, anchors and aliases (alias bombs), depth, tags, duplicate keys, one
  document. Plain scalars follow the YAML 1.2 core schema; timestamps stay
  strings and are parsed by the models, so `yes` and `no` stay strings too.
- `RoundTrip` edits a file and writes it back keeping comments, quoting and
  layout; an untouched document writes back byte-identical.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev

# libyaml's parser, from ruamel.yaml's [libyaml] extra; cyaml does not declare the re-export.
from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """1-based line and column."""

    line: int
    column: int


@dataclass
class Marks:
    """Where each value (and each mapping key) of a document stands."""

    values: dict[Path, Position]
    keys: dict[Path, Position]

    @classmethod
    def empty(cls) -> Marks:
        return cls({}, {})

    def path(self, loc: Sequence[str | int]) -> Path:
        """`loc` without the items the document does not have (pydantic's union tags,
        a missing key): the keys and indexes of the nearest thing the user wrote."""
        found: Path = ()
        for item in loc:
            candidate = (*found, item)
            if candidate in self.values:
                found = candidate
        return found

    def locate(self, loc: Sequence[str | int], *, key: bool = False) -> Position:
        """Position of `loc`, or of its deepest existing ancestor."""
        found = self.path(loc)
        if key and found and found in self.keys:
            return self.keys[found]
        return self.values.get(found, Position(1, 1))


class LoadError(Exception):
    """A file that cannot be read, with the place it went wrong."""

    def __init__(self, message: str, position: Position = Position(1, 1)) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def size_problem(size: int) -> str:
    return f"file is {size / 1024 / 1024:.1f} MiB; the limit is {MAX_BYTES // 1024 // 1024} MiB"


def decode(data: bytes) -> str:
    """UTF-8 only, within the size cap; a UTF-8 byte order mark is allowed."""
    if len(data) > MAX_BYTES:
        raise LoadError(size_problem(len(data)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError("file is not UTF-8", _offset_position(data, exc.start)) from None
    return text.removeprefix("\ufeff")


def _offset_position(data: bytes, offset: int) -> Position:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return Position(data.count(b"\n", 0, offset) + 1, offset - line_start + 1)


def _mark(event: Any) -> Position:
    mark = event.start_mark
    return Position(mark.line + 1, mark.column + 1)


_CORE = "tag:yaml.org,2002:"
# Python converts at most 4300 digits between int and str (sys.get_int_max_str_digits).
_MAX_INT_BITS = int((sys.get_int_max_str_digits() or 4300) * 3.32)
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_SPECIAL_FLOATS = {
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}
# The first characters a plain scalar needs to be anything but a string ("" is null).
_MAYBE_NOT_STR = frozenset("0123456789+-.~nNtTfF")
_MAYBE = _MAYBE_NOT_STR | {""}


def _plain(value: str) -> Any:
    """Resolve a plain scalar by the YAML 1.2 core schema."""
    if value and value[0] not in _MAYBE_NOT_STR:
        return value
    if value in _NULLS:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.fullmatch(value):
        if value[:2] not in ("0o", "0x"):
            return int(value)  # ValueError past Python's limit on digits
        number = int(value, 0)
        if number.bit_length() > _MAX_INT_BITS:  # fine here, but never printable in decimal
            raise ValueError(value)
        return number
    if _FLOAT.fullmatch(value):
        return float(value)
    return _SPECIAL_FLOATS.get(value, value)


def _explicit(tag: str, value: str, position: Position) -> Any:
    """A scalar with an explicit standard tag (`!!str 2`)."""
    name = tag.removeprefix(_CORE)
    if name == "str":
        return value
    if name not in ("int", "float", "bool", "null"):
        raise LoadError(f"tag {tag!r} is not allowed", position)
    try:
        resolved = _plain(value)
    except ValueError:  # beyond Python's limit on digits
        raise LoadError("number with too many digits", position) from None
    kind = {bool: "bool", int: "int", float: "float", type(None): "null"}.get(type(resolved))
    if kind == name or (kind == "int" and name == "float"):
        return float(resolved) if name == "float" else resolved
    raise LoadError(f"{value!r} is not a valid !!{name}", position)


def load(text: str, *, marks: Marks | None = None) -> Any:
    """Parse one YAML (or JSON) document into plain Python values.

    With `marks`, records the position of every value and key, for error
    messages; the fast path leaves it out.
    """
    parser = CParser(text)
    try:
        return _build(parser.get_event, marks)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        if text[mark.index : mark.index + 1] == "\t":
            problem = "tab character: YAML indents with spaces"
        raise LoadError(problem, Position(mark.line + 1, mark.column + 1)) from None
    except ReaderError as exc:
        raise LoadError(
            f"character {exc.character!r} is not allowed ({exc.reason})",
            _text_position(text, exc.position),
        ) from None


def _text_position(text: str, index: int) -> Position:
    line_start = text.rfind("\n", 0, index) + 1
    return Position(text.count("\n", 0, index) + 1, index - line_start + 1)


_NO_KEY = object()


def _build(next_event: Callable[[], Any], marks: Marks | None) -> Any:
    # A stack of open containers: [container, pending key, path]. Iterative on
    # purpose: a hostile file cannot exhaust Python's recursion.
    stack: list[list[Any]] = []
    documents = 0
    root: Any = None
    scalar_t, map_t, seq_t = ev.ScalarEvent, ev.MappingStartEvent, ev.SequenceStartEvent
    map_end_t, seq_end_t = ev.MappingEndEvent, ev.SequenceEndEvent
    while True:
        event = next_event()
        kind = type(event)
        if kind is scalar_t:
            if event.anchor is not None:
                raise LoadError("anchors and aliases are not allowed", _mark(event))
            # `ctag` first: `tag` is a property that builds a string (the hot path).
            tag = None if event.ctag is None else event.tag
            if tag is None or tag == "!":
                value: Any = event.value
                # Most plain scalars are words: skip resolution unless they could be more.
                if event.implicit[0] and not event.style and tag is None and value[:1] in _MAYBE:
                    try:
                        value = _plain(value)
                    except ValueError:  # beyond Python's limit on digits
                        raise LoadError("number with too many digits", _mark(event)) from None
            elif tag.startswith(_CORE):
                value = _explicit(tag, event.value, _mark(event))
            else:
                raise LoadError(f"tag {tag!r} is not allowed", _mark(event))
            if marks is not None and stack:
                _record(stack[-1], marks, _mark(event))
        elif kind is map_t or kind is seq_t:
            if event.anchor is not None:
                raise LoadError("anchors and aliases are not allowed", _mark(event))
            tag = event.tag
            standard = _CORE + ("map" if kind is map_t else "seq")
            if tag is not None and tag != "!" and tag != standard:
                raise LoadError(f"tag {tag!r} is not allowed", _mark(event))
            if len(stack) >= MAX_DEPTH:
                raise LoadError(f"nesting is deeper than {MAX_DEPTH} levels", _mark(event))
            if stack and stack[-1][1] is _NO_KEY and type(stack[-1][0]) is dict:
                raise LoadError("a mapping key must be a plain value", _mark(event))
            path: Path = ()
            if marks is not None:
                if stack:
                    path = _record(stack[-1], marks, _mark(event))
                else:
                    marks.values[()] = _mark(event)
            stack.append([{} if kind is map_t else [], _NO_KEY, path, None])
            continue
        elif kind is map_end_t or kind is seq_end_t:
            value = stack.pop()[0]
        elif kind is ev.AliasEvent:
            raise LoadError("anchors and aliases are not allowed", _mark(event))
        elif kind is ev.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise LoadError("a file holds one YAML document, not several", _mark(event))
            continue
        elif kind is ev.StreamEndEvent:
            return root
        else:  # stream start, document end
            continue

        if not stack:
            root = value
            continue
        top = stack[-1]
        container = top[0]
        if type(container) is list:
            container.append(value)
        elif top[1] is _NO_KEY:
            if value in container:
                raise LoadError(f"duplicate key {value!r}", _mark(event))
            top[1] = value
        else:
            container[top[1]] = value
            top[1] = _NO_KEY


def _record(top: list[Any], marks: Marks, position: Position) -> Path:
    """Note where the next item of the open container `top` starts."""
    container, key = top[0], top[1]
    path: Path = top[2]
    if type(container) is list:
        item: Path = (*path, len(container))
        marks.values[item] = position
        return item
    if key is _NO_KEY:
        top[3] = position  # the key being read
        return path
    item = (*path, key)
    marks.values[item] = position
    marks.keys[item] = top[3]
    return item


def load_bytes(data: bytes, *, marks: Marks | None = None) -> Any:
    return load(decode(data), marks=marks)


def load_json(text: str, *, marks: Marks | None = None) -> Any:
    """JSON is read by the same reader (JSON is YAML 1.2), after a strict JSON check
    so that a JSON-only mistake (a trailing comma, a comment) is reported as such."""
    try:
        json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON: {exc.msg}", Position(exc.lineno, exc.colno)) from None
    except RecursionError:
        raise LoadError(f"nesting is deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # a number beyond Python's limit on digits
        raise LoadError("number with too many digits") from None
    except _DuplicateKey as exc:
        # The YAML reader knows where the duplicate stands.
        load(text, marks=Marks.empty())
        raise LoadError(f"duplicate key {exc.key!r}") from None
    return load(text, marks=marks)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class RoundTrip:
    """Load, edit and write back a YAML file, keeping its comments and layout.

    The safe `load` runs first, so every guard applies to edited files too.
    """

    def __init__(self, text: str) -> None:
        load(text)  # the guards; raises LoadError
        self.text = text
        self._yaml = YAML(typ="rt")
        self._yaml.preserve_quotes = True
        self._yaml.width = 4096  # never re-wrap long lines
        mapping, sequence, offset = _guess_indent(text)
        self._yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        self.data = self._yaml.load(text)

    def dump(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self.data, out)
        return out.getvalue()


_BLOCK_SCALAR = re.compile(r"(^|[:\s-])[|>][-+0-9]*\s*(#.*)?$")


def _structure_lines(text: str) -> list[str]:
    """The lines that carry structure: not blank, not comments, and not the content of
    a `|` or `>` block scalar (its text says nothing of the file's indentation)."""
    found: list[str] = []
    inside: int | None = None  # the indentation of the line that opened a block scalar
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or stripped[0] == "#":
            continue
        indent = len(line) - len(stripped)
        if inside is not None:
            if indent > inside:
                continue
            inside = None
        found.append(line)
        if _BLOCK_SCALAR.search(line):  # its content sits deeper than its key
            dashes = re.match(r"(?:-\s+)*", stripped)
            inside = indent + (dashes.end() if dashes else 0)
    return found


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as ruamel names them, read off the text.

    Sequences may be indented under their key (`key:\\n  - a`) or not
    (`key:\\n- a`); mappings nest as the first mapping under a key does.
    """
    lines = _structure_lines(text)
    mapping, offset = None, None
    for previous, line in pairwise(lines):
        stripped, above = line.lstrip(" "), previous.lstrip(" ")
        if not previous.rstrip().endswith(":"):
            continue
        deeper = (len(line) - len(stripped)) - (len(previous) - len(above))
        if stripped.startswith("- "):
            offset = deeper if offset is None else offset
        elif mapping is None and not above.startswith("- ") and deeper > 0:
            mapping = deeper
    return mapping or 2, (offset or 0) + 2, offset or 0
