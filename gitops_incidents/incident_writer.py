"""A new incident's file: what `declare` and the declare-incident action both write.

New files are written with ruamel's round-trip writer (the one that edits keep
comments and layout with), so a file declared by a person, by an automation or by
hand reads the same; callers validate the text before anything is written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

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
