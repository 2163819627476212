"""The engine's durable state (SPEC 5.4), kept in git itself.

A commit on `refs/gitops-incidents/<branch>` holds:

    engine.json                 the position in history, the open trigger windows,
                                the automations in force, and the ledger of every
                                firing and action invocation
    evaluated/<ab>/<id>         per incident, the events evaluated (`Tally`): read
                                for the incidents a walk touches, all of them only
                                when history was rewritten
    history/                    where history's walk stood at the position
                                (snapshot.py), so that a fresh clone walks only the
                                commits after it

Per-incident data lives in blobs of its own, not in engine.json, so that what each
run parses and writes does not grow with the number of incidents. Each change is a
new commit on that ref, published by compare-and-swap (`git update-ref ref new old`),
so two runners never both win, and the ref's own history is the engine's audit
trail. Runners on other machines share it by push and fetch:

    git push origin 'refs/gitops-incidents/*:refs/gitops-incidents/*'
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pydantic
from typing_extensions import TypedDict

from gitops_incidents import gitcmd

if TYPE_CHECKING:
    from gitops_incidents.remote import Remote

STATE_FILE = "engine.json"
TALLIES = "evaluated"
FORMAT = 2
# Format 1 kept each incident's tally inline (`ordinals`, `digests`); it is read, and
# the first evaluation moves them to TALLIES.
READABLE = (1, FORMAT)
T = TypeVar("T")

Status = Literal["pending", "running", "done", "failed", "unknown"]
# A claim older than this is taken as abandoned (on the same machine, a claim whose
# process has ended is taken at once).
LEASE = 15 * 60.0
SKIPPED_KEPT = 1000


@dataclass
class Claim:
    """Who is running an invocation: a runner on a host, with its process id."""

    runner: str
    host: str
    pid: int
    at: float

    def abandoned(self, now: float) -> bool:
        # No action runs for long (HTTP timeouts, bounded retries): past the lease, a
        # claim is stale even if its process id now belongs to another process.
        if now - self.at > LEASE:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running either.
    try:
        with Path(f"/proc/{pid}/stat").open() as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class Invocation:
    """One action of one firing: `<automation>/<firing>/<index>`."""

    key: str
    type: str
    status: Status = "pending"
    attempts: int = 0
    detail: str = ""
    claim: Claim | None = None
    updated: float = 0.0
    intent: dict[str, str] | None = None  # a commit action's staged edit (actions.publish)


@dataclass
class FiringRecord:
    id: str
    automation: str
    name: str  # the automation's name when it fired
    path: str
    blob: str  # the automation file version that fired: its actions run
    state: str
    triggered: float
    labels: dict[str, str]
    event: dict[str, Any] | None
    causes: list[str]
    invocations: list[str]  # keys, in action order


@dataclass
class AutomationRecord:
    """An automation in force at the position: its file version and since when."""

    path: str
    blob: str
    enabled: bool
    enabled_at: float  # the time of the commit that added or enabled it


@dataclass
class State:
    position: str | None = None  # the last main-line commit evaluated
    clock: float = 0.0  # the latest time evaluated: event time, or the --as-of clock
    evaluated: int = 0  # the events of history evaluated, all incidents' tallies summed
    automations: dict[str, AutomationRecord] = field(default_factory=dict)
    windows: dict[str, Any] = field(default_factory=dict)  # Evaluator.dump(), as Windows
    firings: dict[str, FiringRecord] = field(default_factory=dict)
    invocations: dict[str, Invocation] = field(default_factory=dict)
    ingested: dict[str, float] = field(default_factory=dict)  # external event id -> occurred
    # Events of history not acted on, and why (the newest SKIPPED_KEPT), until `status
    # --acknowledge`.
    skipped: list[dict[str, str]] = field(default_factory=list)
    # With `prefect.emit_events`: the main-line commit whose events (and all before it,
    # since emission began) were published to Prefect.
    emitted: str | None = None
    # `ingest --from-prefect`: the newest `occurred` (seconds) of Prefect's events read.
    prefect_cursor: float | None = None
    # Format 1's tallies (events evaluated, digest), until an evaluation moves them.
    ordinals: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        # pydantic's serializer, not dataclasses.asdict: that deep-copies every field.
        data = {"format": FORMAT, **_adapter().dump_python(self, mode="json")}
        for legacy in ("ordinals", "digests"):
            if not data[legacy]:
                del data[legacy]
        # One key a line: git stores each new version as a small delta of the last.
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> State:
        """The state, checked: every field of its type (pydantic, strict), every
        reference between firings and invocations resolved; ValueError if not."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("format") not in READABLE:
            raise ValueError("written by another version of gitops-incidents")
        try:
            state = _adapter().validate_json(data, strict=True)  # "format" is ignored
            _windows().validate_python(state.windows)  # lax: JSON has lists, not tuples
        except pydantic.ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(map(str, error["loc"]))
            raise ValueError(f"{where}: {error['msg'].lower()}") from None
        if raw["format"] == 1:
            state.evaluated = sum(state.ordinals.values())
        for key, invocation in state.invocations.items():
            parts = key.split("/")
            if invocation.key != key or len(parts) != 3 or parts[1] not in state.firings:
                raise ValueError(f"invocation {key!r} names no firing of the ledger")
        for firing_id, firing in state.firings.items():
            missing = [key for key in firing.invocations if key not in state.invocations]
            if firing.id != firing_id or missing:
                raise ValueError(f"firing {firing_id!r} names invocations the ledger lacks")
        return state

    def open_invocations(self) -> list[Invocation]:
        return [i for i in self.invocations.values() if i.status in ("pending", "running")]


@dataclass(frozen=True)
class Tally:
    """The events of one incident the engine evaluated: how many, and a digest of their
    ids in order (`chained`), which tells a rewrite of history with the same changes
    from one with others; None if a version that kept no digests evaluated them."""

    events: int
    digest: str | None

    def encode(self) -> bytes:
        return json.dumps({"digest": self.digest, "events": self.events}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Tally:
        raw = json.loads(data)
        if not isinstance(raw, dict) or set(raw) != {"digest", "events"}:
            raise ValueError("not a tally")
        events, digest = raw["events"], raw["digest"]
        if type(events) is not int or events < 0 or not isinstance(digest, str | None):
            raise ValueError("not a tally")
        return cls(events, digest)


def chained(digest: str, event_ids: Iterable[str]) -> str:
    """`digest` (of the events before) extended by `event_ids`, in order."""
    for event_id in event_ids:
        digest = hashlib.sha1(f"{digest}{event_id}".encode()).hexdigest()[:16]
    return digest


class Tallies:
    """The incidents' tallies as of one engine commit, read when asked for."""

    def __init__(self, root: Path, commit: str | None, state: State) -> None:
        self.root, self.commit = root, commit
        # Format 1 kept them in engine.json; an engine commit with any there has none
        # in its tree (the evaluation that moves them writes both at once).
        self.inline = {i: Tally(n, state.digests.get(i)) for i, n in state.ordinals.items()}

    def read(self, incidents: Iterable[str]) -> dict[str, Tally]:
        """The tallies of those of `incidents` that have one."""
        if self.inline or self.commit is None:
            return {i: self.inline[i] for i in incidents if i in self.inline}
        # Ids are plain names (tracker.id_problem): each a line of cat-file's input.
        names = {f"{self.commit}:{gitcmd.fanned(TALLIES, i)}": i for i in incidents}
        found = gitcmd.read_objects(self.root, list(names))
        return {names[name]: self._decoded(names[name], data) for name, data in found.items()}

    def read_all(self) -> dict[str, Tally]:
        if self.inline or self.commit is None:
            return dict(self.inline)
        # By path, not by blob: two incidents with the same tally share one blob.
        listing = gitcmd.list_tree(self.root, f"{self.commit}:{TALLIES}") or {}
        return self.read(path.rpartition("/")[2] for path in listing)

    def _decoded(self, incident_id: str, data: bytes) -> Tally:
        try:
            return Tally.decode(data)
        except (ValueError, RecursionError):
            # As with engine.json: never guess, or actions could run twice.
            path = gitcmd.fanned(TALLIES, incident_id)
            raise gitcmd.GitError(
                f"{path} of the engine's commit {self.commit} cannot be read (not a tally); "
                f"restore a good version of its ref with git update-ref {engine_ref('<branch>')}"
                f" <commit> (see git log {engine_ref('<branch>')})"
            ) from None

    def files(self, tallies: dict[str, Tally], *, whole: bool) -> dict[str, bytes | None]:
        """The files (for gitcmd.commit_tree) that record `tallies`, the tallies of the
        incidents with new events; `whole`: all of them, in place of those there were
        (history rewritten, or format 1's moved)."""
        start: dict[str, bytes | None] = {TALLIES: None} if whole or self.inline else {}
        if self.inline and not whole:
            tallies = self.inline | tallies
        return start | {gitcmd.fanned(TALLIES, i): t.encode() for i, t in sorted(tallies.items())}


# The trigger windows, as `triggers.Evaluator.dump()` writes them.
class Windows(TypedDict, total=False):
    fingerprints: dict[str, str]
    buckets: list[tuple[str, str, list[str], float, float, int, dict[str, Any] | None]]
    slots: list[tuple[str, str, int, str, float, dict[str, Any] | None]]
    tripped: list[tuple[str, str, list[str], str]]


@functools.cache
def _adapter() -> pydantic.TypeAdapter[State]:
    return pydantic.TypeAdapter(State)


@functools.cache
def _windows() -> pydantic.TypeAdapter[Windows]:
    return pydantic.TypeAdapter(Windows)


IDENTITY = {
    "GIT_AUTHOR_NAME": "gitops-incidents",
    "GIT_AUTHOR_EMAIL": "engine@gitops-incidents.invalid",
    "GIT_COMMITTER_NAME": "gitops-incidents",
    "GIT_COMMITTER_EMAIL": "engine@gitops-incidents.invalid",
}
RUNNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(now: float) -> Claim:
    return Claim(RUNNER, socket.gethostname(), os.getpid(), now)


def engine_ref(branch: str) -> str:
    """The engine's ref of a branch (`main` or `refs/heads/main`)."""
    return f"refs/gitops-incidents/{branch.removeprefix('refs/heads/')}"


class Ledger:
    """The state of one branch's engine, read and updated by compare-and-swap."""

    def __init__(self, root: Path, branch: str, remote: Remote | None = None) -> None:
        self.root = root
        self.ref = engine_ref(branch)
        # With a remote (the daemon's), each write is decided there (remote.py).
        self.remote = remote
        self._last_read: tuple[str, bytes, float] | None = None  # commit, bytes, clock

    def read(self) -> tuple[str | None, State]:
        commit = gitcmd.ref_value(self.root, self.ref)
        if commit is None:
            return None, State()
        data = gitcmd.read_blob(self.root, commit, STATE_FILE)
        try:
            if data is None:
                raise ValueError("the file is missing")
            state = State.from_json(data)
            self._last_read = (commit, data, state.clock)
            return commit, state
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            # Never guess at a damaged ledger: actions could run twice. Its history has
            # the last good version (git log <ref>).
            raise gitcmd.GitError(
                f"{self.ref}:{STATE_FILE} cannot be read ({exc}); restore a good version "
                f"with git update-ref {self.ref} <commit> (see git log {self.ref})"
            ) from None

    def write(
        self,
        state: State,
        expected: str | None,
        message: str,
        files: dict[str, bytes | None] | None = None,
    ) -> str | None:
        """Publish `state` if the ref is still at `expected`: the new commit, or None.
        `files`: those that move the tallies and the snapshot of history beside it (an
        evaluation's, `Walk.files`). A state that is the one at `expected` but for its
        clock, with no file to move, is not written (no commit; with a remote, no push): an idle
        run or a claim another runner already took changes nothing, and the next run
        advances from the older clock as this one did."""
        data = state.to_json()
        if not files and self._unchanged(state, expected, data):
            return expected
        commit = self.commit(data, expected, message, files)
        if self.remote is not None:
            return commit if self.remote.push({self.ref: (commit, expected)}) else None
        return commit if gitcmd.update_ref(self.root, self.ref, commit, expected) else None

    def _unchanged(self, state: State, expected: str | None, data: bytes) -> bool:
        if self._last_read is None or self._last_read[0] != expected:
            return False
        _, before, clock = self._last_read
        if data == before or state.clock == clock:
            return data == before
        moved, state.clock = state.clock, clock
        try:
            return state.to_json() == before
        finally:
            state.clock = moved

    def commit(
        self,
        data: bytes,
        parent: str | None,
        message: str,
        files: dict[str, bytes | None] | None = None,
    ) -> str:
        """A commit of a state's `data` (State.to_json) on `parent`, on no ref yet; the
        other files are `parent`'s, or as `files` writes them."""
        written = {**(files or {}), STATE_FILE: data}
        return gitcmd.commit_tree(self.root, parent, written, message, env=IDENTITY)

    def update(self, change: Callable[[State], T], message: str) -> T:
        """Apply `change` to the newest state and publish it; on a lost race, read
        the winner's state and apply `change` again. `change` must be repeatable."""
        delay = 0.01
        while True:
            commit, state = self.read()
            result = change(state)
            if self.write(state, commit, message) is not None:
                return result
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
