"""Where a walk of the main line stands: in memory as it walks (`WalkState`, whose
incident states are read when asked for, `States`), and where it ended, carried in
the engine's ref beside engine.json (ledger.py), so that a fresh clone that fetched
the engine's ref walks only the commits after the engine's position, however long
history is:

    history/checkpoint.json        the position, clock, next incident number and
                                   configuration, and the code that wrote them
    history/incidents/<ab>/<id>    each incident's state, as canonical JSON

Each state is a git blob, so the snapshot is content-addressed: an evaluation adds
the states that changed and the trees above them, and shares the rest with the
snapshot before. <ab> (two hex digits of a hash of the id) keeps every tree small,
as git's notes do. A state's blob id is its key in the local cache too
(cache.py), so either holds it. A walk from the snapshot reads an incident's state
by its path when a commit touches it, and lists the tree only where every incident is
asked for (or one is not found at its path): what a walk of a few commits reads does
not grow with the tracker. A snapshot written by other code (another version) is not
read: its walk is made again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from pathlib import Path
from typing import Any

from gitops_incidents import gitcmd
from gitops_incidents.cache import CODE, Cache, CacheDamaged
from gitops_incidents.events import IncidentState
from gitops_incidents.models import Config

FOLDER = "history"
FORMAT = 1
_CHECKPOINT = f"{FOLDER}/checkpoint.json"
_INCIDENTS = f"{FOLDER}/incidents"
# How many of the engine's commits a walk since a commit it stood at looks back through.
EARLIER = 100
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
    return gitcmd.fanned(_INCIDENTS, incident_id)


def read(root: Path, commit: str) -> dict[str, Any] | None:
    """The checkpoint the snapshot in `commit` holds, its `snapshot` naming `commit`
    (whose states are read when asked for: WalkState); None if there is none this code
    wrote, or it is damaged."""
    return _header(gitcmd.read_blob(root, commit, _CHECKPOINT), commit)


def earlier(root: Path, engine: str) -> dict[str, dict[str, Any]]:
    """The checkpoints of the snapshots in the last EARLIER commits of the engine's ref
    (from `engine` back), by the commit each stands at (the newest there): where the
    engine stood before, as a walk since a commit the engine has moved on from asks."""
    commits = gitcmd.run(root, "rev-list", "--first-parent", f"--max-count={EARLIER}", engine)
    names = {f"{commit}:{_CHECKPOINT}": commit for commit in commits.split()}
    found = gitcmd.read_objects(root, list(names))
    headers: dict[str, dict[str, Any]] = {}
    for name, commit in names.items():
        header = _header(found.get(name), commit)
        if header is not None:
            headers.setdefault(header["tip"], header)
    return headers


def _header(data: bytes | None, commit: str) -> dict[str, Any] | None:
    try:
        header = json.loads(data or b"null")
    except ValueError:
        return None
    if not isinstance(header, dict) or (header.get("format"), header.get("code")) != (FORMAT, CODE):
        return None
    if any(not isinstance(header.get(name), kinds) for name, kinds in _FIELDS.items()):
        return None
    return {name: header[name] for name in _FIELDS} | {"snapshot": commit}


def _gone(commit: str) -> CacheDamaged:
    # A cache's checkpoint may name an engine commit that gc removed since (a reset ref).
    return CacheDamaged(f"the engine's snapshot in {commit} is gone")


def decoded(value: Any) -> IncidentState:
    """A stored incident state (its JSON, or that read); CacheDamaged if it is not one."""
    try:
        return IncidentState.from_dict(json.loads(value) if isinstance(value, bytes) else value)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        raise CacheDamaged("a stored incident state is damaged") from None


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


class WalkState:
    """Where a walk stands: everything the next commit is compared with.

    An incident's state is known three ways: loaded (`incidents`), by its key, to load
    when asked for (`keys`), or else, if the walk started from an engine's snapshot
    (`stored`, that commit), by its path there, read when asked for: a walk of a few
    commits reads the few incidents they touch, not a listing of every one."""

    def __init__(
        self,
        root: Path,
        cache: Cache,
        load: Callable[[list[str]], dict[str, IncidentState]],
        header: dict[str, Any] | None = None,
        *,
        based: bool = False,
    ) -> None:
        header = header or {}
        self.root, self.cache, self.load = root, cache, load
        self.tip: str | None = header.get("tip")
        self.epoch: int = header.get("epoch", 0)
        self.next_number: int = header.get("next_number", 1)
        self.config_blob: str | None = header.get("config_blob")
        self.config = Config.model_validate(header.get("config") or {})
        self.keys: dict[str, str] = dict(header.get("incidents", {}))  # id -> key, not loaded
        self.incidents: dict[str, IncidentState] = {}
        self.stored: str | None = header.get("snapshot")
        # Each incident looked up in `stored`: its key there (None: not there).
        self.found: dict[str, str | None] = {}
        # `based`: the walk started from the engine's snapshot `stored`, so the next one
        # is that with the states that changed (History.snapshot).
        self.based = based
        self._encoded: tuple[tuple[Any, ...], dict[str, str], dict[str, bytes]] | None = None

    def fetch(self, incident_ids: Iterable[str]) -> None:
        """Load from the snapshot, in one read, those of `incident_ids` not known yet
        (plain names: tracker.id_problem)."""
        if self.stored is None:
            return
        known = (self.incidents, self.keys, self.found)
        wanted = [i for i in dict.fromkeys(incident_ids) if not any(i in k for k in known)]
        if not wanted:
            return
        stored = self.stored
        names = {f"{stored}:{incident_path(i)}": i for i in wanted}
        # The checkpoint too: a path not found means a new incident only where the
        # snapshot is there.
        found = gitcmd.read_objects(self.root, [*names, f"{stored}:{_CHECKPOINT}"])
        if f"{stored}:{_CHECKPOINT}" not in found:
            raise _gone(stored)
        if len(found) <= len(names):
            # Some are new, or the tree is not laid out as this code lays it: listed
            # whole, so that a state elsewhere is not taken for a new incident.
            self.ids()
        for name, incident_id in names.items():
            data = found.get(name)
            self.found.setdefault(
                incident_id, None if data is None else gitcmd.object_id(data, stored)
            )
            if data is not None:
                self.incidents[incident_id] = decoded(data)
                self.keys.pop(incident_id, None)

    def incident(self, incident_id: str) -> IncidentState | None:
        self.fetch([incident_id])
        if incident_id not in self.incidents and incident_id in self.keys:
            key = self.keys[incident_id]
            self.incidents[incident_id] = self.load([key])[key]
            del self.keys[incident_id]
        return self.incidents.get(incident_id)

    def ids(self) -> list[str]:
        """Every incident's id (the snapshot's listed, if the walk started from one)."""
        if self.stored is not None:
            listing = gitcmd.list_tree(self.root, f"{self.stored}:{FOLDER}")
            if listing is None or "checkpoint.json" not in listing:
                raise _gone(self.stored)
            for path, blob in listing.items():
                incident_id = path.rpartition("/")[2]
                if path == "checkpoint.json" or incident_id in self.found:
                    continue
                if f"{FOLDER}/{path}" != incident_path(incident_id):
                    raise CacheDamaged(f"{self.stored}:{FOLDER} is not a snapshot this code wrote")
                self.found[incident_id] = blob
                if incident_id not in self.incidents:
                    self.keys.setdefault(incident_id, blob)
            self.stored = None  # every state known by its key now
        return [*self.incidents, *self.keys]

    def load_all(self) -> dict[str, IncidentState]:
        self.ids()
        if self.keys:
            stored = self.load(list(self.keys.values()))
            for incident_id, key in self.keys.items():
                self.incidents[incident_id] = stored[key]
            self.keys = {}
        return self.incidents

    def encoded(self) -> tuple[dict[str, str], dict[str, bytes]]:
        """The state key of every incident known (not those only in `stored`), and the
        canonical JSON of those loaded: worked out once per position and incidents loaded."""
        at = (self.tip, len(self.incidents), len(self.keys), self.stored)
        if self._encoded is None or self._encoded[0] != at:
            data = {i: encode(s.to_dict()) for i, s in self.incidents.items()}
            like = self.tip or ""
            keys = {**self.keys, **{i: gitcmd.object_id(d, like) for i, d in data.items()}}
            self._encoded = (at, keys, data)
        return self._encoded[1], self._encoded[2]

    def changed(self) -> dict[str, bytes]:
        """The canonical JSON of the states not as the snapshot the walk started from has
        them (`based`)."""
        keys, data = self.encoded()
        return {i: d for i, d in data.items() if self.found.get(i) != keys[i]}

    def header(self) -> dict[str, Any]:
        return {
            "tip": self.tip,
            "epoch": self.epoch,
            "next_number": self.next_number,
            "config_blob": self.config_blob,
            "config": self.config.model_dump(mode="json", exclude_defaults=True),
            "incidents": self.encoded()[0],
            "snapshot": self.stored,
        }

    def save(self) -> None:
        if self.tip is None:
            return
        keys, _ = self.encoded()
        states = {keys[i]: s.to_dict() for i, s in self.incidents.items()}
        self.cache.store_checkpoint(self.tip, self.header(), states)


class States(Mapping[str, IncidentState]):
    """Every incident as of the end of a walk, deleted ones included, each one read
    when it is first asked for: a walk of a few new commits reads the incidents they
    touch, however many the tracker holds."""

    def __init__(self, state: WalkState, derive: Callable[[], WalkState]) -> None:
        # `derive`: every state worked out again from history, for a stored one found
        # damaged once the walk (which rebuilds what it finds damaged) is over.
        self._state, self._derive = state, derive

    def __getitem__(self, incident_id: str) -> IncidentState:
        try:
            found = self._state.incident(incident_id)
        except CacheDamaged:
            self._state = self._derive()
            found = self._state.incident(incident_id)
        if found is None:
            raise KeyError(incident_id)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())

    def _ids(self) -> list[str]:
        try:
            return self._state.ids()
        except CacheDamaged:
            self._state = self._derive()
            return self._state.ids()

    def values(self) -> ValuesView[IncidentState]:
        return self._all().values()

    def items(self) -> ItemsView[str, IncidentState]:
        return self._all().items()

    def _all(self) -> dict[str, IncidentState]:
        try:
            return self._state.load_all()  # one read for all
        except CacheDamaged:
            self._state = self._derive()
            return self._state.incidents
