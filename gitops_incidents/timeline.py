"""An incident's timeline and retrospective report (SPEC 6), from its events and
the engine's ledger: what the site's pages and `report` both show.

Pure: an `IncidentHistory` and ledger records in, plain data out. Rendering
(HTML pages, Markdown, JSON) is the caller's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from gitops_incidents.events import Event, default_role
from gitops_incidents.history import IncidentHistory
from gitops_incidents.ledger import State
from gitops_incidents.models import Config
from gitops_incidents.triggers import iso, timestamp

# Fields whose old and new values fit on one line; the others are shown as edited.
SHORT_FIELDS = ("name", "severity", "start_time", "end_time")


@dataclass(frozen=True)
class Entry:
    """One line of a timeline."""

    at: str  # ISO 8601, UTC: when it was recorded (the commit, or the engine's action)
    kind: str  # the event name after `<ns>.incident.`, or `automation`
    title: str  # plain text: what happened
    actor: str | None = None  # who did it (a commit's author, a comment's author)
    actor_email: str | None = None
    commit: str | None = None
    text: str | None = None  # Markdown: a comment's text
    previous: str | None = None  # Markdown: an edited or removed comment's earlier text
    rewrite: bool = False  # history was rewritten: an edited or removed comment
    automation: str | None = None  # for automation entries: its name
    status: str | None = None  # for automation entries: done, failed, unknown...
    stated: str | None = None  # a comment's own time (`at`), when it differs from `at`
    severity: str | None = None  # the severity from here on, where this entry sets it
    old: Any = None  # for a field's change: its value before
    new: Any = None  # and after


ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


@dataclass
class Incident:
    """An incident as the site and its report show it."""

    id: str
    number: int
    name: str
    severity: str
    severity_label: str
    status: str  # active, resolved, deleted
    start_time: str
    end_time: str | None
    duration: float | None  # seconds from start to end, once resolved
    summary: str
    impact: str
    tags: list[str]
    resources: list[dict[str, str]]  # id, role, name
    roles: dict[str, list[str]]
    entries: list[Entry] = field(default_factory=list)
    # Flow runs of the linked resources in the window, from Prefect (prefect.impact).
    prefect_impact: dict[str, Any] | None = None
    path: str = ""  # its file, in the repository

    def severity_spans(self, now: float) -> list[tuple[float, float, str]]:
        """(from, to, severity) of each stretch at one severity, from start to end (or
        `now`), by when each change was committed."""
        start = timestamp(self.start_time)
        end = max(timestamp(self.end_time) if self.end_time else now, start)
        spans, severity, since = [], self.severity, start
        for entry in self.entries:
            if entry.severity is None:
                continue
            if entry.kind == "declared":
                severity = entry.severity
                continue
            at = min(max(timestamp(entry.at), start), end)
            spans.append((since, at, severity))
            severity, since = entry.severity, at
        return [*spans, (since, end, severity)]

    @property
    def title(self) -> str:
        return f"#{self.number} - {self.name}"

    def recorded_later(self, entry: Entry) -> bool:
        """Whether `entry` was committed after the incident ended: written up later."""
        return self.end_time is not None and timestamp(entry.at) > timestamp(self.end_time)


def incident(history: IncidentHistory, config: Config, actions: list[Entry]) -> Incident:
    """`actions`: the incident's entries of `automation_entries`."""
    state = history.state
    document = state.document or _last_document(history.events)
    labels = {s.id: s.label for s in config.severities}
    end = state.end_time
    return Incident(
        id=state.id,
        number=state.number,
        name=str(document.get("name") or state.id),
        severity=str(document.get("severity") or ""),
        severity_label=labels.get(str(document.get("severity")), ""),
        status="deleted" if state.document is None else str(document.get("status")),
        start_time=state.start_time,
        end_time=end,
        duration=timestamp(end) - timestamp(state.start_time) if end else None,
        summary=str(document.get("summary") or ""),
        impact=str(document.get("impact") or ""),
        tags=list(document.get("tags") or []),
        resources=[
            {
                "id": r["id"],
                "role": r.get("role") or default_role(r["id"]),
                "name": r.get("name") or "",
            }
            for r in document.get("related_resources") or []
        ],
        roles={
            role: [people] if isinstance(people, str) else list(people)
            for role, people in (document.get("roles") or {}).items()
        },
        entries=entries(history.events, actions, state.comments),
        path=state.path,
    )


def _last_document(events: list[Event]) -> dict[str, Any]:
    """What a deleted incident last showed: its last event's summary labels."""
    for event in reversed(events):
        payload = event["payload"]
        if "name" in payload:
            return dict(payload)
    return {}


def entries(
    events: Iterable[Event], actions: Iterable[Entry] = (), comments: Iterable[dict[str, Any]] = ()
) -> list[Entry]:
    """The timeline, oldest first: every event, the comments the incident was declared
    with (they emit no event of their own), and the engine's actions about it."""
    found = [_entry(event) for event in events]
    posted = {_comment_key(e.actor, e.text, e.stated or e.at) for e in found if e.text}
    declared = max((n for n, e in enumerate(found) if e.kind == "declared"), default=None)
    if declared is not None:
        start = found[declared]
        with_declaration = [
            Entry(
                at=start.at,
                kind="comment.added",
                title="comment",
                actor=c["author"],
                commit=start.commit,
                text=c["text"],
                stated=c["at"] if c["at"] != start.at else None,
            )
            for c in comments
            if _comment_key(c["author"], c["text"], c["at"]) not in posted
        ]
        found[declared + 1 : declared + 1] = with_declaration
    # Stable: events keep their order; an action goes after what happened at its time.
    return sorted([*found, *actions], key=lambda entry: timestamp(entry.at))


def _comment_key(author: str | None, text: str | None, at: str) -> tuple[str, str, str]:
    return (author or "", text or "", at)


def _entry(event: Event) -> Entry:
    kind = event["event"].split(".incident.", 1)[1]
    payload = event["payload"]
    actor: dict[str, str] = next(
        (r for r in event["related"] if r.get("prefect.resource.role") == "actor"), {}
    )
    base = {
        "at": event["occurred"],
        "kind": kind,
        "actor": actor.get("prefect.resource.name"),
        "actor_email": actor.get("prefect.resource.id", "").removeprefix("git.author.") or None,
        "commit": payload.get("commit"),
    }
    if kind.startswith("updated."):
        name = payload["field"]
        if name in SHORT_FIELDS:
            title = (
                f"{name.replace('_', ' ')}: {_short(payload['old'])} -> {_short(payload['new'])}"
            )
        elif name == "tags":
            added, removed = _added_removed(payload["old"], payload["new"])
            changes = [f"+{t}" for t in added] + [f"-{t}" for t in removed]
            title = f"tags: {', '.join(changes)}"
        else:
            title = f"{name.replace('_', ' ')} edited"
        severity = payload["new"] if name == "severity" else None
        return Entry(title=title, severity=severity, old=payload["old"], new=payload["new"], **base)
    if kind.startswith("comment."):
        comment = payload["comment"]
        # A comment shows its own author and time (they may differ from the commit's).
        stated = comment["at"] if comment["at"] != event["occurred"] else None
        base |= {"actor": comment["author"], "actor_email": None, "stated": stated}
        if kind == "comment.added":
            return Entry(title="comment", text=comment["text"], **base)
        previous = payload.get("previous", comment) if kind == "comment.edited" else comment
        return Entry(
            title="comment edited (history rewritten)"
            if kind == "comment.edited"
            else "comment removed (history rewritten)",
            text=comment["text"] if kind == "comment.edited" else None,
            previous=previous["text"],
            rewrite=True,
            **base,
        )
    titles = {
        "declared": f"declared ({payload.get('severity')})",
        "resolved": "resolved",
        "reopened": "reopened",
        "deleted": "deleted (its file was removed)",
    }
    severity = payload.get("severity") if kind == "declared" else None
    return Entry(title=titles.get(kind, kind), severity=severity, **base)


def _short(value: Any) -> str:
    return "none" if value is None else str(value)


def human_time(at: str) -> str:
    """A time for people: `20 Nov 2026, 09:12 UTC`."""
    return time.strftime("%d %b %Y, %H:%M UTC", time.gmtime(timestamp(at)))


def who(entry: Entry) -> str:
    """Who an entry's sentence is about: the person, or the automation."""
    if entry.kind == "automation":
        return f"automation {entry.automation}"
    return entry.actor or "someone"


def sentence(entry: Entry, ranks: dict[str, int]) -> str:
    """What `who(entry)` did, as the rest of a sentence ("raised the severity from
    SEV-2 to SEV-1"); `ranks`: each severity's place on the scale, 0 the worst."""
    kind = entry.kind
    if kind.startswith("updated."):
        return _change(kind.removeprefix("updated."), entry.old, entry.new, ranks)
    if kind == "automation":
        return f"ran {entry.title}"
    return {
        "declared": f"declared the incident at {entry.severity}",
        "comment.added": "commented",
        "comment.edited": "had a comment edited (history rewritten)",
        "comment.removed": "had a comment removed (history rewritten)",
        "resolved": "resolved the incident",
        "reopened": "reopened the incident",
        "deleted": "deleted the incident (its file was removed)",
    }.get(kind, entry.title)


def severity_verb(old: Any, new: Any, ranks: dict[str, int]) -> str:
    """raised, lowered, or (a severity off the scale) changed."""
    was, now = ranks.get(str(old), -1), ranks.get(str(new), -1)
    return "changed" if -1 in (was, now) else "raised" if now < was else "lowered"


def _change(name: str, old: Any, new: Any, ranks: dict[str, int]) -> str:
    label = name.replace("_", " ")
    if name == "severity":
        return f"{severity_verb(old, new, ranks)} the severity from {old} to {new}"
    if name == "name":
        return f"renamed the incident from “{old}” to “{new}”"
    if name in ("start_time", "end_time"):
        if new is None:
            return f"cleared the {label}"
        return f"set the {label} to {human_time(new)}" + (
            f" (was {human_time(old)})" if old else ""
        )
    if name == "tags":
        return _listed("tag", *_added_removed(old, new))
    if name == "related_resources":
        named = {r["id"]: r.get("name") or r["id"] for r in [*(old or []), *(new or [])]}
        ids = _added_removed([r["id"] for r in old or []], [r["id"] for r in new or []])
        linked, unlinked = ([named[i] for i in side] for side in ids)
        if not linked and not unlinked:
            return "edited the linked resources"
        parts = [f"linked {', '.join(linked)}"] * bool(linked)
        return " and ".join([*parts, *[f"unlinked {', '.join(unlinked)}"] * bool(unlinked)])
    if name == "roles":
        return "changed the roles: " + "; ".join(_role_changes(old or {}, new or {}))
    if name in ("summary", "impact"):
        return f"wrote the {label}" if not old else f"edited the {label}"
    return f"changed the {label}"


def _added_removed(old: list[str] | None, new: list[str] | None) -> tuple[list[str], list[str]]:
    """What `new` has that `old` lacks, and the other way round, each in its order."""
    before, after = old or [], new or []
    return [v for v in after if v not in before], [v for v in before if v not in after]


def _listed(noun: str, added: list[str], removed: list[str]) -> str:
    parts = []
    for verb, names in (("added", added), ("removed", removed)):
        if names:
            parts.append(f"{verb} the {noun}{'s' * (len(names) > 1)} {', '.join(names)}")
    return " and ".join(parts) or f"reordered the {noun}s"


def _role_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Role by role, in words: "Bob became scribe", "Alice is no longer commander"."""

    def people(roles: dict[str, Any], role: str) -> list[str]:
        held = roles.get(role) or []
        return [held] if isinstance(held, str) else [str(p) for p in held]

    said = []
    for role in [*old, *(r for r in new if r not in old)]:
        before, after = people(old, role), people(new, role)
        said += [f"{p} became {role}" for p in after if p not in before]
        said += [f"{p} is no longer {role}" for p in before if p not in after]
    return said or ["reordered"]


def automation_entries(config: Config, ledger: State | None) -> dict[str, list[Entry]]:
    """What the engine's automations did, by the incident whose event they acted on:
    read from the ledger once for every incident."""
    found: dict[str, list[Entry]] = {}
    if ledger is None:
        return found
    prefix = f"{config.namespace}.incident."
    for firing in ledger.firings.values():
        resource = str((firing.event or {}).get("resource", {}).get("prefect.resource.id", ""))
        if not resource.startswith(prefix):
            continue
        for key in firing.invocations:
            invocation = ledger.invocations.get(key)
            if invocation is None:
                continue
            found.setdefault(resource.removeprefix(prefix), []).append(
                Entry(
                    at=iso(invocation.updated or firing.triggered),
                    kind="automation",
                    title=f"{invocation.type}: {invocation.status}",
                    text=invocation.detail or None,
                    automation=firing.name,
                    status=invocation.status,
                )
            )
    return found


def severity_time_text(seconds: float | None) -> str:
    """A time at a severity: None is a change whose time is not known."""
    return (
        "unknown (changed after the incident ended)" if seconds is None else duration_text(seconds)
    )


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "ongoing"
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours)
    return " ".join([*parts, f"{minutes} min"]) if minutes or not parts else " ".join(parts)


# -- the retrospective report -------------------------------------------------------------


def report(item: Incident) -> dict[str, Any]:
    """The retrospective report: fit for a compliance review, as plain data."""
    people: set[str] = {p for names in item.roles.values() for p in names}
    people.update(e.actor for e in item.entries if e.actor and e.kind != "automation")
    return {
        "incident": {
            "id": item.id,
            "number": item.number,
            "name": item.name,
            "severity": item.severity,
            "status": item.status,
            "start_time": item.start_time,
            "end_time": item.end_time,
            "tags": item.tags,
            "related_resources": item.resources,
            "roles": item.roles,
            "summary": item.summary,
            "impact": item.impact,
        },
        "durations": {
            "time_to_resolve_seconds": item.duration,
            "time_at_severity_seconds": _time_at_severity(item),
        },
        "prefect_impact": item.prefect_impact,
        "participants": sorted(people),
        "automations": [
            {"at": e.at, "automation": e.automation, "action": e.title, "detail": e.text}
            for e in item.entries
            if e.kind == "automation"
        ],
        "timeline": [
            {
                name: value
                for name in ENTRY_FIELDS
                if (value := getattr(e, name)) not in (None, False)
            }
            for e in item.entries
        ],
    }


def _time_at_severity(item: Incident) -> dict[str, float | None]:
    """Seconds at each severity from start to end (to the last event while active),
    by when each change was committed, held within [start, end]. A change committed
    after the incident ended (written up later) happened at a time nobody knows: the
    severities before and after it are unknown (None)."""
    last = timestamp(item.entries[-1].at if item.entries else item.start_time)
    spans: dict[str, float | None] = {}
    for since, until, severity in item.severity_spans(last):
        if severity:
            spans[severity] = (spans.get(severity) or 0.0) + until - since
    unknown: set[str] = set()
    severity = item.severity
    for entry in item.entries:
        if entry.severity is None:
            continue
        if entry.kind != "declared" and item.recorded_later(entry):
            unknown |= {severity, entry.severity}
        severity = entry.severity
    return {name: None if name in unknown else seconds for name, seconds in spans.items()}


def report_json(data: dict[str, Any]) -> str:
    """The report (`report(item)`) as JSON: compact, as json's C encoder writes it
    (indenting takes its pure-Python path, several times slower for a thousand)."""
    return json.dumps(data, ensure_ascii=False) + "\n"


def report_markdown(item: Incident, data: dict[str, Any]) -> str:
    """The report (`report(item)`) as Markdown, text escaped: no HTML from a file renders."""
    lines = [
        f"# Retrospective: {_md(item.title)}",
        "",
        f"- Severity: {_md(item.severity)} {_md(item.severity_label)}".rstrip(),
        f"- Status: {item.status}",
        f"- Start: {item.start_time}",
        f"- End: {item.end_time or 'ongoing'}",
        f"- Time to resolve: {duration_text(item.duration)}",
    ]
    for severity, seconds in data["durations"]["time_at_severity_seconds"].items():
        lines.append(f"- Time at {_md(severity)}: {severity_time_text(seconds)}")
    if item.tags:
        lines.append(f"- Tags: {', '.join(_md(t) for t in item.tags)}")
    for role, people in item.roles.items():
        lines.append(f"- {_md(role)}: {', '.join(_md(p) for p in people)}")
    for resource in item.resources:
        lines.append(f"- Resource ({_md(resource['role'])}): `{resource['id']}`")
    lines += ["", "## Summary", "", _md(item.summary) or "(none)", ""]
    lines += ["## Impact", "", _md(item.impact) or "(none)", ""]
    lines += _impact_lines(item.prefect_impact)
    lines += ["## Participants", "", *[f"- {_md(p)}" for p in data["participants"]], ""]
    lines += ["## Timeline", "", "| time (UTC) | who | what |", "| --- | --- | --- |"]
    for entry in item.entries:
        who = entry.automation if entry.kind == "automation" else entry.actor
        what = entry.title + (f": {entry.text}" if entry.text else "")
        if entry.stated:
            what += f" (written for {entry.stated})"
        if entry.commit:
            what += f" ({entry.commit[:12]})"
        lines.append(f"| {entry.at} | {_cell(who or '')} | {_cell(what)} |")
    return "\n".join(lines) + "\n"


IMPACT_COLUMNS = ("failed", "crashed", "late", "completed", "all")


def impact_rows(figures: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Per linked resource: its name, and `during (before)` for each column, as text."""
    rows = []
    for row in (figures or {}).get("rows", []):
        name = row["name"] or row["id"]
        if "error" in row:
            rows.append((name, row["error"]))
            continue
        during, before = row["during"], row["before"]
        rows.append((name, " · ".join(f"{c} {during[c]} ({before[c]})" for c in IMPACT_COLUMNS)))
    return rows


def _impact_lines(figures: dict[str, Any] | None) -> list[str]:
    if figures is None:
        return []
    lines = ["## Impact in Prefect", ""]
    if "unavailable" in figures:
        return [*lines, f"Not measured: {_md(figures['unavailable'])}", ""]
    lines += [
        "Flow runs expected to start in the incident's window, and (in brackets) in the "
        "same span just before it:",
        "",
        "| resource | flow runs |",
        "| --- | --- |",
    ]
    lines += [f"| {_cell(name)} | {_cell(text)} |" for name, text in impact_rows(figures)]
    return [*lines, ""]


def _md(text: str) -> str:
    """Text shown as written: HTML escaped, so a renderer shows it instead of running it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")
