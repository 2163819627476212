"""The one writer of incident files: what the lifecycle commands (`declare`,
`update`, `comment`, `resolve`, `reopen`) and the incident actions write.

New files are written with ruamel's round-trip writer, and edits go through it
too (comments and layout kept), so a file changed by a person, by an automation
or by hand reads the same. Each change is a function that alters the loaded data
in place and says whether it changed anything; callers validate the result
before anything is written.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import LiteralScalarString

from gitops_incidents import yamlio
from gitops_incidents.models import Incident

Change = Callable[[Any], bool]

SCHEMA_LINE = "yaml-language-server: $schema=../schemas/incident.schema.json"


def slug(name: str) -> str:
    """A file name from an incident's name: `Postgres primary down` -> `postgres-primary-down`."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-")
    return text or "incident"


def new_incident(
    *,
    name: str,
    severity: str,
    summary: str = "",
    tags: Iterable[str] = (),
    related: Iterable[str | dict[str, str]] = (),
    comment: str = SCHEMA_LINE,
) -> str:
    """The YAML text of a new incident (`comment` opens the file)."""
    data = CommentedMap()
    data["name"] = name
    data["severity"] = severity
    if summary.strip():
        data["summary"] = summary
    if tags := list(tags):
        data["tags"] = tags
    if resources := [_resource(r) for r in related]:
        data["related_resources"] = resources
    data.yaml_set_start_comment(comment)
    writer = YAML(typ="rt")
    writer.width = 4096  # never wrap a long name or summary
    out = io.StringIO()
    writer.dump(data, out)
    return out.getvalue()


def _resource(resource: str | dict[str, str]) -> Any:
    if isinstance(resource, str):
        return resource
    item = CommentedMap(resource)
    item.fa.set_flow_style()  # `{id: ..., role: ..., name: ...}`: one line a resource
    return item


def edit_text(path: str, text: str, change: Change) -> str | None:
    """`text` after `change`, or None when nothing changed. YAML keeps its comments
    and layout; JSON keeps its indentation. Raises yamlio.LoadError or ValueError."""
    if path.endswith(".json"):
        data = json.loads(text)
        if not change(data):
            return None
        return json.dumps(data, indent=_json_indent(text), ensure_ascii=False) + "\n"
    document = yamlio.RoundTrip(text)
    return document.dump() if change(document.data) else None


def _json_indent(text: str) -> int:
    match = re.search(r"\n( +)\S", text)
    return len(match.group(1)) if match else 2


# The order of an incident's keys (SPEC 3, as the model lists them): a key an edit
# adds goes where a person would have written it, not at the end of the file.
ORDER = list(Incident.model_fields)


def put(data: Any, key: str, value: Any) -> None:
    """`data[key] = value`; a new key inserted after the keys that precede it in ORDER
    (an automation's keys, not in ORDER, go at the end)."""
    if key in data or key not in ORDER or not isinstance(data, CommentedMap):
        data[key] = value
        return
    before = set(ORDER[: ORDER.index(key)])
    position = 0
    for index, existing in enumerate(data):
        if existing in before:
            position = index + 1
    data.insert(position, key, value)


class Refused(Exception):
    """The change makes no sense for the incident as it stands (resolving a resolved
    one): said in one line, nothing written."""


def set_field(key: str, value: Any) -> Change:
    def change(data: Any) -> bool:
        if data.get(key) == value:
            return False
        put(data, key, value)
        return True

    return change


def text_value(value: str) -> Any:
    """A text as a person would write it: of several lines, a `|` block."""
    if "\n" in value.strip():
        return LiteralScalarString(value if value.endswith("\n") else value + "\n")
    return value


def time_value(value: str) -> Any:
    """A time as a person would write it: plain (`2026-12-02T10:00:00Z`), not quoted
    as a string; anything else as given, for validation to refuse."""
    if re.fullmatch(r"\d{4}-\d\d-\d\d[T ][0-9:.]+(Z|[+-]\d\d:?\d\d)?", value):
        return YAML(typ="rt").load(f"- {value}\n")[0]
    return value


def resolve(*, at: str | None = None, impact: str | None = None, strict: bool = False) -> Change:
    """status: resolved (`end_time` and `impact` when given); `strict` refuses an
    incident resolved already (a person asked; an automation's repeat is a no-op)."""

    def change(data: Any) -> bool:
        if data.get("status") == "resolved":
            if strict:
                raise Refused("it is resolved already (reopen it first)")
            return False
        put(data, "status", "resolved")
        if at is not None:
            put(data, "end_time", time_value(at))
        if impact is not None:
            put(data, "impact", text_value(impact))
        return True

    return change


def reopen(*, strict: bool = False) -> Change:
    def change(data: Any) -> bool:
        if data.get("status", "active") == "active":
            if strict:
                raise Refused("it is active, not resolved")
            return False
        put(data, "status", "active")
        data.pop("end_time", None)
        return True

    return change


def comment(text: str, *, author: str | None = None, at: str | None = None) -> Change:
    """A comment appended (comments are append-only: SPEC 3)."""

    def change(data: Any) -> bool:
        comments = data.get("comments")
        if comments is None:
            comments = []
            put(data, "comments", comments)
        item = CommentedMap(text=text_value(text))
        if author:
            item["author"] = author
        if at:
            item["at"] = time_value(at)
        comments.append(item)
        return True

    return change


def update(
    *,
    fields: dict[str, Any],
    tag: Iterable[str] = (),
    untag: Iterable[str] = (),
    resources: Iterable[str] = (),
    roles: dict[str, str] | None = None,
) -> Change:
    """Fields set, tags added and removed, resources linked, roles given."""

    def change(data: Any) -> bool:
        changed = False
        for key, value in fields.items():
            changed |= set_field(key, value)(data)
        tags = data.get("tags")
        for name in tag:
            if tags is None:
                tags = []
                put(data, "tags", tags)
            if name not in tags:
                tags.append(name)
                changed = True
        for name in untag:
            if tags is not None and name in tags:
                tags.remove(name)
                changed = True
        linked = data.get("related_resources")
        for resource_id in resources:
            present = [r if isinstance(r, str) else r.get("id") for r in linked or ()]
            if resource_id not in present:
                if linked is None:
                    linked = []
                    put(data, "related_resources", linked)
                linked.append(resource_id)
                changed = True
        for role, person in (roles or {}).items():
            held = data.get("roles")
            if held is None:
                held = CommentedMap()
                put(data, "roles", held)
            if held.get(role) != person:
                held[role] = person
                changed = True
        return changed

    return change
