"""Where a walk of the main line ended, carried in the engine's ref beside engine.json
(ledger.py), so that a fresh clone that fetched the engine's ref walks only the
commits after the engine's position, however long history is:

    history/checkpoint.json        the position, clock, next incident number and
                                   configuration, and the code that wrote them
    history/incidents/<ab>/<id>    each incident's state, as canonical JSON

Each state is a git blob, so the snapshot is content-addressed: an evaluation adds
the states that changed and the trees above them, and shares the rest with the
snapshot before. <ab> (two hex digits of a hash of the id) keeps every tree small,
as git's notes do. A state's blob id is its key in the local cache too
(cache.py), so either holds it. A snapshot written by other code (another version)
is not read: its walk is made again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gitops_incidents import gitcmd
from gitops_incidents.cache import CODE

FOLDER = "history"
FORMAT = 1
_CHECKPOINT = f"{FOLDER}/checkpoint.json"
_INCIDENTS = f"{FOLDER}/incidents"
# A checkpoint's fields and their types (History's checkpoint header, but its incidents).
_FIELDS: dict[str, tuple[type, ...]] = {
    "tip": (str,),
    "epoch": (int,),
    "next_number": (int,),
    "config_blob": (str, type(None)),
    "config": (dict,),
}


def encode(state: dict[str, Any]) -> bytes:
    """An incident state's canonical JSON: the same state, the same bytes (and blob)."""
    return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()


def incident_path(incident_id: str) -> str:
    fan = hashlib.sha1(incident_id.encode()).hexdigest()[:2]  # a spread of names, not a secret
    return f"{_INCIDENTS}/{fan}/{incident_id}"


def read(root: Path, commit: str) -> dict[str, Any] | None:
    """The checkpoint the snapshot in `commit` holds, its `incidents` mapping each id to
    its state's blob; None if there is none this code wrote, or it is damaged."""
    data = gitcmd.read_blob(root, commit, _CHECKPOINT)
    try:
        header = json.loads(data or b"null")
    except ValueError:
        return None
    if not isinstance(header, dict) or (header.get("format"), header.get("code")) != (FORMAT, CODE):
        return None
    if any(not isinstance(header.get(name), kinds) for name, kinds in _FIELDS.items()):
        return None
    listing = gitcmd.list_tree(root, f"{commit}:{_INCIDENTS}") or {}
    incidents = {}
    for path, blob in listing.items():
        incident_id = path.rpartition("/")[2]
        if f"{_INCIDENTS}/{path}" != incident_path(incident_id):
            return None  # not a tree this code wrote
        incidents[incident_id] = blob
    return {name: header[name] for name in _FIELDS} | {"incidents": incidents}


def changes(
    header: dict[str, Any], states: dict[str, bytes], *, whole: bool
) -> dict[str, bytes | None]:
    """The files (for gitcmd.commit_tree) that make the snapshot describe `header`, given
    the canonical JSON of the `states` that changed; `whole`: of every state, in place
    of the snapshot there was."""
    files: dict[str, bytes | None] = {FOLDER: None} if whole else {}
    checkpoint = {"format": FORMAT, "code": CODE} | {name: header[name] for name in _FIELDS}
    files[_CHECKPOINT] = json.dumps(checkpoint, indent=1, sort_keys=True).encode()
    files.update((incident_path(incident_id), data) for incident_id, data in states.items())
    return files
