"""Checking tracker files: parse, validate, and say precisely what is wrong where.

`parse_file` is the one way a tracker file's bytes become a model, for the
working tree here and for every version in history later; its findings point
at `path:line:column` of the offending key or value.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gitops_incidents import gitcmd, models, tracker, yamlio
from gitops_incidents.models import Automation, Config, Context, Incident
from gitops_incidents.tracker import Kind

M = TypeVar("M", bound=BaseModel)

MODELS: dict[Kind, type[BaseModel]] = {
    Kind.INCIDENT: Incident,
    Kind.AUTOMATION: Automation,
    Kind.CONFIG: Config,
}


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    column: int
    message: str
    level: Literal["error", "warning"] = "error"

    def __post_init__(self) -> None:
        if not self.path.isascii():  # a name git has in bytes that are not UTF-8
            object.__setattr__(self, "path", gitcmd.readable(self.path))

    def __str__(self) -> str:
        prefix = "warning: " if self.level == "warning" else ""
        return f"{self.path}:{self.line}:{self.column}: {prefix}{self.message}"

    def annotation(self) -> str:
        """A GitHub workflow command: the finding shown on its line of the diff."""
        # https://docs.github.com/actions/reference/workflow-commands-for-github-actions
        where = f"file={_property(self.path)},line={self.line},col={self.column}"
        return f"::{self.level} {where},title=gitops-incidents::{_data(self.message)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "level": self.level,
            "message": self.message,
        }


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def read_document(path: str, data: bytes, marks: yamlio.Marks | None = None) -> Any:
    """Bytes to plain values, by the file's type; raises yamlio.LoadError."""
    if path.endswith(".json"):
        return yamlio.load_json(yamlio.decode(data), marks=marks)
    return yamlio.load_bytes(data, marks=marks)


def parse_file(
    path: str, data: bytes, model: type[M], context: Context
) -> tuple[M | None, list[Finding]]:
    """Validate one file's bytes as `model`: the model, or None and the findings."""
    try:
        document = read_document(path, data)
    except yamlio.LoadError as exc:
        return None, [Finding(path, exc.position.line, exc.position.column, exc.message)]
    if not isinstance(document, dict):
        message = f"expected a mapping of keys to values; the file is {_kind_name(document)}"
        return None, [Finding(path, 1, 1, message)]
    try:
        return model.model_validate(document, context=context), []
    except ValidationError as exc:
        # The slow path, only for invalid files: read again, this time noting positions.
        marks = yamlio.Marks.empty()
        read_document(path, data, marks)
        return None, _locate(path, exc.errors(include_url=False), marks)


def _kind_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "a number"}
    names |= {float: "a number", bool: "a boolean", type(None): "empty"}
    return names.get(type(value), type(value).__name__)


_TYPE_ERRORS = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "literal_error": None,
}


def _locate(path: str, errors: list[ErrorDetails], marks: yamlio.Marks) -> list[Finding]:
    placed = [(marks.path(error["loc"]), error) for error in errors]
    # A union (a string or a mapping, say) reports one error per member. Keep the
    # member that got furthest, and fold plain type mismatches into one message.
    deepest = {p for p, _ in placed}
    kept: dict[tuple[Any, ...], list[ErrorDetails]] = {}
    for where, error in placed:
        is_type = error["type"] in _TYPE_ERRORS
        if is_type and any(other[: len(where)] == where and other != where for other in deepest):
            continue
        kept.setdefault(where, []).append(error)
    findings: list[Finding] = []
    for where, group in kept.items():
        if len(group) > 1 and any(e["type"] not in _TYPE_ERRORS for e in group):
            group = [e for e in group if e["type"] not in _TYPE_ERRORS]
        elif len(group) > 1:
            wanted = dict.fromkeys(_TYPE_ERRORS[e["type"]] or e["msg"] for e in group)
            position = marks.locate(where)
            message = f"{_dotted(where)}: expected {' or '.join(wanted)}"
            findings.append(Finding(path, position.line, position.column, message))
            continue
        missing = [str(e["loc"][-1]) for e in group if e["type"] == "missing"]
        findings.extend(_finding(path, marks, where, e, missing) for e in group)
    return sorted(set(findings))


def _finding(
    path: str, marks: yamlio.Marks, where: tuple[Any, ...], error: ErrorDetails, missing: list[str]
) -> Finding:
    kind, key = error["type"], error["loc"][-1] if error["loc"] else None
    if kind == "extra_forbidden":
        position = marks.locate(where, key=True)
        message = f"unknown key {key!r}{_did_you_mean(str(key), missing)}"
        where = where[:-1]
    elif kind == "missing":
        position = marks.locate(where)
        message = f"missing required key {key!r}"
    elif kind == "union_tag_invalid":
        position = marks.locate((*where, "type"))
        message = _message(error)
    elif _TYPE_ERRORS.get(kind):
        position = marks.locate(where)
        message = f"expected {_TYPE_ERRORS[kind]}, not {_kind_name(error['input'])}"
    else:
        position = marks.locate(where)
        message = _message(error)
    text = f"{_dotted(where)}: {message}" if where else message
    return Finding(path, position.line, position.column, text)


def _message(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid":
        context = error.get("ctx", {})
        tag, expected = context.get("tag"), context.get("expected_tags")
        return f"unknown type {tag!r}; expected one of {expected}"
    if error["type"] == "union_tag_not_found":
        return "missing required key 'type'"
    return message[:1].lower() + message[1:] if message[1:2].islower() else message


def _did_you_mean(key: str, missing: list[str]) -> str:
    close = difflib.get_close_matches(key, missing or _FIELD_NAMES, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _all_fields(model: type[BaseModel]) -> Iterable[str]:
    yield from model.model_fields
    for subclass in model.__subclasses__():
        yield from _all_fields(subclass)


_FIELD_NAMES = sorted(set(_all_fields(models.Strict)))


def _dotted(where: Sequence[Any]) -> str:
    text = ""
    for item in where:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text


# -- the repository ----------------------------------------------------------------------


@dataclass
class Report:
    files: int
    findings: list[Finding]

    @property
    def errors(self) -> int:
        return sum(f.level == "error" for f in self.findings)


def _read(root: Path, relpath: str, kind: Kind) -> bytes | Finding:
    """A working-tree file's bytes, or why they are not read."""
    try:
        return tracker.read_file(root, relpath, yamlio.MAX_BYTES, kind.value)
    except tracker.NotAFile as exc:
        return Finding(relpath, 1, 1, str(exc))
    except OverflowError as exc:  # refused before reading a huge file into memory
        return Finding(relpath, 1, 1, yamlio.size_problem(exc.args[0]))
    except OSError as exc:
        return Finding(relpath, 1, 1, f"cannot be read: {exc.strerror}")


def load_config(root: Path) -> tuple[Config, list[Finding]]:
    """The repository's configuration; the defaults (and findings) if it is invalid."""
    if not os.path.lexists(root / tracker.CONFIG_FILE):
        return Config(), []
    data = _read(root, tracker.CONFIG_FILE, Kind.CONFIG)
    if isinstance(data, Finding):
        return Config(), [data]
    config, findings = parse_file(tracker.CONFIG_FILE, data, Config, Context())
    return config or Config(), findings


def validate(root: Path, relpaths: Iterable[str] | None = None) -> Report:
    """Check the given tracker files (all of them by default) in the working tree.
    Nothing outside the repository is read: a symbolic link is a finding."""
    config, config_findings = load_config(root)
    selected = sorted(set(tracker.tracker_files(root) if relpaths is None else relpaths))
    findings = list(config_findings) if tracker.CONFIG_FILE in selected else []
    seen_ids: dict[tuple[Kind, str], str] = {}
    for relpath in selected:
        if relpath in (tracker.INCIDENTS, tracker.AUTOMATIONS):  # the folder is a link
            message = f"{tracker.mode_problem('120000')}; nothing behind it is read"
            findings.append(Finding(relpath, 1, 1, message))
            continue
        kind = tracker.classify(relpath)
        if kind is None or kind is Kind.CONFIG:
            continue
        findings.extend(_check_file(root, relpath, kind, config, seen_ids))
    findings.extend(f for f in _renamed_incidents(root) if f.path in selected)
    return Report(len(selected), sorted(findings))


def _renamed_incidents(root: Path) -> list[Finding]:
    """Incident files renamed in the index against HEAD: ids are permanent (SPEC 4)."""
    try:
        status = gitcmd.run(root, "status", "--porcelain=v1", "-z", "--", f"{tracker.INCIDENTS}/")
    except gitcmd.GitError:
        return []  # not a git repository: nothing to compare with
    findings = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if entry[:1] == "R":
            new, old = entry[3:], next(entries, "")
            message = (
                f"renamed from {old}: an incident's id is its file name, so this deletes "
                f"incident {tracker.file_id(old)!r} and declares {tracker.file_id(new)!r}"
            )
            findings.append(Finding(new, 1, 1, message, "warning"))
        elif entry[:1] == "C":
            next(entries, "")
    return findings


def _check_file(
    root: Path, relpath: str, kind: Kind, config: Config, seen_ids: dict[tuple[Kind, str], str]
) -> list[Finding]:
    problem = tracker.name_problem(relpath, kind)
    if problem:
        return [Finding(relpath, 1, 1, problem)]
    file_id = tracker.file_id(relpath)
    if (kind, file_id) in seen_ids:
        return [Finding(relpath, 1, 1, f"id {file_id!r} is used by {seen_ids[kind, file_id]} too")]
    seen_ids[kind, file_id] = relpath
    data = _read(root, relpath, kind)
    if isinstance(data, Finding):
        return [data]
    _, findings = parse_file(relpath, data, MODELS[kind], Context(config, file_id))
    return findings
