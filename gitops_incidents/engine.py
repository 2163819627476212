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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitops_incidents import actions, gitcmd
from gitops_incidents.errors import UsageError
from gitops_incidents.evaluation import (
    Automations,
    Fired,
    Skipped,
    evaluate_history,
    invocations,
    read_automation,
    record_firings,
    restore,
    skipped_record,
)
from gitops_incidents.events import Event, IncidentState
from gitops_incidents.faults import crashpoint
from gitops_incidents.history import History
from gitops_incidents.ledger import SKIPPED_KEPT, FiringRecord, Ledger, State, claim
from gitops_incidents.models import Automation, Config
from gitops_incidents.remote import Remote
from gitops_incidents.repository import branch_ref, config_at, read_config
from gitops_incidents.triggers import Evaluator, Window, timestamp
from gitops_incidents.validation import Finding

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

    def merge(self, other: Report) -> None:
        """What another run (an `ingest` within this one) found, added to this report."""
        self.fired.extend(other.fired)
        self.outcomes.extend(other.outcomes)
        self.findings.extend(other.findings)
        self.skipped.extend(other.skipped)
        self.published += other.published
        self.say(other.problems, other.notes)

    def say(self, problems: list[str], notes: Sequence[str] = ()) -> None:
        """Add what a round found, once however many rounds find it."""
        self.problems.extend(p for p in dict.fromkeys(problems) if p not in self.problems)
        self.notes.extend(n for n in dict.fromkeys(notes) if n not in self.notes)


def restored_windows(engine: Engine, state: State) -> list[Window]:
    return restore(engine.root, state, config_at(engine.root, engine.head()))[0].windows()


class Engine:
    """One repository's engine: its branch, its ledger, its runs."""

    def __init__(self, root: Path, remote: str | None = None) -> None:
        self.root = root
        config = config_at(root, "HEAD") if gitcmd.ref_value(root, "HEAD") else Config()
        self.branch_ref = branch_ref(root, config)
        self.ledger = Ledger(root, self.branch_ref.removeprefix("refs/heads/"))
        # With a remote (the daemon's --remote), the ledger's races are decided there.
        self.remote = None
        if remote is not None:
            self.remote = Remote(root, remote, self.branch_ref, self.ledger.ref)
            self.ledger.remote = self.remote
        self._states: Mapping[str, IncidentState] = {}  # incidents as of the last evaluation
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
            raise UsageError(
                f"the engine already started (at {state.position[:12]}): "
                "--replay applies to a repository's first run only"
            )
        for _ in range(MAX_ROUNDS):
            position = self._evaluate(
                report, replay=replay, clock=as_of or time.time(), held_back=as_of is None
            )
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

        # Walked again from the cursor rather than taken from this run's evaluation: the
        # events an earlier run could not publish (Prefect down) go out too. Every file
        # version is in the parse cache by now: the evaluation has just read them.
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

    def prefect_since(self) -> float | None:
        """Where reading Prefect's stored events starts: CATCH_UP before the cursor
        (Prefect stores events a few seconds after they occur, and a late one must not
        be missed; ids seen before are ignored). None the first time, which sets the
        cursor to now: the engine reads Prefect from now on, as the first `apply` starts
        at HEAD."""
        _, state = self.ledger.read()
        if state.prefect_cursor is None:
            now = time.time()
            self.ledger.update(lambda s: setattr(s, "prefect_cursor", now), "read Prefect from now")
            return None
        return state.prefect_cursor - CATCH_UP

    def ingest_from_prefect(self, report: Report) -> int:
        """Prefect's stored events since the cursor, evaluated as `ingest` does; how many."""
        from gitops_incidents.prefect import events as bridge

        since = self.prefect_since()
        if since is None:
            return 0
        return self.take_from_prefect(list(bridge.read(since, time.time())), report)

    def take_from_prefect(self, events: list[Event], report: Report) -> int:
        """Prefect's events (read or streamed), evaluated as `ingest` does, with the
        cursor moved to the newest in the same write; how many were taken. Events about
        this tracker's own incidents come from git, not from here."""
        own = f"{config_at(self.root, self.head()).namespace}.incident."
        taken = [e for e in events if not str(e["resource"]["prefect.resource.id"]).startswith(own)]
        newest = min(max((timestamp(e["occurred"]) for e in events), default=0.0), time.time())
        if events:
            report.merge(self.ingest(taken, cursor=newest or None))
        return len(taken)

    def ingest(self, events: list[Event], cursor: float | None = None) -> Report:
        """External events, evaluated with the same engine and ledger; `cursor`: the
        newest time read from Prefect, recorded in the same write."""
        report = Report()
        self._evaluate(report, replay=False, clock=None)

        def feed(state: State) -> list[FiringRecord]:
            if cursor is not None:
                state.prefect_cursor = max(state.prefect_cursor or 0.0, cursor)
            evaluator, automations = restore(self.root, state, config_at(self.root, self.head()))
            fired: list[Fired] = []
            # As Prefect's event clock does: an event from the future counts as now (give
            # or take some skew), so that a wrong clock elsewhere cannot move windows,
            # deadlines and the duplicate horizon for good.
            now = time.time()
            latest = max(now, state.clock) + FUTURE_SKEW
            # Arrived now: proactive evaluation is held back by how late they are, and
            # one that comes before the event it follows waits for it (Prefect's).
            fired.extend(automations.stamp(evaluator.advance(now, held_back=True)))
            for event in events:
                if event["id"] in state.ingested:
                    continue
                at = min(timestamp(event["occurred"]), latest)
                state.ingested[event["id"]] = at
                fired.extend(automations.stamp(evaluator.feed(event, at=at, received=now)))
            newest = max(state.ingested.values(), default=0.0)
            state.ingested = {
                i: at for i, at in state.ingested.items() if at >= newest - DEDUPLICATE_FOR
            }
            state.windows = evaluator.dump()
            return record_firings(state, fired, time.time())

        message = f"ingest: {len(events)} external event(s)"
        report.fired.extend(self.ledger.update(feed, message))
        self._act(report)
        return report

    def _evaluate(
        self, report: Report, *, replay: bool, clock: float | None, held_back: bool = False
    ) -> str:
        """Phase 1: evaluate the new commits and publish position, windows and firings."""
        while True:
            commit, state = self.ledger.read()
            head = self.head()
            before = state.position
            walk = evaluate_history(
                self.root, state, head, replay=replay, clock=clock, held_back=held_back,
                seed=commit,
            )  # fmt: skip
            if not config_at(self.root, head).prefect.emit_events:
                state.emitted = None
            elif state.emitted is None or not gitcmd.is_ancestor(self.root, state.emitted, head):
                # Emission starts with the commits this run evaluates (or after a rewrite
                # of history, with the next ones): never the whole past at once.
                state.emitted = before if before and state.emitted is None else head
            fired = record_firings(state, walk.fired, time.time())
            state.skipped = [*state.skipped, *map(skipped_record, walk.skipped)][-SKIPPED_KEPT:]
            crashpoint("before-state")
            message = f"evaluate {head[:12]}: {len(fired)} firing(s)"
            if self.ledger.write(state, commit, message, files=walk.files) is not None:
                report.fired.extend(fired)
                report.findings.extend(walk.findings)
                report.skipped.extend(walk.skipped)
                report.say(walk.problems + self._replaced(), walk.notes)
                self._states = walk.states
                return head
            if self.remote is not None:
                # Lost to another runner, whose state may have evaluated beyond this
                # clone's branch: follow the branch first, or that position reads as a
                # rewrite of history and the next events as already evaluated.
                problem = self.remote.follow()
                if problem:
                    raise gitcmd.GitError(problem)

    def _move_branch(self, key: str, commit: str, tip: str) -> bool:
        """A commit action's commit, pushed to the remote in one atomic push with the
        ledger's record of it (`done`); False if the branch had moved there, which is then
        followed (the files too, from the edit staged for `commit`)."""
        assert self.remote is not None
        while True:
            recorded, state = self.ledger.read()
            _record(state, key, "done", f"committed {commit[:12]}")
            new = self.ledger.commit(state.to_json(), recorded, f"done {key} with its commit")
            if self.remote.push({self.branch_ref: (commit, tip), self.ledger.ref: (new, recorded)}):
                return True
            if self.remote.remote_branch() != tip:
                problem = self.remote.follow(staged=commit)
                if problem:
                    raise actions.ActionFailed(problem)
                return False

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
        config, problem = read_config(self.root, self.head())  # actions never edit it
        if problem:
            report.say([f"{problem}: no action runs until the configuration is valid"])
            return
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
            move_branch=functools.partial(self._move_branch, key) if self.remote else None,
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
        raise UsageError(f"{base[:12]} is not an ancestor of {head[:12]}")
    config = config_at(root, head)
    seed, recorded = Ledger(root, branch_ref(root, config).removeprefix("refs/heads/")).read()
    if recorded.position == base:
        state = recorded
    else:
        # Automations as they stand at base, in force from its time, with no open windows.
        state = State(position=base)
        at = float(gitcmd.run(root, "show", "-s", "--format=%ct", base).strip())
        Automations(root, config, state.automations, Evaluator()).at_commit(base, at, [])
        seed = None
    walk = evaluate_history(root, state, head, writable=False, keep_events=True, seed=seed)
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
