"""The rules that make a pull request safe to merge (`check`): what history must
never lose. An incident's id never changes (its file is not renamed, nor its `id:`
edited), an incident is never deleted, and comments are only appended: an edit to
a landed comment, or its removal, is flagged where it stands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops_incidents import events, gitcmd, tracker, yamlio
from gitops_incidents.validation import Finding


def findings(root: Path, base: str, head: str) -> list[Finding]:
    """The rules' findings for the incident files `head` changed since `base`."""
    status = gitcmd.run(
        root, "diff", "--name-status", "-M", "-z", base, head, "--", f"{tracker.INCIDENTS}/"
    )
    found: list[Finding] = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if not entry:
            continue
        kind, path = entry[:1], next(entries, "")
        if kind == "R":
            new = next(entries, "")
            found.append(Finding(new, 1, 1, f"renamed from {path}: {_renamed(path, new)}"))
        elif kind == "D":
            found.append(
                Finding(path, 1, 1, "deleted: an incident stays in the record; resolve it instead")
            )
        elif kind == "M" and tracker.classify(path) is tracker.Kind.INCIDENT:
            found.extend(_edits(root, path, base, head))
    return found


def _renamed(old: str, new: str) -> str:
    return (
        f"an incident's id is its file name and never changes (this would delete "
        f"{tracker.file_id(old)!r} and declare {tracker.file_id(new)!r})"
    )


def _edits(root: Path, path: str, base: str, head: str) -> list[Finding]:
    before, after = (_load(gitcmd.read_blob(root, rev, path)) for rev in (base, head))
    if before is None or after is None:
        return []  # validation reports a file that does not load
    (old, _), (new, marks) = before, after
    found = []
    if "id" in old and new.get("id") != old["id"]:
        at = marks.locate(["id"])
        found.append(Finding(path, at.line, at.column, f"id changed from {old['id']!r}"))
    landed, now = (_comments(d) for d in (old, new))
    # Paired as history pairs them: a comment put between landed ones, as the merge
    # driver does in time order, is an addition; only one changed or gone is flagged.
    for tag, i1, i2, j1, j2 in events.pair_comments(landed, now):
        if tag in ("equal", "insert"):
            continue
        edited = events.paired(tag, i1, i2, j1, j2)
        for offset in range(edited):
            at = marks.locate(["comments", j1 + offset])
            number, comment = i1 + offset + 1, landed[i1 + offset]
            message = f"comment {number}{_by(comment)} was edited: comments are only appended"
            found.append(Finding(path, at.line, at.column, message))
        if i2 - i1 > edited:
            where = j1 + edited
            at = (
                marks.locate(["comments", where])
                if where < len(now)
                else marks.locate(["comments"], key=True)
            )
            gone = i2 - i1 - edited
            message = f"{gone} landed comment(s) removed: comments are only appended"
            found.append(Finding(path, at.line, at.column, message))
    return found


def _comments(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Its comments, or none where they are malformed (validation reports that)."""
    found = document.get("comments")
    valid = isinstance(found, list) and all(isinstance(c, dict) and "text" in c for c in found)
    return found if valid and isinstance(found, list) else []


def _by(comment: Any) -> str:
    author = comment.get("author") if isinstance(comment, dict) else None
    return f" (by {author})" if author else ""


def _load(data: bytes | None) -> tuple[dict[str, Any], yamlio.Marks] | None:
    if data is None:
        return None
    marks = yamlio.Marks.empty()
    try:
        document = yamlio.load_bytes(data, marks=marks)
    except yamlio.LoadError:
        return None
    return (document, marks) if isinstance(document, dict) else None
