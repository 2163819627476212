"""A three-way merge of an incident file by field (`merge-driver`): texts in, the
merged text and its conflicts out.

Comments appended on both sides are all kept, in time order; a field changed on one
side only is taken from it; a field changed differently on both sides is a conflict,
written with git's markers around the two versions of that field. The result is
"ours" with the changes merged in, so its layout and comments stay. A file that is
not a YAML mapping on some side is merged by lines, as git would (`git merge-file`).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_incidents import events, incident_writer, yamlio

MARKER = 7  # git's conflict-marker size


@dataclass
class Merged:
    text: str
    conflicts: list[str] = field(default_factory=list)  # the fields in conflict


def plain(value: Any) -> Any:
    """Data as compared: mappings regardless of key order, timestamps as instants."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return value


def merge(base: str, ours: str, theirs: str, path: str) -> Merged:
    try:
        documents = [yamlio.RoundTrip(text) if text.strip() else None for text in (ours, theirs)]
        o = yamlio.RoundTrip(base).data if base.strip() else {}
    except yamlio.LoadError:
        return by_lines(base, ours, theirs, path)
    a_doc, b_doc = documents
    if a_doc is None or b_doc is None:
        return by_lines(base, ours, theirs, path)
    a, b = a_doc.data, b_doc.data
    if not all(isinstance(d, dict) for d in (o, a, b)):
        return by_lines(base, ours, theirs, path)
    conflicts = []
    for key in [*a, *(k for k in b if k not in a)]:
        if key == "comments" and _merge_comments(o.get(key), a, b.get(key)):
            continue
        mine, yours, was = (plain(d.get(key)) for d in (a, b, o))
        if mine == yours or yours == was:
            continue
        if mine == was:  # changed on their side only
            if key in b:
                incident_writer.put(a, key, b[key])
            else:
                del a[key]
        else:
            conflicts.append(key)
    if not conflicts:
        return Merged(a_doc.dump())
    return Merged(_with_markers(a_doc.dump(), b_doc.dump(), conflicts, path), conflicts)


def _merge_comments(base: Any, a: Any, theirs: Any) -> bool:
    """Their new comments put into ours by time (a comment added alike on both sides
    once); landed ones stay where they are. False when a side edited or removed a
    landed comment: then the list merges as any field does."""
    ours, landed = a.get("comments"), base or []
    if not all(_only_added(landed, side or []) for side in (ours, theirs)):
        return False
    merged, kept = list(ours or []), [plain(c) for c in ours or []]
    for comment in theirs or []:
        if plain(comment) in kept:  # landed, or added alike on both sides
            continue
        when = _when(comment)  # after ours of the same time: ours first
        later = [i + 1 for i, c in enumerate(merged) if _when(c) <= when]
        merged.insert(max(later, default=0), comment)
        kept.append(plain(comment))
    if len(merged) > len(ours or []):
        if ours is None:
            ours = []
            incident_writer.put(a, "comments", ours)
        del ours[:]
        ours.extend(merged)
    return True


def _only_added(landed: list[Any], side: list[Any]) -> bool:
    """Whether `side` keeps every landed comment as it was (history's pairing: new
    ones may stand anywhere, as the merge driver puts them in time order)."""
    if not all(isinstance(c, dict) and "text" in c for c in [*landed, *side]):
        return False
    pairs = events.pair_comments(landed, side)
    return all(tag in ("equal", "insert") for tag, *_ in pairs)


def _when(comment: Any) -> float:
    at = comment.get("at") if isinstance(comment, dict) else None
    if isinstance(at, datetime):
        return float(plain(at))
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return float("inf")  # undated (the commit's time): after the dated ones


def _blocks(text: str) -> dict[str, list[str]]:
    """The lines of each top-level key (with the comment lines above it)."""
    blocks: dict[str, list[str]] = {}
    pending: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if line[:1] not in (" ", "\t", "#", "\n", "-", "") and ":" in line:
            current = blocks.setdefault(line.split(":", 1)[0].strip().strip("'\""), [])
            current.extend(pending)
            pending = []
            current.append(line)
        elif line.startswith("#") or current is None:
            pending.append(line)
        else:
            current.append(line)
    return blocks


def _with_markers(ours: str, theirs: str, conflicts: list[str], path: str) -> str:
    """`ours` with each conflicting key's lines between git's markers, theirs after."""
    mine, yours = _blocks(ours), _blocks(theirs)
    text = ours
    for key in conflicts:
        own = "".join(mine.get(key, []))
        other = "".join(yours.get(key, []))
        block = f"{'<' * MARKER} ours ({path})\n{own}{'=' * MARKER}\n{other}{'>' * MARKER} theirs\n"
        text = text.replace(own, block, 1) if own else text + block
    return text


def by_lines(base: str, ours: str, theirs: str, path: str) -> Merged:
    """git's own line merge, for a file that does not load as a mapping."""
    with tempfile.TemporaryDirectory() as scratch:
        files = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            files.append(Path(scratch) / name)
            files[-1].write_text(text, encoding="utf-8", errors="surrogateescape")
        result = subprocess.run(
            ["git", "merge-file", "-p", "-L", f"ours ({path})", "-L", "base", "-L", "theirs",
             *map(str, files)],
            capture_output=True, check=False,
        )  # fmt: skip
    text = result.stdout.decode("utf-8", errors="surrogateescape")
    return Merged(text, ["(lines)"] if result.returncode else [])
