"""The automation engine: history -> events -> triggers -> firings -> ledger -> actions.

`apply` works in two phases, each published to the ledger by compare-and-swap:

1. evaluate: the commits since the recorded position are walked, their
   events fed to the evaluator, proactive deadlines checked at the clock; the
   new position, windows and firings (every invocation `pending`) are
   published together. Two runners evaluate alike; one wins, the other reads
   its result.
2. act: each open invocation is claimed (`running`, with the runner's id),
   run, and recorded (`done` or `failed`). A claim whose runner died is taken
   over: the action runs again where its sink is idempotent, and is marked
   `unknown` otherwise.

Commits made by actions are evaluated in the next round of the same `apply`.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitops_incidents import actions, gitcmd, tracker
from gitops_incidents.events import Event, IncidentState
from gitops_incidents.faults import crashpoint
from gitops_incidents.history import History, file_problem
from gitops_incidents.ledger import (
    SKIPPED_KEPT,
    AutomationRecord,
    FiringRecord,
    Invocation,
    Ledger,
    State,
    claim,
)
from gitops_incidents.models import Automation, Config, Context
from gitops_incidents.repository import branch_ref, config_at, config_problem_at
from gitops_incidents.triggers import Evaluator, Firing, Window, timestamp
from gitops_incidents.validation import Finding, parse_file

# Rounds of one `apply`: evaluate, act, and again for the commits the actions made.
MAX_ROUNDS = 5
# External event ids are remembered this long (event time) to ignore duplicates.
DEDUPLICATE_FOR = 7 * 86400.0
# How far ahead of the engine's clock (or the wall clock) an external event may be dated.
FUTURE_SKEW = 15 * 60.0
# How far before its cursor `ingest --from-prefect` reads again (Prefect stores events a
# few seconds late; ids seen before are ignored).
CATCH_UP = 5 * 60.0


@dataclass
class Outcome:
    key: str
    automation: str  # its name
    type: str
    status: str
    detail: str


@dataclass
class Report:
    fired: list[FiringRecord] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what stops or limits the engine
    notes: list[str] = field(default_factory=list)
    published: int = 0  # events published to Prefect

    @property
    def failed(self) -> bool:
        failed = any(o.status in ("failed", "unknown") for o in self.outcomes)
        return failed or bool(self.skipped or self.problems)

    def say(self, problems: list[str], notes: Sequence[str] = ()) -> None:
        """Add what a round found, once however many rounds find it."""
        self.problems.extend(p for p in dict.fromkeys(problems) if p not in self.problems)
        self.notes.extend(n for n in dict.fromkeys(notes) if n not in self.notes)


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


class _Automations:
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


def restore(root: Path, state: State, config: Config) -> tuple[Evaluator, _Automations]:
    """An evaluator as the state left it: its automations loaded, its windows open."""
    evaluator = Evaluator()
    automations = _Automations(root, config, state.automations, evaluator)
    evaluator.restore(state.windows)
    return evaluator, automations


def restored_windows(engine: Engine, state: State) -> list[Window]:
    return restore(engine.root, state, config_at(engine.root, engine.head()))[0].windows()


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


def _skipped_record(item: Skipped) -> dict[str, str]:
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
    states: dict[str, IncidentState]
    events: list[Event]
    findings: list[Finding]
    skipped: list[Skipped] = field(default_factory=list)  # events not acted on, and why
    problems: list[str] = field(default_factory=list)  # what keeps the engine from acting
    notes: list[str] = field(default_factory=list)


def _chain(digests: dict[str, str], event: Event) -> str:
    """Extend the digest of the incident's evaluated events by `event`; the new digest."""
    incident = _incident_of(event)
    chained = hashlib.sha1(f"{digests.get(incident, '')}{event['id']}".encode()).hexdigest()
    digests[incident] = chained[:16]
    return digests[incident]


def evaluate_history(
    root: Path,
    state: State,
    head: str,
    *,
    replay: bool = False,
    clock: float | None = None,
    writable: bool = True,
    keep_events: bool = False,
) -> Walk:
    """Evaluate the main line up to `head` from `state`, which is updated in place:
    position, ordinals, automations, windows. Firings are returned, not recorded."""
    walk = Walk([], {}, [], [])
    with History(root, writable=writable) as history:
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
        if first_run and not replay:
            # The first run starts at HEAD: nothing from before it is acted on.
            for step in history.walk(head):
                state.clock = max(state.clock, timestamp(step.occurred))
                for event in step.events:
                    _chain(state.digests, event)
            automations.at_commit(head, state.clock, walk.findings)
        else:
            since = None if first_run or rewritten else state.position
            _walk(root, history, state, head, since, evaluator, automations, walk, keep_events)
            if rewritten:
                automations.keep_only(head)
        walk.states = history.states()
        if clock is not None:
            state.clock = max(state.clock, clock)
            walk.fired.extend(automations.stamp(evaluator.advance(state.clock)))
    state.position = head
    state.ordinals = {incident_id: s.ordinal for incident_id, s in walk.states.items()}
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


def _walk(
    root: Path,
    history: History,
    state: State,
    head: str,
    since: str | None,
    evaluator: Evaluator,
    automations: _Automations,
    walk: Walk,
    keep_events: bool,
) -> None:
    evaluated, before = dict(state.ordinals), dict(state.digests) if since is None else {}
    if since is None:
        state.digests = {}
    # Incidents evaluated by a version that kept no digests: theirs is not known (until a
    # walk from the start), and a digest of the recent events only would mislead.
    unknown = set() if since is None else {i for i in evaluated if i not in state.digests}
    counts: dict[str, int] = {}
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
            digest = "" if incident in unknown else _chain(state.digests, event)
            count = counts[incident] = counts.get(incident, 0) + 1
            if since is None and count <= evaluated.get(incident, 0):
                # Evaluated before, if the same events led here (a ledger written before
                # digests were kept cannot tell, and takes them as the same).
                held.setdefault(incident, []).append(Skipped(event, commit.sha, REWRITTEN))
                if count == evaluated[incident] and before.get(incident, digest) == digest:
                    del held[incident]
                continue
            if config_problem:
                walk.skipped.append(Skipped(event, commit.sha, INVALID_CONFIG))
                continue
            if keep_events:
                walk.events.append(event)
            walk.fired.extend(automations.stamp(evaluator.feed(event, causes)))
        at = timestamp(step.occurred)
        state.clock = max(state.clock, at)
        for change in commit.changes:
            if tracker.classify(change.path) is tracker.Kind.AUTOMATION:
                automations.change(change, at, walk.findings)
    # What is left held differs from what was evaluated there (or is shorter): listed.
    walk.skipped.extend(
        item for incident, items in held.items() if incident in before for item in items
    )


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


class Engine:
    """One repository's engine: its branch, its ledger, its runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        config = config_at(root, "HEAD") if gitcmd.ref_value(root, "HEAD") else Config()
        self.branch_ref = branch_ref(root, config)
        self.ledger = Ledger(root, self.branch_ref.removeprefix("refs/heads/"))
        self._states: dict[str, IncidentState] = {}  # incidents as of the last evaluation
        self._automations: dict[tuple[str, str], tuple[Automation | None, list[Finding]]] = {}

    def head(self) -> str:
        head = gitcmd.ref_value(self.root, self.branch_ref)
        if head is None:
            raise gitcmd.GitError(f"{self.branch_ref} has no commits yet")
        return head

    def apply(self, *, as_of: float | None = None, replay: bool = False) -> Report:
        report = Report()
        _, state = self.ledger.read()
        if replay and state.position is not None:
            raise gitcmd.GitError(
                f"the engine already started (at {state.position[:12]}): "
                "--replay applies to a repository's first run only"
            )
        for _ in range(MAX_ROUNDS):
            position = self._evaluate(report, replay=replay, clock=as_of or time.time())
            replay = False
            self._act(report)
            self._emit(report)
            if self.head() == position:
                break
        return report

    def _emit(self, report: Report) -> None:
        """With `prefect.emit_events`: publish the events since the emission cursor to
        Prefect, then move the cursor. A run that stops in between publishes them again
        (the same ids: Prefect takes an id once while it remembers it, 30 minutes)."""
        _, state = self.ledger.read()
        start, position = state.emitted, state.position
        if start is None or position is None or start == position:
            return
        from gitops_incidents.prefect import events as bridge

        with History(self.root) as history:
            events = [e for step in history.walk(position, since=start) for e in step.events]
        try:
            sent = bridge.publish(events)
        except actions.ActionFailed as exc:
            report.say([f"events not published to Prefect ({exc}): the next apply tries again"])
            return

        def moved(state: State) -> None:
            if state.emitted == start:
                state.emitted = position

        self.ledger.update(moved, f"published {sent} event(s) to Prefect")
        report.published += sent

    def ingest_from_prefect(self, report: Report) -> int:
        """Prefect's stored events since the cursor, evaluated as `ingest` does; how many.

        The first read starts now (as the first `apply` starts at HEAD). Each read goes
        back CATCH_UP before the cursor: Prefect stores events a few seconds after they
        occur, and a late one must not be missed; ids seen before are ignored."""
        from gitops_incidents.prefect import events as bridge

        _, state = self.ledger.read()
        now = time.time()
        if state.prefect_cursor is None:
            self.ledger.update(lambda s: setattr(s, "prefect_cursor", now), "read Prefect from now")
            return 0
        return self.take_from_prefect(
            list(bridge.read(state.prefect_cursor - CATCH_UP, now)), report
        )

    def take_from_prefect(self, events: list[Event], report: Report) -> int:
        """Prefect's events (read or streamed), evaluated as `ingest` does, and the cursor
        moved to the newest; how many were taken. Events about this tracker's own
        incidents come from git, not from here."""
        own = f"{config_at(self.root, self.head()).namespace}.incident."
        taken = [e for e in events if not str(e["resource"]["prefect.resource.id"]).startswith(own)]
        if taken:
            done = self.ingest(taken)
            report.fired.extend(done.fired)
            report.outcomes.extend(done.outcomes)
            report.say(done.problems, done.notes)
        now = time.time()
        newest = min(max((timestamp(e["occurred"]) for e in events), default=0.0), now)

        def moved(state: State) -> None:
            state.prefect_cursor = max(state.prefect_cursor or 0.0, newest)

        if newest:
            self.ledger.update(moved, f"read {len(events)} event(s) from Prefect")
        return len(taken)

    def ingest(self, events: list[Event]) -> Report:
        """External events, evaluated with the same engine and ledger."""
        report = Report()
        self._evaluate(report, replay=False, clock=None)

        def feed(state: State) -> list[FiringRecord]:
            evaluator, automations = restore(self.root, state, config_at(self.root, self.head()))
            fired: list[Fired] = []
            # As Prefect's event clock does: an event from the future counts as now (give
            # or take some skew), so that a wrong clock elsewhere cannot move windows,
            # deadlines and the duplicate horizon for good.
            latest = max(time.time(), state.clock) + FUTURE_SKEW
            for event in events:
                if event["id"] in state.ingested:
                    continue
                at = min(timestamp(event["occurred"]), latest)
                state.ingested[event["id"]] = at
                fired.extend(automations.stamp(evaluator.feed(event, at=at)))
            newest = max(state.ingested.values(), default=0.0)
            state.ingested = {
                i: at for i, at in state.ingested.items() if at >= newest - DEDUPLICATE_FOR
            }
            state.windows = evaluator.dump()
            return record_firings(state, fired, time.time())

        report.fired.extend(self.ledger.update(feed, "ingest: external events"))
        self._act(report)
        return report

    def _evaluate(self, report: Report, *, replay: bool, clock: float | None) -> str:
        """Phase 1: evaluate the new commits and publish position, windows and firings."""
        while True:
            commit, state = self.ledger.read()
            head = self.head()
            before = state.position
            walk = evaluate_history(self.root, state, head, replay=replay, clock=clock)
            if not config_at(self.root, head).prefect.emit_events:
                state.emitted = None
            elif state.emitted is None or not gitcmd.is_ancestor(self.root, state.emitted, head):
                # Emission starts with the commits this run evaluates (or after a rewrite
                # of history, with the next ones): never the whole past at once.
                state.emitted = before if before and state.emitted is None else head
            fired = record_firings(state, walk.fired, time.time())
            state.skipped = [*state.skipped, *map(_skipped_record, walk.skipped)][-SKIPPED_KEPT:]
            crashpoint("before-state")
            message = f"evaluate {head[:12]}: {len(fired)} firing(s)"
            if self.ledger.write(state, commit, message) is not None:
                report.fired.extend(fired)
                report.findings.extend(walk.findings)
                report.skipped.extend(walk.skipped)
                report.say(walk.problems + self._replaced(), walk.notes)
                self._states = walk.states
                return head

    def _replaced(self) -> list[str]:
        replaced = gitcmd.replacements(self.root)
        if not replaced:
            return []
        return [
            f"{len(replaced)} commit(s) replaced with git replace ({replaced[0][:12]}...): "
            "the engine reads history as committed and ignores them"
        ]

    def _act(self, report: Report) -> None:
        """Phase 2: claim, run and record every open invocation."""
        _, state = self.ledger.read()
        problem = config_problem_at(self.root, self.head())
        if problem:
            report.say([f"{problem}: no action runs until the configuration is valid"])
            return
        config = config_at(self.root, self.head())  # actions never edit it: read once
        open_keys = sorted(
            (i.key for i in state.open_invocations()),
            key=lambda key: (state.firings[key.split("/")[1]].triggered, key),
        )
        for key in open_keys:
            decision = self.ledger.update(functools.partial(_claim, key=key), f"claim {key}")
            if decision == "skip":
                continue
            if decision == "unknown":
                status, detail = "unknown", UNKNOWN
            else:
                status, detail = self._run(state, config, key, recovering=decision == "recover")
                record = functools.partial(_record, key=key, status=status, detail=detail)
                self.ledger.update(record, f"{status} {key}")
            firing = state.firings[key.split("/")[1]]
            kind = state.invocations[key].type
            report.outcomes.append(Outcome(key, firing.name, kind, status, detail))

    def _run(self, state: State, config: Config, key: str, *, recovering: bool) -> tuple[str, str]:
        automation_id, firing_id, index = key.split("/")
        firing = state.firings[firing_id]
        version = (firing.path, firing.blob)
        if version not in self._automations:  # a firing's actions share one version
            self._automations[version] = read_automation(self.root, config, *version)
        automation, problems = self._automations[version]
        if automation is None:
            return "failed", f"the automation no longer validates: {problems[0]}"
        call = actions.Call(
            root=self.root,
            branch_ref=self.branch_ref,
            config=config,
            key=key,
            automation_id=automation_id,
            automation=automation,
            action=automation.all_actions[int(index)],
            firing={
                "id": firing.id,
                "state": firing.state,
                "triggered": firing.triggered,
                "labels": firing.labels,
            },
            event=firing.event,
            incidents=self._states,
            recovering=recovering,
            intent=state.invocations[key].intent,
            note_intent=functools.partial(self._note_intent, key),
        )
        try:
            return "done", actions.execute(call)
        except actions.ActionFailed as exc:
            return "failed", str(exc)

    def _note_intent(self, key: str, intent: dict[str, str]) -> None:
        def note(state: State) -> None:
            state.invocations[key].intent = intent

        self.ledger.update(note, f"stage {key}")


UNKNOWN = (
    "a runner stopped after starting this action and before recording its outcome; "
    "its sink is not idempotent, so it is not run again: check it by hand"
)


def _claim(state: State, key: str) -> str:
    invocation = state.invocations[key]
    now = time.time()
    if invocation.status == "pending":
        decision = "run"
    elif invocation.status == "running" and invocation.claim and invocation.claim.abandoned(now):
        if not actions.registry()[invocation.type].idempotent:
            invocation.status, invocation.detail, invocation.claim = "unknown", UNKNOWN, None
            invocation.updated = now
            return "unknown"
        decision = "recover"
    else:
        return "skip"
    invocation.status, invocation.claim = "running", claim(now)
    invocation.attempts += 1
    invocation.updated = now
    return decision


def _record(state: State, key: str, status: str, detail: str) -> None:
    invocation = state.invocations[key]
    invocation.status = "done" if status == "done" else "failed"
    invocation.detail, invocation.claim, invocation.updated = detail, None, time.time()


@dataclass
class Planned:
    """One firing `plan` foresees, and what each of its actions would do."""

    automation: str  # its name
    state: str
    event: Event | None
    actions: list[tuple[str, str]]  # (type, what it would do)


@dataclass
class Plan:
    events: list[Event]
    planned: list[Planned]
    findings: list[Finding]


def plan(root: Path, base: str, head: str) -> Plan:
    """The events of base..head and what the automations would do, from the state at
    `base` (the engine's own if it stands there). Writes nothing: no ref, no cache."""
    if not gitcmd.is_ancestor(root, base, head):
        raise gitcmd.GitError(f"{base[:12]} is not an ancestor of {head[:12]}")
    config = config_at(root, head)
    _, recorded = Ledger(root, branch_ref(root, config).removeprefix("refs/heads/")).read()
    if recorded.position == base:
        state = recorded
    else:
        # Automations as they stand at base, in force from its time, with no open windows.
        state = State(position=base)
        at = float(gitcmd.run(root, "show", "-s", "--format=%ct", base).strip())
        _Automations(root, config, state.automations, Evaluator()).at_commit(base, at, [])
    walk = evaluate_history(root, state, head, writable=False, keep_events=True)
    planned = []
    for item in walk.fired:
        firing, automation = item.firing, item.automation
        described: list[tuple[str, str]] = []
        for index in invocations(automation, firing):
            action = automation.all_actions[index]
            call = actions.Call(
                root=root,
                branch_ref="",
                config=config,
                key=f"{firing.automation}/{firing.id}/{index}",
                automation_id=firing.automation,
                automation=automation,
                action=action,
                firing={"id": firing.id, "state": firing.state, "labels": firing.labels},
                event=firing.event,
                incidents=walk.states,
                recovering=False,
            )
            described.append((action.type, actions.describe(call)))
        planned.append(Planned(automation.name, firing.state, firing.event, described))
    return Plan(walk.events, planned, walk.findings)
