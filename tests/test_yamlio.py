from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_incidents import yamlio
from gitops_incidents.yamlio import LoadError, Marks, Position, RoundTrip, load, load_bytes

from .conftest import ROOT

# The YAML 1.2 core schema: what a plain scalar becomes.
SCALARS: list[tuple[str, Any]] = [
    ("plain", "plain"),
    ("'quoted 1'", "quoted 1"),
    ('"2"', "2"),
    ("42", 42),
    ("-7", -7),
    ("0o17", 15),
    ("0x1F", 31),
    ("1.5", 1.5),
    ("-1e3", -1000.0),
    (".inf", math.inf),
    ("-.Inf", -math.inf),
    ("true", True),
    ("False", False),
    ("null", None),
    ("~", None),
    ("", None),
    # YAML 1.1's booleans and sexagesimals are strings in 1.2: no Norway problem.
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("1:30", "1:30"),
    # Timestamps stay text; the models parse them.
    ("2026-11-27T09:12:00Z", "2026-11-27T09:12:00Z"),
    ("!!str 42", "42"),
    ("!!int 42", 42),
    ("!!float 1", 1.0),
    ("! 42", "42"),
    ("0.", 0.0),
    ("+12", 12),
    ("1_000", "1_000"),
]


@pytest.mark.parametrize(("source", "expected"), SCALARS)
def test_core_schema_scalars(source: str, expected: Any) -> None:
    assert load(f"key: {source}\n") == {"key": expected}


def test_structures_and_block_scalars() -> None:
    text = "a:\n  - 1\n  - {b: [x, y]}\nc: |\n  line one\n  line two\nd: >-\n  folded\n  text\n"
    assert load(text) == {
        "a": [1, {"b": ["x", "y"]}],
        "c": "line one\nline two\n",
        "d": "folded text",
    }


# Every guard: the input, the message, and where it is reported (line, column).
BAD: list[tuple[str, bytes, str, tuple[int, int]]] = [
    ("anchor", b"a: &x 1\n", "anchors and aliases are not allowed", (1, 4)),
    ("alias", b"a: 1\nb: *x\n", "anchors and aliases are not allowed", (2, 4)),
    ("anchored map", b"a: &m {b: 1}\n", "anchors and aliases are not allowed", (1, 4)),
    ("merge key", b"base: &b {x: 1}\nother:\n  <<: *b\n", "anchors and aliases", (1, 7)),
    ("custom tag", b"a: !python/object:os.system x\n", "tag '!python/object:os.system'", (1, 4)),
    ("local tag", b"a: !foo 1\n", "tag '!foo' is not allowed", (1, 4)),
    ("binary tag", b"a: !!binary aGk=\n", "tag 'tag:yaml.org,2002:binary'", (1, 4)),
    ("set tag", b"a: !!set {x}\n", "tag 'tag:yaml.org,2002:set'", (1, 4)),
    ("bad !!int", b"a: !!int x\n", "'x' is not a valid !!int", (1, 4)),
    ("duplicate key", b"a: 1\nb: 2\na: 3\n", "duplicate key 'a'", (3, 1)),
    ("nested duplicate", b"a:\n  b: 1\n  b: 2\n", "duplicate key 'b'", (3, 3)),
    ("complex key", b"? [a, b]\n: 1\n", "a mapping key must be a plain value", (1, 3)),
    ("two documents", b"a: 1\n---\nb: 2\n", "one YAML document, not several", (2, 1)),
    ("syntax", b"a: [1, 2\n", "did not find expected ',' or ']'", (2, 1)),
    ("bad indentation", b"a:\n  b: 1\n c: 2\n", "did not find expected key", (3, 2)),
    ("tab indentation", b"a:\n\tb: 1\n", "tab character: YAML indents with spaces", (2, 1)),
    ("not UTF-8", b"a: caf\xe9\n", "file is not UTF-8", (1, 7)),
    ("UTF-16", "a: 1\n".encode("utf-16"), "file is not UTF-8", (1, 1)),
    ("NUL byte", b"a: 1\x00\n", "is not allowed", (1, 5)),
    ("control character", b"a: \x07\n", "is not allowed", (1, 4)),
    ("deep nesting", b"a: " + b"[" * 99 + b"]" * 99, "nesting is deeper than 64", (1, 67)),
    ("huge number", b"a: 1\nb: " + b"7" * 5000 + b"\n", "number with too many digits", (2, 4)),
    ("huge tagged number", b"a: !!int " + b"7" * 5000, "number with too many digits", (1, 4)),
]


@pytest.mark.parametrize(("name", "data", "message", "where"), BAD, ids=[b[0] for b in BAD])
def test_guards(name: str, data: bytes, message: str, where: tuple[int, int]) -> None:
    with pytest.raises(LoadError) as caught:
        load_bytes(data)
    assert message in caught.value.message
    assert caught.value.position == Position(*where)


def test_a_byte_order_mark_is_allowed() -> None:
    assert load_bytes(b"\xef\xbb\xbfa: 1\n") == {"a": 1}


def test_alias_bomb_is_rejected_at_once() -> None:
    # The billion laughs: nine levels of nine aliases each.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{', '.join(['*' + previous] * 9)}]")
    started = time.perf_counter()
    with pytest.raises(LoadError, match="anchors and aliases"):
        load("\n".join(lines))
    assert time.perf_counter() - started < 0.5


def test_huge_file_is_rejected_before_parsing() -> None:
    data = b"a: " + b"x" * (3 * 1024 * 1024) + b"\n"
    started = time.perf_counter()
    with pytest.raises(LoadError, match=r"file is 3.0 MiB; the limit is 1 MiB"):
        load_bytes(data)
    assert time.perf_counter() - started < 0.5


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    with pytest.raises(LoadError, match="nesting"):
        load("[" * 100_000 + "]" * 100_000)


def test_marks_locate_values_and_keys() -> None:
    marks = Marks.empty()
    load("name: x\nlist:\n  - a\n  - {b: 1}\n", marks=marks)
    assert marks.locate(("name",)) == Position(1, 7)
    assert marks.locate(("list", 1, "b")) == Position(4, 9)
    assert marks.locate(("list", 1, "b"), key=True) == Position(4, 6)
    # Items the document lacks (a union tag, a missing key) fall back to the nearest ancestor.
    assert marks.locate(("list", 1, "RelatedResource", "missing")) == Position(4, 5)


JSON_BAD = [
    ('{"a": 1,}', "invalid JSON: Expecting property name enclosed in double quotes", (1, 9)),
    ("[" * 100_000 + "]" * 100_000, "nesting is deeper than 64 levels", (1, 1)),
    ('{"a": ' + "7" * 5000 + "}", "number with too many digits", (1, 1)),
    ('{"a": 1, "a": 2}', "duplicate key 'a'", (1, 10)),
    ('{"a": 1}\n// comment', "invalid JSON: Extra data", (2, 1)),
]


@pytest.mark.parametrize(("text", "message", "where"), JSON_BAD)
def test_json_errors(text: str, message: str, where: tuple[int, int]) -> None:
    with pytest.raises(LoadError) as caught:
        yamlio.load_json(text)
    assert caught.value.message == message
    assert caught.value.position == Position(*where)


def test_json_with_tabs_loads() -> None:
    assert yamlio.load_json('{\n\t"a": [1,\t2]\n}') == {"a": [1, 2]}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_fail_cleanly(data: bytes) -> None:
    try:
        load_bytes(data)
    except LoadError as exc:
        assert exc.position.line >= 1
        assert exc.position.column >= 1


YAMLISH = st.text(alphabet=st.sampled_from(list("ab:- \n[]{},&*!#'\"|>?%@`\t0.~")), max_size=80)


@settings(max_examples=500, deadline=None)
@given(YAMLISH)
def test_yaml_like_text_loads_or_fails_cleanly(text: str) -> None:
    # Any other exception fails the test.
    with contextlib.suppress(LoadError):
        load(text)


YAML_EXAMPLES = sorted(
    [ROOT / "gitops-incidents.yaml", *ROOT.glob("incidents/*.yaml"), *ROOT.glob("automations/*.y*")]
)


@pytest.mark.parametrize("path", YAML_EXAMPLES, ids=[p.name for p in YAML_EXAMPLES])
def test_untouched_examples_round_trip_byte_identical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert RoundTrip(text).dump() == text


def test_round_trip_edit_keeps_comments_and_layout() -> None:
    text = (
        "# header comment\n"
        "name: Outage  # inline\n"
        "severity: SEV-2\n"
        "tags: [a, b]\n"
        "comments:\n"
        "  - text: 'first'\n"
        "    author: alice\n"
    )
    document = RoundTrip(text)
    document.data["severity"] = "SEV-1"
    document.data["comments"].append({"text": "second", "author": "bob"})
    assert document.dump() == text.replace("SEV-2", "SEV-1") + "  - text: second\n    author: bob\n"


def test_round_trip_applies_the_guards() -> None:
    with pytest.raises(LoadError, match="anchors"):
        RoundTrip("a: &x 1\nb: *x\n")
