"""Evaluating history (SPEC 5.2, 5.4): the commits since the engine's position
walked, their events fed to the trigger evaluator with the automations in force at
each commit, firings out. No action runs here (the engine's act phase runs them);
the engine's state is updated in place: position, clock, automations, windows, and
the incidents' tallies (ledger.Tally) are returned as files for the engine's commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gitops_incidents import gitcmd, tracker
from gitops_incidents.events import Event, IncidentState
from gitops_incidents.history import History, file_problem
from gitops_incidents.ledger import (
    AutomationRecord,
    FiringRecord,
    Invocation,
    State,
    Tallies,
    Tally,
    chained,
)
from gitops_incidents.models import Automation, Config, Context
from gitops_incidents.repository import config_at, config_problem_at
from gitops_incidents.triggers import Evaluator, Firing, timestamp
from gitops_incidents.validation import Finding, parse_file


def read_automation(
    root: Path, config: Config, path: str, blob: str
) -> tuple[Automation | None, list[Finding]]:
    """One automation file version, validated against `config`."""
    data = gitcmd.run_bytes(root, "cat-file", "blob", blob)
    return parse_file(path, data, Automation, Context(config, tracker.file_id(path)))


@dataclass(frozen=True)
class Fired:
    """A firing, with the automation version in force when it fired."""

    firing: Firing
    record: AutomationRecord
    automation: Automation


class Automations:
    """The automations in force while history is walked, and the evaluator's rules."""

    def __init__(
        self, root: Path, config: Config, records: dict[str, AutomationRecord], evaluator: Evaluator
    ) -> None:
        self.root, self.config, self.records, self.evaluator = root, config, records, evaluator
        self._parsed: dict[tuple[str, str], tuple[Automation | None, list[Finding]]] = {}
        for automation_id, record in records.items():
            automation = self.parse(record.path, record.blob)[0]
            if automation is not None and record.enabled:
                evaluator.load(automation_id, automation, record.enabled_at)

    def parse(self, path: str, blob: str) -> tuple[Automation | None, list[Finding]]:
        if (path, blob) not in self._parsed:
            self._parsed[path, blob] = read_automation(self.root, self.config, path, blob)
        return self._parsed[path, blob]

    def stamp(self, firings: Iterable[Firing]) -> list[Fired]:
        stamped = []
        for firing in firings:
            record = self.records[firing.automation]
            automation = self.parse(record.path, record.blob)[0]
            assert automation is not None  # only valid versions are loaded
            stamped.append(Fired(firing, record, automation))
        return stamped

    def change(self, change: gitcmd.Change, at: float, findings: list[Finding]) -> None:
        """An automation file added, edited or removed by a commit at `at`: in force for
        the events of later commits."""
        path = change.path
        problem = file_problem(change, tracker.Kind.AUTOMATION)
        if problem:
            if change.new_blob:  # the last valid version stays in force
                findings.append(Finding(path, 1, 1, problem))
            return
        automation_id = tracker.file_id(path)
        record = self.records.get(automation_id)
        if change.new_blob is None:
            if record is not None and record.path == path:
                del self.records[automation_id]
                self.evaluator.unload(automation_id)
            return
        automation, problems = self.parse(path, change.new_blob)
        if automation is None:
            findings.extend(problems)  # the last valid version stays in force
            return
        if not automation.enabled:
            self.evaluator.unload(automation_id)
            self.records[automation_id] = AutomationRecord(path, change.new_blob, False, at)
            return
        enabled_at = record.enabled_at if record is not None and record.enabled else at
        self.records[automation_id] = AutomationRecord(path, change.new_blob, True, enabled_at)
        self.evaluator.load(automation_id, automation, enabled_at)

    def keep_only(self, rev: str) -> None:
        """Forget the automations that `rev` does not have (after a rewrite of history,
        those kept from before that the new history never had)."""
        listing = gitcmd.run(
            self.root, "ls-tree", "-z", "--name-only", rev, f"{tracker.AUTOMATIONS}/"
        )
        present = set(filter(None, listing.split("\0")))
        for automation_id, record in list(self.records.items()):
            if record.path not in present:
                del self.records[automation_id]
                self.evaluator.unload(automation_id)

    def at_commit(self, rev: str, at: float, findings: list[Finding]) -> None:
        """Every automation file of `rev`, in force from `at` (a first run starts here)."""
        listing = gitcmd.run(self.root, "ls-tree", "-z", rev, f"{tracker.AUTOMATIONS}/")
        for entry in filter(None, listing.split("\0")):
            meta, path = entry.split("\t", 1)
            mode, _, blob = meta.split()
            self.change(gitcmd.Change("A", path, None, blob, mode), at, findings)


def restore(root: Path, state: State, config: Config) -> tuple[Evaluator, Automations]:
    """An evaluator as the state left it: its automations loaded, its windows open."""
    evaluator = Evaluator()
    automations = Automations(root, config, state.automations, evaluator)
    evaluator.restore(state.windows)
    return evaluator, automations


def _causes(state: State, commit: gitcmd.Commit) -> frozenset[str]:
    """The automations behind a commit made by actions (its trailers), and theirs."""
    found: set[str] = set()
    for key in commit.actions:
        automation, _, rest = key.partition("/")
        found.add(automation)
        firing = state.firings.get(rest.partition("/")[0])
        if firing is not None:
            found.update(firing.causes)
    return frozenset(found)


def skipped_record(item: Skipped) -> dict[str, str]:
    event = item.event
    return {
        "event": event["id"],
        "name": event["event"],
        "incident": _incident_of(event),
        "commit": item.commit,
        "reason": item.reason,
    }


def _incident_of(event: Event) -> str:
    return str(event["resource"]["prefect.resource.id"]).split(".incident.", 1)[1]


@dataclass
class Walk:
    """What evaluating a stretch of history gave."""

    fired: list[Fired]
    states: Mapping[str, IncidentState]
    events: list[Event]
    findings: list[Finding]
    skipped: list[Skipped] = field(default_factory=list)  # events not acted on, and why
    problems: list[str] = field(default_factory=list)  # what keeps the engine from acting
    notes: list[str] = field(default_factory=list)
    # The files of the engine's ref that record where this walk ended: the snapshot of
    # history (History.snapshot) and the tallies of the incidents it evaluated.
    files: dict[str, bytes | None] | None = None


def evaluate_history(
    root: Path,
    state: State,
    head: str,
    *,
    replay: bool = False,
    clock: float | None = None,
    held_back: bool = False,
    writable: bool = True,
    keep_events: bool = False,
    seed: str | None = None,
) -> Walk:
    """Evaluate the main line up to `head` from `state`, which is updated in place:
    position, clock, automations, windows. Firings are returned, not recorded.

    History's clock is its events' time. Then the clock moves to `clock`; `held_back`:
    it is the wall clock, and proactive evaluation runs behind it by the lag of the
    events streamed in (Prefect's events clock), not at it (`--as-of` is exact).
    `seed`: the engine's commit, whose tallies `state` goes with and whose snapshot of
    history (snapshot.py) a walk from its position starts from. A `writable` walk
    returns the files that move both, for the engine's next commit."""
    walk = Walk([], {}, [], [])
    tallies = Tallies(root, seed, state)
    with History(root, writable=writable, seed=seed) as history:
        first_run = state.position is None
        rewritten = not first_run and not gitcmd.is_ancestor(root, state.position or "", head)
        if rewritten:
            # History was rewritten (a force-push): walk it all again. Per incident, the
            # events up to the count evaluated before are taken as evaluated if they are
            # the same ones (their digest); otherwise they are listed as skipped. Events
            # beyond are acted on, by the automations in force before and after.
            walk.notes.append(
                f"history was rewritten: {state.position} is no longer on the main line "
                f"of {head[:12]}; walked again from the start"
            )
            state.windows = {}
        evaluator, automations = restore(root, state, config_at(root, head))
        since = None if first_run or rewritten else state.position
        ids: dict[str, list[str]] = {}  # per incident, the ids of its events in the walk
        if first_run and not replay:
            # The first run starts at HEAD: nothing from before it is acted on.
            for step in history.walk(head):
                state.clock = max(state.clock, timestamp(step.occurred))
                for event in step.events:
                    ids.setdefault(_incident_of(event), []).append(event["id"])
            automations.at_commit(head, state.clock, walk.findings)
        else:
            evaluated = {} if since else tallies.read_all()
            ids = _walk(
                root, history, state, head, since, evaluator, automations, walk, keep_events,
                evaluated,
            )  # fmt: skip
            if rewritten:
                automations.keep_only(head)
        walk.states = history.states()
        # Each incident's state and tally is read when asked for: here, those the walk
        # has events of.
        before = tallies.read(ids) if since else {}
        new = {i: _tally(walk.states[i].ordinal, before.get(i), ids[i]) for i in ids}
        kept = state.evaluated - sum(t.events for t in before.values()) if since else 0
        state.evaluated = kept + sum(t.events for t in new.values())
        state.ordinals, state.digests = {}, {}
        if writable:
            walk.files = (history.snapshot() or {}) | tallies.files(new, whole=since is None)
        if clock is not None:
            state.clock = max(state.clock, clock)
            fired = evaluator.advance(state.clock, held_back=held_back)
            walk.fired.extend(automations.stamp(fired))
    state.position = head
    state.windows = evaluator.dump()
    return walk


@dataclass(frozen=True)
class Skipped:
    """An event of history that is not acted on, and why."""

    event: Event
    commit: str
    reason: str


REWRITTEN = (
    "history was rewritten: this event stands where the engine had evaluated other events "
    "of this incident, so it is not acted on"
)
INVALID_CONFIG = (
    "committed while gitops-incidents.yaml was invalid: the engine acts on nothing then"
)


def _tally(ordinal: int, before: Tally | None, event_ids: list[str]) -> Tally:
    """An incident's tally after the walk, from the one `before` it (None: the walk
    started from the beginning, or the incident is new). One evaluated by a version that
    kept no digests keeps none (until a walk from the start): a digest of the recent
    events only would mislead."""
    digest = "" if before is None else before.digest
    return Tally(ordinal, None if digest is None else chained(digest, event_ids))


def _walk(
    root: Path,
    history: History,
    state: State,
    head: str,
    since: str | None,
    evaluator: Evaluator,
    automations: Automations,
    walk: Walk,
    keep_events: bool,
    evaluated: dict[str, Tally],
) -> dict[str, list[str]]:
    """Evaluate the steps after `since` (all, if None, with the tallies `evaluated`
    before); per incident, the ids of its events in them."""
    ids: dict[str, list[str]] = {}
    digests: dict[str, str] = {}  # walked from the start: to compare with `evaluated`
    held: dict[str, list[Skipped]] = {}  # rewritten: events where evaluated ones stood
    # The engine acts under no configuration it cannot read: from a commit that makes it
    # invalid until one that makes it valid again, events are skipped, and said so.
    config_problem = config_problem_at(root, since) if since else None
    for step in history.walk(head, since=since):
        commit = step.commit
        walk.findings.extend(step.findings)
        if any(c.path == tracker.CONFIG_FILE for c in commit.changes):
            found = next((f for f in step.findings if f.path == tracker.CONFIG_FILE), None)
            config_problem = None if found is None else f"{commit.sha[:12]}: {found}"
            if config_problem:
                walk.problems.append(
                    f"{config_problem}: the engine acts on nothing from this commit on, "
                    "until the configuration is valid again"
                )
        causes = _causes(state, commit)
        for event in step.events:
            incident = _incident_of(event)
            ids.setdefault(incident, []).append(event["id"])
            known = evaluated.get(incident)
            if known is not None and len(ids[incident]) <= known.events:
                # Evaluated before, if the same events led here (a ledger written before
                # digests were kept cannot tell, and takes them as the same).
                digest = digests[incident] = chained(digests.get(incident, ""), [event["id"]])
                held.setdefault(incident, []).append(Skipped(event, commit.sha, REWRITTEN))
                if len(ids[incident]) == known.events and known.digest in (None, digest):
                    del held[incident]
                continue
            if config_problem:
                walk.skipped.append(Skipped(event, commit.sha, INVALID_CONFIG))
                continue
            if keep_events:
                walk.events.append(event)
            # Prefect's periodic work runs up to the event's time, then the event.
            fired = evaluator.advance(timestamp(event["occurred"]))
            walk.fired.extend(automations.stamp(fired + evaluator.feed(event, causes)))
        at = timestamp(step.occurred)
        state.clock = max(state.clock, at)
        for change in commit.changes:
            if tracker.classify(change.path) is tracker.Kind.AUTOMATION:
                automations.change(change, at, walk.findings)
    # What is left held differs from what was evaluated there (or is shorter): listed,
    # where a digest can tell.
    walk.skipped.extend(
        item for i, items in held.items() if evaluated[i].digest is not None for item in items
    )
    return ids


def invocations(automation: Automation, firing: Firing) -> list[int]:
    """The indexes (in the combined list, SPEC 5.3) of the actions a firing runs:
    Prefect runs `actions` on every firing, and `actions_on_trigger` or
    `actions_on_resolve` by the trigger's new state."""
    plain, on_trigger = len(automation.actions), len(automation.actions_on_trigger)
    extra = (
        range(plain, plain + on_trigger)
        if firing.state == "Triggered"
        else range(plain + on_trigger, len(automation.all_actions))
    )
    return [*range(plain), *extra]


def record_firings(state: State, fired: Iterable[Fired], now: float) -> list[FiringRecord]:
    """Add firings and their pending invocations to the ledger; known ones are skipped."""
    added = []
    for item in fired:
        firing, automation = item.firing, item.automation
        if firing.id in state.firings:
            continue
        keys = []
        for index in invocations(automation, firing):
            key = f"{firing.automation}/{firing.id}/{index}"
            state.invocations[key] = Invocation(
                key, automation.all_actions[index].type, updated=now
            )
            keys.append(key)
        record = FiringRecord(
            id=firing.id,
            automation=firing.automation,
            name=automation.name,
            path=item.record.path,
            blob=item.record.blob,
            state=firing.state,
            triggered=firing.triggered,
            labels=firing.labels,
            event=firing.event,
            causes=sorted(firing.causes),
            invocations=keys,
        )
        state.firings[firing.id] = record
        added.append(record)
    return added
