"""Events from one change to one incident file (SPEC 4): pure, no I/O.

`derive(state, document, commit)` compares the new valid version of an
incident file (or its deletion) with the incident's state after its last
valid version, and returns the Prefect events, in SPEC order, and the new
state. History walking, caching and git live in `history`.
"""

from __future__ import annotations

import difflib
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Event = dict[str, Any]

# The order of updated.<field> events within one change (SPEC 4).
FIELDS = (
    "name",
    "summary",
    "severity",
    "start_time",
    "end_time",
    "tags",
    "related_resources",
    "impact",
    "roles",
    "metadata",
)
# 9999-12-31T23:59:59Z, the last second ISO 8601 (and datetime) can write: later times
# (a commit dated in year 11476, a deadline past it) are held there.
LATEST = 253_402_300_799

# A fixed namespace for uuid5 ids: the same history always gives the same ids.
EVENT_NAMESPACE = uuid.UUID("6f0f3f2c-6a3e-5b7e-9d1c-2b7f5e0c9a41").bytes


def uuid5(name: str, namespace: bytes = EVENT_NAMESPACE) -> str:
    """uuid.uuid5(namespace, name) as a string, without its object overhead (hot path)."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class CommitContext(NamedTuple):
    """What every event of one commit carries."""

    sha: str
    occurred: str  # committer time, non-decreasing along the main line, UTC
    authored: str
    committed: str
    actor_name: str
    actor_email: str
    namespace: str


@dataclass(slots=True)
class IncidentState:
    """An incident after its last valid version: what the next change is compared with."""

    id: str
    number: int
    path: str
    document: dict[str, Any] | None  # the file's values, normalized; None once deleted
    links: list[dict[str, str]]  # the document's related resources and tags, as events name them
    declared_at: str  # the default start_time: the declaring commit's time
    resolved_at: str | None = None  # the default end_time: the resolving commit's time
    # (author, at) defaults of each comment, fixed by the commit that appended it
    comment_defaults: list[tuple[str, str]] = field(default_factory=list)
    ordinal: int = 0  # events so far, for deterministic ids
    last_event: str | None = None

    @property
    def start_time(self) -> str:
        explicit = self.document.get("start_time") if self.document else None
        return explicit or self.declared_at

    @property
    def end_time(self) -> str | None:
        if not self.document or self.document.get("status") != "resolved":
            return None
        return self.document.get("end_time") or self.resolved_at

    def comment(self, index: int) -> dict[str, Any]:
        """A comment with its author and time filled in."""
        raw = self.document["comments"][index] if self.document else {}
        return _effective(raw, self.comment_defaults[index])

    @property
    def comments(self) -> list[dict[str, Any]]:
        """The comments with authors and times filled in; none once deleted."""
        if not self.document:
            return []
        return [self.comment(index) for index in range(len(self.comment_defaults))]

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies the document, which costs.
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncidentState:
        data = dict(data)
        data["comment_defaults"] = [tuple(d) for d in data["comment_defaults"]]
        return cls(**data)


def derive(
    state: IncidentState | None,
    document: dict[str, Any] | None,
    path: str,
    commit: CommitContext,
    incident_id: str,
    number: int,
    links: list[dict[str, str]] | None = None,
) -> tuple[list[Event], IncidentState | None]:
    """Events for `document` (None: the file was deleted) against `state`; the
    returned state is `state` itself, updated, or a new one.

    `number` is used when this change declares an incident never seen before;
    `links` are `resource_links(document)`, when the caller has them already.
    """
    if document is not None and links is None:
        links = resource_links(document)
    if document is None:
        if state is None or state.document is None:
            return [], state
        emitter = _Emitter(state, commit, path)
        emitter.emit("deleted", _summary(state))  # labels: the incident as it last was
        state.document = None
        return emitter.events, state

    if state is None or state.document is None:
        new = IncidentState(
            id=incident_id,
            number=state.number if state else number,
            path=path,
            document=document,
            links=links or [],
            declared_at=commit.occurred,
            comment_defaults=[(commit.actor_name, commit.occurred)] * len(document["comments"]),
            ordinal=state.ordinal if state else 0,
            last_event=state.last_event if state else None,
        )
        if document["status"] == "resolved":
            new.resolved_at = commit.occurred
        emitter = _Emitter(new, commit, path)
        emitter.emit("declared", _summary(new))
        if document["status"] == "resolved":
            emitter.emit("resolved", {**_summary(new), "end_time": new.end_time})
        return emitter.events, new

    # What the change is compared with: the state as its last valid version left it.
    before, before_defaults = state.document, state.comment_defaults
    before_start, before_end = state.start_time, state.end_time
    state.document, state.path, state.links = document, path, links or []
    emitter = _Emitter(state, commit, path)
    status_changed = before["status"] != document["status"]
    if status_changed:
        state.resolved_at = commit.occurred if document["status"] == "resolved" else None
    old_value: Any
    new_value: Any
    for name in FIELDS:
        if name == "start_time":
            old_value, new_value = before_start, state.start_time
        elif name == "end_time":
            if status_changed:
                continue  # carried by the resolved or reopened event
            old_value, new_value = before_end, state.end_time
        else:
            old_value, new_value = before[name], document[name]
        if old_value != new_value:
            emitter.emit(f"updated.{name}", {"field": name, "old": old_value, "new": new_value})
    _comment_events(emitter, before, before_defaults, state, commit)
    if status_changed and document["status"] == "resolved":
        emitter.emit("resolved", {**_summary(state), "end_time": state.end_time})
    elif status_changed:
        emitter.emit("reopened", {**_summary(state), "end_time": None})
    return emitter.events, state


def _comment_events(
    emitter: _Emitter,
    before: dict[str, Any],
    before_defaults: list[tuple[str, str]],
    new: IncidentState,
    commit: CommitContext,
) -> None:
    """comment.added / .edited / .removed, in list order; defaults follow each comment."""
    old, after = before["comments"], new.document["comments"] if new.document else []
    fresh = (commit.actor_name, commit.occurred)
    if after[: len(old)] == old:  # the common case: comments appended
        new.comment_defaults = before_defaults + [fresh] * (len(after) - len(old))
        for index in range(len(old), len(after)):
            emitter.emit("comment.added", {"comment": new.comment(index), "index": index})
        return
    # Not a plain append (a rewrite, or a comment merged in between landed ones): pair
    # old and new comments, keeping each one's defaults.
    opcodes = pair_comments(old, after)
    defaults: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in opcodes:
        kept = (i2 - i1) if tag == "equal" else paired(tag, i1, i2, j1, j2)
        defaults.extend(before_defaults[i1 : i1 + kept])
        defaults.extend([fresh] * (j2 - j1 - kept))
    new.comment_defaults = defaults
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            continue
        edited = paired(tag, i1, i2, j1, j2)
        for offset in range(edited):
            emitter.emit(
                "comment.edited",
                {
                    "comment": new.comment(j1 + offset),
                    "previous": _effective(old[i1 + offset], before_defaults[i1 + offset]),
                    "index": j1 + offset,
                },
            )
        for index in range(i1 + edited, i2):
            comment = _effective(old[index], before_defaults[index])
            emitter.emit("comment.removed", {"comment": comment, "index": index})
        for index in range(j1 + edited, j2):
            emitter.emit("comment.added", {"comment": new.comment(index), "index": index})


def pair_comments(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> Sequence[tuple[str, int, int, int, int]]:
    """How a change pairs an incident's comments before and after it (difflib's
    opcodes on text, author and time): an insert adds, a replace edits `paired` of
    them in place and removes or adds the rest, a delete removes."""
    matcher = difflib.SequenceMatcher(
        a=[_key(c) for c in old], b=[_key(c) for c in new], autojunk=False
    )
    return matcher.get_opcodes()


def paired(tag: str, i1: int, i2: int, j1: int, j2: int) -> int:
    """How many comments a replacement edits in place (the rest are removed or added)."""
    return min(i2 - i1, j2 - j1) if tag == "replace" else 0


def _effective(raw: dict[str, Any], defaults: tuple[str, str]) -> dict[str, Any]:
    author, at = defaults
    return {"text": raw["text"], "author": raw.get("author") or author, "at": raw.get("at") or at}


def _key(comment: dict[str, Any]) -> tuple[Any, ...]:
    return (comment["text"], comment.get("author"), comment.get("at"))


def _summary(state: IncidentState) -> dict[str, Any]:
    document = state.document or {}
    return {
        "id": state.id,
        "name": document.get("name"),
        "status": document.get("status"),
        "severity": document.get("severity"),
        "tags": document.get("tags", []),
    }


class _Emitter:
    """Builds one incident's events for one commit, chaining ids and `follows`.

    The events of one commit share their resource and related lists (the
    incident as the commit left it): events are read-only.
    """

    def __init__(self, state: IncidentState, commit: CommitContext, path: str) -> None:
        self.state, self.commit = state, commit
        ns = commit.namespace
        self.resource_id = f"{ns}.incident.{state.id}"
        document = state.document or {}
        self.resource = {
            "prefect.resource.id": self.resource_id,
            "prefect.resource.name": document.get("name"),
            f"{ns}.incident.severity": document.get("severity"),
            f"{ns}.incident.status": document.get("status"),
        }
        self.related = [
            *state.links,
            {
                "prefect.resource.id": f"git.author.{commit.actor_email}",
                "prefect.resource.role": "actor",
                "prefect.resource.name": commit.actor_name,
            },
            {"prefect.resource.id": f"git.commit.{commit.sha}", "prefect.resource.role": "commit"},
        ]
        self.context = {
            "commit": commit.sha,
            "path": path,
            "authored": commit.authored,
            "committed": commit.committed,
        }
        self.events: list[Event] = []

    def emit(self, name: str, payload: dict[str, Any]) -> None:
        state = self.state
        event_name = f"{self.commit.namespace}.incident.{name}"
        event_id = uuid5(f"{self.resource_id}\0{event_name}\0{state.ordinal}")
        self.events.append(
            {
                "id": event_id,
                "occurred": self.commit.occurred,
                "event": event_name,
                "resource": self.resource,
                "related": self.related,
                "payload": {**payload, **self.context},
                "follows": state.last_event,
            }
        )
        state.ordinal += 1
        state.last_event = event_id


def resource_links(document: dict[str, Any]) -> list[dict[str, str]]:
    """An incident's linked resources (with roles) and tags, as related resources."""
    links: list[dict[str, str]] = []
    for resource in document["related_resources"]:
        item = {
            "prefect.resource.id": resource["id"],
            "prefect.resource.role": resource["role"] or default_role(resource["id"]),
        }
        if resource["name"]:
            item["prefect.resource.name"] = resource["name"]
        links.append(item)
    links.extend(
        {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        for tag in document["tags"]
    )
    return links


def default_role(resource_id: str) -> str:
    """`prefect.work-pool.k8s-prod` has the kind `prefect.work-pool`: role `work-pool`."""
    return resource_id.rsplit(".", 2)[-2]
