"""Walking the main line of a tracker repository: commits in, events and
incident states out (SPEC 4). Every other part (the trigger engine, the site,
reports) reads history through `History`, never on its own.

One `git log` stream and one `git cat-file --batch` process serve a whole
walk. Each file version is parsed once ever (the parse cache), and a walk
that starts where an earlier one ended (a checkpoint) costs what the new
commits changed.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from gitops_incidents import gitcmd, snapshot, tracker
from gitops_incidents.cache import Cache, CacheDamaged
from gitops_incidents.errors import UsageError
from gitops_incidents.events import (
    LATEST,
    CommitContext,
    Event,
    IncidentState,
    derive,
    resource_links,
)
from gitops_incidents.models import Config, Context, Incident
from gitops_incidents.snapshot import States, WalkState
from gitops_incidents.tracker import Kind
from gitops_incidents.validation import Finding, parse_file

# Commits read from the log stream before their blobs are fetched and parsed together.
CHUNK = 256
# Automation files are listed too (the engine follows them); events come from incidents.
TRACKED = (f"{tracker.INCIDENTS}/", f"{tracker.AUTOMATIONS}/", tracker.CONFIG_FILE)


class Step(NamedTuple):
    """One main-line commit and what it did to the incidents."""

    commit: gitcmd.Commit
    occurred: str
    events: list[Event]
    findings: list[Finding]  # invalid versions, which emit nothing


@dataclass(frozen=True, slots=True)
class IncidentHistory:
    """One incident as the main line left it, and every event it went through."""

    state: IncidentState
    events: list[Event]


def incident_histories(root: Path, until: str = "HEAD") -> list[IncidentHistory]:
    """Every incident ever declared, with its events, in the order they were first
    declared (#1, #2, ...): what pages and reports are built from, in one walk.

    The result is cached for the tip it was read at. The next read of a later tip
    walks only the commits since (git's own log of a long history costs more the
    more files a commit's tree holds: a whole walk grows faster than the history).
    """
    with History(root) as history:
        tip = gitcmd.resolve(root, until)
        stored = history.cache.histories()
        since: str | None = None
        events: dict[str, list[Event]] = {}
        if stored is not None and gitcmd.is_ancestor(root, stored[0], tip):
            since, events = stored
        for step in history.walk(tip, since=since):
            for event in step.events:
                incident_id = event["resource"]["prefect.resource.id"].split(".incident.", 1)[1]
                events.setdefault(incident_id, []).append(event)
        states = sorted(history.states().values(), key=lambda state: state.number)
        if since != tip:
            history.cache.store_histories(tip, events)
    return [IncidentHistory(state, events.get(state.id, [])) for state in states]


def open_cache(root: Path, *, writable: bool = True) -> Cache:
    """The repository's cache (under its git directory)."""
    return Cache(gitcmd.git_dir(root) / "gitops-incidents" / "cache.sqlite3", writable=writable)


def utc(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(epoch, LATEST)))


class History:
    """A repository's main line, read once per walk."""

    def __init__(self, root: Path, *, writable: bool = True, seed: str | None = None) -> None:
        """`writable=False`: read the cache, never write it (nothing under .git changes).
        `seed`: a commit of the engine's ref, whose snapshot (snapshot.py) a walk from
        the engine's position starts from."""
        self.root = root
        gitcmd.check_not_shallow(root)
        self.cache = open_cache(root, writable=writable)
        self._seed = seed
        self._shared: dict[str, Any] | None = None
        self._earlier: dict[str, dict[str, Any]] | None = None
        self._state: WalkState | None = self._new_state()
        self._tip: str | None = None

    def close(self) -> None:
        self.cache.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def walk(self, until: str, since: str | None = None) -> Iterator[Step]:
        """The steps of the main line of `until`, oldest first; with `since`, only
        those after it. Incident states are then as of `until` (`states()`)."""
        handed = 0
        try:
            for step in self._walk(until, since):
                handed += 1
                yield step
        except CacheDamaged:
            # Rebuilt: the same steps are derived again, those handed out skipped.
            self.cache.clear()
            self._seed, self._shared, self._state = None, None, self._new_state()
            for number, step in enumerate(self._walk(until, since)):
                if number >= handed:
                    yield step

    def _walk(self, until: str, since: str | None) -> Iterator[Step]:
        tip = self._tip = gitcmd.resolve(self.root, until)
        start = gitcmd.resolve(self.root, since) if since else None
        resumed = self._checkpoint(start) if start else None
        if resumed is not None:
            # Resume where an earlier walk ended: only the new commits are read.
            self._state = resumed
            try:
                yield from self._steps(f"{start}..{tip}", after=start, replay=False)
                self._state.save()
                return
            except _NotOnMainLine:
                pass  # raised before any step: walk from the start instead
        known = self._from_cache(start, tip) if start else None
        if known is not None:
            replayed, resumed, rest = known
            yield from replayed
            self._state = resumed  # if None, known through the tip's checkpoint, if asked
            if resumed is not None:
                with gitcmd.Blobs(self.root) as blobs:
                    for batch in _batches(iter(rest)):
                        yield from self._process(batch, blobs)
                resumed.save()
            return
        emitting, last = start is None, None
        try:
            for step in self._steps(tip, after=None, replay=True):
                if emitting:
                    yield step
                emitting, last = emitting or step.commit.sha == start, step.commit.sha
        except _StateLost:
            # Replayed events reached a commit whose state is gone: derive it all again,
            # yielding only what was not yielded yet.
            skipping = last is not None
            for step in self._steps(tip, after=None, replay=False):
                if emitting and not skipping:
                    yield step
                emitting = emitting or step.commit.sha == start
                skipping = skipping and step.commit.sha != last
        if not emitting:
            raise UsageError(f"{since} is not on the main line of {until}")
        if self._state is not None:
            self._state.save()

    def states(self) -> States:
        """Every incident as of the end of the last walk, deleted ones included."""
        try:
            return States(self._states(), self._derived)
        except CacheDamaged:
            self.cache.clear()
            self._seed, self._shared, self._state = None, None, None  # derived again from the start
            return States(self._states(), self._derived)

    def _derived(self) -> WalkState:
        """Every state as of the last walk's end, derived from history alone (no cache
        or snapshot read; none written)."""
        with History(self.root, writable=False) as again:
            return again._derive_all(self._tip or "HEAD")

    def _derive_all(self, tip: str) -> WalkState:
        """The state at `tip`, every commit up to it derived (none replayed)."""
        for _ in self._steps(tip, after=None, replay=False):
            pass
        assert self._state is not None
        return self._state

    def _states(self) -> WalkState:
        if self._state is None:
            # The walk replayed cached events only: the state is its tip's checkpoint,
            # or, if that was dropped, what deriving the history again gives.
            self._state = self._checkpoint(self._tip or "")
            if self._state is None:
                self._derive_all(self._tip or "HEAD").save()
        assert self._state is not None
        return self._state

    def snapshot(self) -> dict[str, bytes | None] | None:
        """The files that make the engine's snapshot (snapshot.py) stand where the last
        walk ended, for the commit on the seed's engine commit: the states that changed
        since the seed's snapshot, or, if the walk did not start from it, all of them.
        None if the seed's snapshot stands there already."""
        state = self._states()
        if state.tip is None:
            return None
        if not state.based:
            state.load_all()
            return snapshot.changes(state.header(), state.encoded()[1], whole=True)
        changed = state.changed()
        if not changed and self._shared is not None and self._shared["tip"] == state.tip:
            return None
        return snapshot.changes(state.header(), changed, whole=False)

    def _new_state(self, header: dict[str, Any] | None = None, *, based: bool = False) -> WalkState:
        return WalkState(self.root, self.cache, self._load_states, header, based=based)

    def _checkpoint(self, commit: str) -> WalkState | None:
        """The state where an earlier walk ended at `commit`: the seed's snapshot if it
        stands there, or the local cache's checkpoint, or an earlier engine commit's
        snapshot that stands there."""
        if self._seed is not None and self._shared is None:
            self._shared = snapshot.read(self.root, self._seed) or {"tip": None}
        if self._shared is not None and self._shared["tip"] == commit:
            return self._new_state(self._shared, based=True)
        header = self.cache.checkpoint(commit)
        if header is None and self._seed is not None:
            # The engine has moved on since `commit`: an earlier snapshot may stand there.
            if self._earlier is None:
                self._earlier = snapshot.earlier(self.root, self._seed)
            header = self._earlier.get(commit)
        return None if header is None else self._new_state(header)

    def _load_states(self, keys: list[str]) -> dict[str, IncidentState]:
        """Incident states by key: from the local cache, or else from git (the blobs of
        the engine's snapshot); CacheDamaged if neither has one that reads as a state."""
        stored: dict[str, Any] = self.cache.states(keys)
        stored.update(gitcmd.read_objects(self.root, [key for key in keys if key not in stored]))
        if len(stored) < len(set(keys)):
            raise CacheDamaged("incident states that a checkpoint names are missing")
        return {key: snapshot.decoded(value) for key, value in stored.items()}

    def _steps(self, revisions: str, after: str | None, replay: bool) -> Iterator[Step]:
        """Steps from the log; with `replay`, from the events cache as long as it has
        them, then derived from the checkpoint where the cached steps end."""
        commits = gitcmd.log(self.root, [revisions], TRACKED)
        if not replay:
            self._state = self._state if after is not None else self._new_state()
        with gitcmd.Blobs(self.root) as blobs:
            for batch in _batches(commits):
                if after is not None and batch[0].parents[:1] != (after,):
                    # `after` is not on this main line: its checkpoint does not apply.
                    raise _NotOnMainLine
                after = batch[-1].sha
                if replay:
                    replayed = self._replayed(batch)
                    yield from replayed
                    if len(replayed) == len(batch):
                        self._state = None  # known only through a checkpoint, if asked
                        continue
                    replay = False
                    self._state = self._resume(replayed[-1].commit.sha if replayed else None)
                    batch = batch[len(replayed) :]
                yield from self._process(batch, blobs)

    def _from_cache(
        self, start: str, tip: str
    ) -> tuple[list[Step], WalkState | None, list[gitcmd.Commit]] | None:
        """For a walk after `start` where no checkpoint stands (a cache read twice, to
        elsewhere): the steps the cache has from `start` on, the checkpoint where they
        end and the commits after it, if the cache has them; history before `start` is
        not read. None if it has not."""
        commits = list(gitcmd.log(self.root, [f"{start}..{tip}"], TRACKED))
        if (commits[0].parents[:1] if commits else (tip,)) != (start,):
            return None  # not on the main line: the walk from the start says so
        replayed = self._replayed(commits)
        rest = commits[len(replayed) :]
        resumed = self._checkpoint(replayed[-1].commit.sha) if rest and replayed else None
        return (replayed, resumed, rest) if resumed or not rest else None

    def _replayed(self, commits: list[gitcmd.Commit]) -> list[Step]:
        """The steps of the leading `commits` whose events the cache has."""
        with _garbage_collector_resting():
            cached = self.cache.commit_steps(c.sha for c in commits)
        steps = []
        for commit in itertools.takewhile(lambda c: c.sha in cached, commits):
            occurred, events, findings = cached[commit.sha]
            steps.append(Step(commit, occurred, events, [Finding(*f) for f in findings]))
        return steps

    def _resume(self, parent: str | None) -> WalkState:
        if parent is None:
            return self._new_state()
        resumed = self._checkpoint(parent)
        if resumed is None:
            raise _StateLost
        return resumed

    def _process(self, batch: list[gitcmd.Commit], blobs: gitcmd.Blobs) -> Iterator[Step]:
        # A batch makes many small containers (documents, events) that all live on: the
        # cyclic garbage collector would rescan them over and over. They form no
        # cycles, so it rests while a batch is worked out (and while one is replayed).
        with _garbage_collector_resting():
            steps = self._derive_batch(batch, blobs)
        yield from steps

    def _derive_batch(self, batch: list[gitcmd.Commit], blobs: gitcmd.Blobs) -> list[Step]:
        parsed, fresh = self._parse_all(batch, blobs)
        state = self._state
        assert state is not None
        # The incidents the batch touches, read from the snapshot (if it started from
        # one) at once, not one by one.
        state.fetch(
            tracker.file_id(change.path)
            for commit in batch
            for change in commit.changes
            if tracker.classify(change.path) is Kind.INCIDENT
            and not file_problem(change, Kind.INCIDENT)
        )
        steps: list[Step] = []
        for commit in batch:
            state.epoch = max(state.epoch, commit.committed_epoch)
            occurred = utc(state.epoch)
            events: list[Event] = []
            findings: list[Finding] = []
            context = CommitContext(
                commit.sha, occurred, commit.authored, commit.committed, commit.author_name,
                commit.author_email, state.config.namespace,
            )  # fmt: skip
            actors = self._merge_actors(commit) if len(commit.parents) > 1 else {}
            for change in commit.changes:
                path = change.path
                kind = tracker.classify(path)
                if kind is Kind.CONFIG:
                    self._config_change(change, parsed.get(id(change)), findings)
                    context = context._replace(namespace=state.config.namespace)
                    continue
                if kind is not Kind.INCIDENT:
                    continue
                problem = file_problem(change, kind)
                if problem:
                    if change.new_blob:  # like an invalid version: the last valid one stays
                        findings.append(Finding(path, 1, 1, problem))
                    continue
                document, links = None, None
                if change.new_blob:
                    result = parsed[id(change)]
                    if "findings" in result:
                        findings.extend(Finding(path, *f) for f in result["findings"])
                        continue
                    document, links = result["document"], result["links"]
                incident_id = tracker.file_id(path)
                previous = state.incident(incident_id)
                actor = actors.get(path)
                new_events, new_state = derive(
                    previous,
                    document,
                    path,
                    context._replace(actor_name=actor[0], actor_email=actor[1])
                    if actor
                    else context,
                    incident_id,
                    state.next_number,
                    links,
                )
                if new_state is not None:
                    if previous is None:
                        state.next_number += 1
                    state.incidents[incident_id] = new_state
                events.extend(new_events)
            state.tip = commit.sha
            steps.append(Step(commit, occurred, events, findings))
        # Steps are cached the second time history is read (every file version of the
        # batch was parsed before): a walk that happens once, as in a throwaway CI
        # clone, does not pay for them. Cached before they are handed out: what a
        # consumer does to them stays its own.
        self.cache.store(
            parsed=fresh,
            steps=[
                (s.commit.sha, (s.occurred, s.events, [astuple(f) for f in s.findings]))
                for s in ([] if fresh else steps)
            ],
        )
        return steps

    def _config_change(
        self, change: gitcmd.Change, result: dict[str, Any] | None, findings: list[Finding]
    ) -> None:
        state = self._state
        assert state is not None
        state.config_blob = change.new_blob
        # An invalid configuration is reported, and the defaults apply until it is fixed
        # (the engine acts under none of them: engine.py).
        problem = file_problem(change, Kind.CONFIG)
        result = result or ({"findings": [[1, 1, problem]]} if problem else {})
        findings.extend(Finding(change.path, *f) for f in result.get("findings", []))
        state.config = Config.model_validate(result.get("document") or {})

    def _parse_all(
        self, batch: list[gitcmd.Commit], blobs: gitcmd.Blobs
    ) -> tuple[dict[int, dict[str, Any]], list[tuple[str, Any]]]:
        """Validation results for every file version the batch adds, by id(change):
        from the cache, or parsed now (and returned too, to be cached)."""
        state = self._state
        assert state is not None
        wanted: dict[int, tuple[str, gitcmd.Change, Kind, str | None]] = {}
        config_blob = state.config_blob
        for commit in batch:
            for change in commit.changes:
                kind = tracker.classify(change.path)
                if change.new_blob is None or kind not in (Kind.CONFIG, Kind.INCIDENT):
                    continue
                if file_problem(change, kind):
                    continue  # reported as it is, never read
                if kind is Kind.CONFIG:
                    config_blob = change.new_blob
                # Validation depends on the bytes, the file's id and the configuration.
                depends = "-" if kind is Kind.CONFIG else (config_blob or "-")
                key = f"{change.new_blob}/{kind.value}/{tracker.file_id(change.path)}/{depends}"
                wanted[id(change)] = (key, change, kind, config_blob)
        cached = self.cache.parsed(key for key, *_ in wanted.values())
        results = {ident: cached[item[0]] for ident, item in wanted.items() if item[0] in cached}
        missing = [ident for ident in wanted if ident not in results]
        # Configurations first: the incidents' validation depends on them.
        missing.sort(key=lambda ident: wanted[ident][2] is not Kind.CONFIG)
        # One parse per distinct version: a file set back to an earlier content repeats it.
        first_of: dict[str, int] = {}
        for ident in missing:
            first_of.setdefault(wanted[ident][0], ident)
        repeats = [ident for ident in missing if first_of[wanted[ident][0]] != ident]
        missing = list(first_of.values())
        contents = blobs.read_many([wanted[ident][1].new_blob or "" for ident in missing])
        configs: dict[str | None, Config] = {None: Config()}
        configs[state.config_blob] = state.config
        config_results = {
            item[1].new_blob: results.get(ident)
            for ident, item in wanted.items()
            if item[2] is Kind.CONFIG
        }
        for ident, (_, data) in zip(missing, contents, strict=True):
            _, change, kind, config_blob = wanted[ident]
            if kind is Kind.CONFIG:
                result = _parse(change.path, data, Config, Context())
                config_results[change.new_blob] = result
            else:
                if config_blob not in configs:
                    document = (config_results.get(config_blob) or {}).get("document")
                    configs[config_blob] = Config.model_validate(document or {})
                context = Context(configs[config_blob], tracker.file_id(change.path))
                result = _parse(change.path, data, Incident, context)
            results[ident] = result
        for ident in repeats:
            results[ident] = results[first_of[wanted[ident][0]]]
        return results, [(wanted[ident][0], results[ident]) for ident in missing]

    def _merge_actors(self, commit: gitcmd.Commit) -> dict[str, tuple[str, str]]:
        """Per path, the author of the last commit on the merged branch that touched it."""
        output = gitcmd.run(
            self.root, "log", "-z", "--format=%x00%an%x1f%ae", "--name-only",
            f"{commit.parents[0]}..{commit.parents[1]}", "--", f"{tracker.INCIDENTS}/",
        )  # fmt: skip
        actors: dict[str, tuple[str, str]] = {}
        author = (commit.author_name, commit.author_email)
        for token in output.split("\0"):
            token = token.strip("\n")
            if "\x1f" in token:
                name, email = token.split("\x1f", 1)
                author = (name, email)
            elif token:
                actors.setdefault(token, author)  # newest first: the first one is the last
        return actors


@contextlib.contextmanager
def _garbage_collector_resting() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _NotOnMainLine(Exception):
    pass


class _StateLost(Exception):
    """Cached events reach further than any checkpoint still kept."""


def _batches(commits: Iterator[gitcmd.Commit]) -> Iterator[list[gitcmd.Commit]]:
    batch: list[gitcmd.Commit] = []
    for commit in commits:
        batch.append(commit)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def file_problem(change: gitcmd.Change, kind: Kind) -> str | None:
    """Why a changed tracker file is not read: its name, or (for a new version) that it
    is not a regular file in git (a symbolic link, a submodule)."""
    problem = tracker.name_problem(change.path, kind)
    if problem or change.new_blob is None:
        return problem
    return tracker.mode_problem(change.mode)


def _parse(path: str, data: bytes, model: type[Any], context: Context) -> dict[str, Any]:
    """A cacheable validation result: the normalized document, or the findings.
    An incident's links are worked out here once, not at every walk."""
    parsed, findings = parse_file(path, data, model, context)
    if parsed is None:
        return {"findings": [[f.line, f.column, f.message] for f in findings]}
    document = parsed.model_dump(mode="json")
    if model is Incident:
        return {"document": document, "links": resource_links(document)}
    return {"document": document}
