"""Prefect's trigger semantics (SPEC 5.1-5.2) as a pure evaluator: events and
a clock in, firings out. No I/O; the engine keeps `dump()` between runs.

Windows are Prefect's "buckets": one open bucket per trigger and key, with a
start, an end and a count. `_react_leaf`, `_evaluate` and `_proactive` follow
`prefect.server.events.triggers` (3.9: `reactive_evaluation`, `evaluate`,
`proactive_evaluation`) case for case. Where Prefect's server polls (proactive
runs, lost followers, sweeps), this evaluator keeps heaps of due times and, as the
clock passes each, does what the server would have done then: the server in the
limit of a loop that never sleeps. `tests/test_differential.py` holds the two
side by side.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gitops_incidents.events import LATEST, uuid5
from gitops_incidents.matching import Spec, find_label, glob, spec
from gitops_incidents.models import Automation, CompoundTrigger, EventTrigger, SequenceTrigger

Event = dict[str, Any]
Key = tuple[str, ...]
TriggerState = Literal["Triggered", "Resolved"]
Composite = CompoundTrigger | SequenceTrigger

# An implicitly armed window starts this far before its first event, so events
# that arrive out of order still count (Prefect's PRECEDING_EVENT_LOOKBACK).
LOOKBACK = 15 * 60.0
# An expired reactive window is swept this long after its end
# (Prefect's PREFECT_EVENTS_EXPIRED_BUCKET_BUFFER).
SWEEP_AFTER = 60.0
# Prefect's proactive loop turns every 5 s: a run already due waits for the next turn.
LOOP = 5.0
# A held `expect` event is kept this long (Prefect's HELD_EXPECT_EVENTS_RETENTION).
HELD_FOR = 2 * LOOKBACK
# Streamed ids are remembered this long for causal order (Prefect's SEEN_EXPIRATION),
MAX_FOLLOWER_DEPTH = 20  # and followers are taken this many deep at once.
SEEN_FOR = 30 * 60.0
_FIRING_NAMESPACE = uuid.UUID("3d0c4a8e-2b9f-5c61-8f0e-7a5d9b1c2e34").bytes


@functools.lru_cache(maxsize=65536)
def timestamp(value: str) -> float:
    """Seconds since 1970 of an ISO 8601 time; without an offset, UTC."""
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(min(seconds, LATEST), UTC)
    spec = "seconds" if moment.microsecond == 0 else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


# -- firings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Firing:
    """An automation's trigger fired: its actions are due."""

    id: str
    automation: str
    state: TriggerState
    triggered: float  # event time, or the clock for a proactive deadline
    labels: dict[str, str]  # the for_each values of the key
    event: Event | None  # the triggering event (the last one seen, for a deadline)
    causes: frozenset[str] = frozenset()  # automations whose actions led here


def _firing_id(*parts: object) -> str:
    """Deterministic: the same events give the same firings, in every run and runner."""
    return uuid5("\x1f".join(map(str, parts)), _FIRING_NAMESPACE)


# -- compiled triggers -------------------------------------------------------------------


@dataclass(eq=False)
class _Bucket:
    start: float
    end: float
    count: int
    last_event: Event | None


class _Leaf:
    """An event trigger, compiled for evaluation, with its buckets."""

    def __init__(self, rule: _Rule, path: str, trigger: EventTrigger, parent: _Node | None):
        self.rule, self.path, self.trigger, self.parent = rule, path, trigger, parent
        self.ident = f"{rule.automation}:{path}"
        self.reactive = trigger.posture == "Reactive"
        self.within = trigger.within.total_seconds()
        self.immediate = self.reactive and self.within == 0
        self.threshold = trigger.threshold
        self.expects = glob(tuple(sorted(trigger.expect))) if trigger.expect else _always
        self.starts_after = glob(tuple(sorted(trigger.after))) if trigger.after else _never
        self.has_after = bool(trigger.after)
        # Prefect's event_pattern: with no `expect`, every event is of interest.
        names = (*trigger.expect, *trigger.after)
        self.interested = glob(tuple(sorted(names))) if trigger.expect else _always
        self.match = spec(trigger.match) if trigger.match else None  # {} matches anything
        self.match_related = [s for s in map(spec, trigger.match_related) if s]
        self.for_each = sorted(trigger.for_each)
        # Prefect arms every proactive trigger without for_each at each proactive run;
        # SPEC 5.2 arms one with `after` by its `after` events only.
        self.always_armed = not self.reactive and not trigger.after and not trigger.for_each
        # Prefect's held events: a proactive trigger with `after` keeps each
        # `expect`-only event for the buckets that open later over it.
        self.holds = not self.reactive and self.has_after
        self.buckets: dict[Key, _Bucket] = {}
        self.ends: list[tuple[float, int, Key, _Bucket]] = []  # proactive: by end
        self.satisfied: set[Key] = set()  # proactive: keys at or above the threshold
        self.held: dict[Key, list[tuple[float, str, float]]] = {}  # (occurred, id, held at)
        self.next_run: float | None = None  # proactive: the next run of its evaluation

    def covers(self, event: Event, tested: dict[Spec, bool], related: dict[Spec, bool]) -> bool:
        """`tested` and `related` hold this event's results of specs tested before:
        automations often share them (the same resource kind, role or tag)."""
        match = self.match
        if match is not None:
            hit = tested.get(match)
            if hit is None:
                hit = tested[match] = match.matches(event["resource"])
            if not hit:
                return False
        for each in self.match_related:
            hit = related.get(each)
            if hit is None:
                hit = related[each] = each.any_matches(event.get("related") or [])
            if not hit:
                return False
        return True

    def key(self, event: Event) -> Key:
        return tuple(find_label(event, label) or "" for label in self.for_each)

    def meets_threshold(self, count: int) -> bool:
        return count >= self.threshold if self.reactive else count < self.threshold

    def held_in(self, key: Key, start: float, end: float) -> int:
        return sum(1 for occurred, _, _ in self.held.get(key, ()) if start <= occurred < end)


class _Node:
    """A compound or sequence trigger: one slot per child, as in Prefect."""

    def __init__(
        self,
        rule: _Rule,
        path: str,
        trigger: CompoundTrigger | SequenceTrigger,
        parent: _Node | None,
    ):
        self.rule, self.path, self.parent = rule, path, parent
        self.ident = f"{rule.automation}:{path}"
        self.sequence = isinstance(trigger, SequenceTrigger)
        children = len(trigger.triggers)
        if isinstance(trigger, CompoundTrigger):
            require = trigger.require
            self.expected = 1 if require == "any" else children if require == "all" else require
        else:
            self.expected = children
        self.within = None if trigger.within is None else trigger.within.total_seconds()
        self.slots: dict[int, _Slot] = {}

    def ready(self) -> bool:
        if self.sequence:
            ordered = sorted(self.slots.items(), key=lambda item: (item[1].triggered, item[0]))
            return [index for index, _ in ordered] == list(range(self.expected))
        return len(self.slots) >= self.expected


@dataclass(frozen=True, slots=True)
class _Slot:
    firing: str
    triggered: float
    event: Event | None


def _always(value: str) -> bool:
    return True


def _never(value: str) -> bool:
    return False


class _Rule:
    """One loaded automation: its triggers, compiled."""

    def __init__(self, automation_id: str, automation: Automation, enabled_at: float):
        self.automation = automation_id
        self.enabled_at = enabled_at
        self.fingerprint = hashlib.sha256(
            automation.trigger.model_dump_json().encode()
        ).hexdigest()[:16]
        self.leaves: list[_Leaf] = []
        self.nodes: dict[str, _Node] = {}
        self._compile(automation.trigger, "", None)

    def _compile(
        self,
        trigger: EventTrigger | CompoundTrigger | SequenceTrigger,
        path: str,
        parent: _Node | None,
    ) -> None:
        if isinstance(trigger, EventTrigger):
            self.leaves.append(_Leaf(self, path, trigger, parent))
            return
        node = _Node(self, path, trigger, parent)
        self.nodes[path] = node
        for index, child in enumerate(trigger.triggers):
            self._compile(child, f"{path}{index}.", node)


@dataclass(frozen=True, slots=True)
class Window:
    """An open bucket, for `status`."""

    automation: str
    trigger: str
    key: Key
    posture: str
    start: float
    end: float
    count: int
    threshold: int


@dataclass(slots=True)
class _Follower:
    """A streamed event that arrived before the event it follows."""

    event: Event
    received: float
    at: float
    causes: frozenset[str]


# -- the evaluator -----------------------------------------------------------------------


@dataclass
class Evaluator:
    """Feed it events in arrival order and advance its clock; it returns firings.

    It is Prefect's server in the limit of a periodic loop that never sleeps: each
    proactive trigger is evaluated at each run time Prefect's scheduling gives it
    (`advance` catches up on every one up to the clock), closed buckets are swept
    `SWEEP_AFTER` past their end, and a streamed event that arrived before the event
    it `follows` waits for it, or `LOOKBACK`, as Prefect's causal ordering does.
    """

    rules: dict[str, _Rule] = field(default_factory=dict)
    _tripped: dict[tuple[_Leaf, Key], str] = field(default_factory=dict)
    _sweeps: list[tuple[float, int, _Leaf, Key, _Bucket]] = field(default_factory=list)
    _runs: list[tuple[float, int, int, _Leaf]] = field(default_factory=list)
    _sequence: int = 0
    _order: dict[_Leaf, int] = field(default_factory=dict)
    _by_name: dict[str, list[_Leaf]] = field(default_factory=dict)
    _causes: frozenset[str] = frozenset()
    # Prefect's events clock: the newest event time seen in the stream, and when.
    _clock: float | None = None
    _clock_updated: float | None = None
    _seen: dict[str, float] = field(default_factory=dict)  # streamed ids, when processed
    _waiting: dict[str, _Follower] = field(default_factory=dict)  # followers by their id
    _leaders: dict[str, list[str]] = field(default_factory=dict)  # leader id -> followers
    _held_sweeps: list[tuple[float, int, _Leaf, Key]] = field(default_factory=list)

    # -- automations

    def load(self, automation_id: str, automation: Automation, enabled_at: float) -> None:
        """Evaluate `automation` for events from `enabled_at` on. Reloading one whose
        trigger is unchanged keeps its windows; otherwise they start over."""
        old = self.rules.get(automation_id)
        rule = _Rule(automation_id, automation, enabled_at)
        if old is not None and old.fingerprint == rule.fingerprint:
            old.enabled_at = enabled_at
            return
        self.unload(automation_id)
        self.rules[automation_id] = rule
        self._by_name.clear()
        for leaf in rule.leaves:
            self._order[leaf] = len(self._order)
            if not leaf.reactive:
                self._schedule(leaf, enabled_at)  # Prefect runs a new trigger at once

    def unload(self, automation_id: str) -> None:
        rule = self.rules.pop(automation_id, None)
        if rule is None:
            return
        self._by_name.clear()
        leaves = set(rule.leaves)
        for leaf in leaves:
            self._order.pop(leaf, None)
            leaf.next_run = None
        self._tripped = {k: f for k, f in self._tripped.items() if k[0] not in leaves}
        self._sweeps = [entry for entry in self._sweeps if entry[2] not in leaves]
        heapq.heapify(self._sweeps)
        self._runs = [entry for entry in self._runs if entry[3] not in leaves]
        heapq.heapify(self._runs)
        self._held_sweeps = [entry for entry in self._held_sweeps if entry[2] not in leaves]
        heapq.heapify(self._held_sweeps)

    # -- events and the clock

    def feed(
        self,
        event: Event,
        causes: frozenset[str] = frozenset(),
        at: float | None = None,
        received: float | None = None,
    ) -> list[Firing]:
        """Firings due to `event` (Prefect's reactive evaluation). `advance` to its
        time first, for the deadlines and sweeps that come before it.

        `causes`: the automations whose actions produced the event; none of them
        acts on it, so that no automation re-triggers itself without bound. `at`:
        the event's time for the windows, if not its `occurred` (a bounded one).
        `received`: when a streamed event arrived here; it moves the events clock,
        and the event waits for the one it `follows` unless its server received it
        LOOKBACK before (its own `received`, as Prefect's events carry). Events of
        history have none: they come in order, at their own time.
        """
        at = timestamp(event["occurred"]) if at is None else at
        out: list[Firing] = []
        if received is None:
            self._react(event, causes, at, at, out)
            return out
        self._tick_clock(at, received)
        leader = event.get("follows")
        stamped = event.get("received")
        since = min(timestamp(stamped), received) if isinstance(stamped, str) else received
        if (
            leader
            and leader != event["id"]
            and leader not in self._seen
            and received - since < LOOKBACK
        ):
            self._waiting[event["id"]] = _Follower(event, since, at, causes)
            self._leaders.setdefault(leader, []).append(event["id"])
            return out
        self._streamed(event, causes, at, received, 0, out)
        return out

    def _streamed(
        self,
        event: Event,
        causes: frozenset[str],
        at: float,
        now: float,
        depth: int,
        out: list[Firing],
    ) -> None:
        self._react(event, causes, at, now, out)
        self._seen[event["id"]] = now
        if depth >= MAX_FOLLOWER_DEPTH:
            return  # the rest wait until they are taken as lost, as in Prefect
        waiting = [
            self._waiting[i] for i in self._leaders.pop(event["id"], ()) if i in self._waiting
        ]
        for follower in sorted(waiting, key=lambda f: f.at):
            if self._waiting.pop(follower.event["id"], None) is not None:
                self._tick_clock(follower.at, now)
                self._streamed(follower.event, follower.causes, follower.at, now, depth + 1, out)

    def _tick_clock(self, at: float, now: float) -> None:
        """Prefect's events clock: an event's time (never ahead of when it was
        processed) moves it forward; how far it lags is measured when it moves."""
        at = min(at, now)
        if self._clock is None or at >= self._clock:
            self._clock = at
        self._clock_updated = now

    def lag(self) -> float:
        """How far behind its arrival the stream's newest event was processed (Prefect's
        events clock offset, as a positive number): proactive evaluation of a stream is
        held back by it, so that a backlog raises no false "did not happen" alert."""
        if self._clock is None or self._clock_updated is None:
            return 0.0
        return max(self._clock_updated - self._clock, 0.0)

    def advance(self, now: float, *, held_back: bool = False) -> list[Firing]:
        """Everything Prefect's periodic work does up to `now`, in time order: the
        proactive runs due (each at its own time), the followers whose leader never
        came, the sweep of closed buckets. `held_back`: `now` is the wall clock of a
        stream, and each run is evaluated `lag()` earlier, as Prefect's is."""
        out: list[Firing] = []
        while True:
            moment = self._next_moment(now)
            if moment is None:
                break
            self._take_lost(moment, out)
            while self._runs and self._runs[0][0] <= moment:
                _, _, _, leaf = heapq.heappop(self._runs)
                if leaf.next_run != moment:
                    continue  # stale: rescheduled or unloaded since
                as_of = moment - (self.lag() if held_back else 0.0)
                after = self._proactive(leaf, as_of, moment, out)
                # A run due already waits for the loop's next turn, as in Prefect.
                self._schedule(leaf, after if after > moment else moment + LOOP)
            self._sweep(moment, held_back)
        self._take_lost(now, out)
        self._sweep(now, held_back)
        return out

    def _next_moment(self, now: float) -> float | None:
        runs = self._runs
        while runs and runs[0][3].next_run != runs[0][0]:
            heapq.heappop(runs)
        moments = [f.received + LOOKBACK for f in self._waiting.values()]
        if runs:
            moments.append(runs[0][0])
        first = min(moments, default=None)
        return first if first is not None and first <= now else None

    def _take_lost(self, now: float, out: list[Firing]) -> None:
        """Followers whose leader has not come in LOOKBACK, in the order they occurred
        (Prefect's periodic evaluation)."""
        lost = [f for f in self._waiting.values() if f.received + LOOKBACK <= now]
        for follower in sorted(lost, key=lambda f: f.at):
            if self._waiting.pop(follower.event["id"], None) is not None:
                others = self._leaders.get(follower.event["follows"], [])
                if follower.event["id"] in others:
                    others.remove(follower.event["id"])
                if not others:
                    self._leaders.pop(follower.event["follows"], None)
                self._tick_clock(follower.at, now)
                self._streamed(follower.event, follower.causes, follower.at, now, 0, out)

    def _sweep(self, now: float, held_back: bool) -> None:
        """The sweeps of Prefect's periodic evaluation, after the proactive runs of the
        same moment (a window is evaluated before it is swept): closed buckets, held
        events, and the ids remembered for causal order."""
        as_of = now - (self.lag() if held_back else 0.0)
        horizon = now - SEEN_FOR
        if self._seen and next(iter(self._seen.values())) < horizon:
            self._seen = {i: t for i, t in self._seen.items() if t >= horizon}
        sweeps = self._sweeps
        while sweeps and sweeps[0][0] + SWEEP_AFTER <= as_of:
            _, _, leaf, key, bucket = heapq.heappop(sweeps)
            if leaf.buckets.get(key) is bucket:
                self._remove(leaf, key)
        held = self._held_sweeps
        while held and held[0][0] <= now:
            _, _, leaf, key = heapq.heappop(held)
            self._sweep_held(leaf, key, now)

    def _leaves(self) -> Iterator[_Leaf]:
        for rule in self.rules.values():
            yield from rule.leaves

    def windows(self) -> list[Window]:
        return sorted(
            (
                Window(
                    leaf.rule.automation,
                    leaf.path.rstrip(".") or "trigger",
                    key,
                    leaf.trigger.posture,
                    bucket.start,
                    bucket.end,
                    max(bucket.count, 0),
                    leaf.threshold,
                )
                for leaf in self._leaves()
                for key, bucket in leaf.buckets.items()
            ),
            key=lambda w: (w.end, w.automation, w.trigger, w.key),
        )

    # -- Prefect's algorithm

    def _react(
        self, event: Event, causes: frozenset[str], at: float, now: float, out: list[Firing]
    ) -> None:
        name = event["event"]
        leaves = self._by_name.get(name)
        if leaves is None:
            leaves = self._by_name[name] = [
                leaf
                for rule in self.rules.values()
                for leaf in rule.leaves
                if leaf.interested(name)
            ]
        self._causes = causes
        tested: dict[Spec, bool] = {}
        related: dict[Spec, bool] = {}
        for leaf in leaves:
            if leaf.rule.automation in causes or at < leaf.rule.enabled_at:
                continue
            if leaf.covers(event, tested, related):
                self._react_leaf(leaf, event, name, at, now, out)
        self._causes = frozenset()

    def _react_leaf(
        self, leaf: _Leaf, event: Event, name: str, at: float, now: float, out: list[Firing]
    ) -> None:
        """Prefect's `reactive_evaluation` of one trigger: `at` is the event's time,
        `now` when it is processed (the time of the firings)."""
        key = leaf.key(event)
        expects = leaf.expects(name)
        bucket: _Bucket | None = None
        if leaf.has_after and leaf.starts_after(name):
            # An event both in `after` and `expect` arms the key and does not count
            # itself: the bucket starts at -1 (Prefect's nebula#4201).
            bucket = self._ensure(leaf, key, at, at + leaf.within, event, -1 if expects else 0)
        if bucket is None and not leaf.has_after and expects:
            bucket = self._ensure(leaf, key, at - LOOKBACK, at + leaf.within, event, 0)
        if not expects:
            return
        if not leaf.reactive and (leaf, key) in self._tripped:
            # The expected event came back after a proactive firing: resolved.
            tripped = self._tripped.pop((leaf, key))
            self._fire(leaf, key, now, event, out, "Resolved", tripped)
        if bucket is None:
            if leaf.holds and not self._hold(leaf, key, event, at, now):
                return  # held before: counted already
            bucket = leaf.buckets.get(key)
            if bucket is None:
                return
        self._evaluate(leaf, key, bucket, at, now, event, out)

    def _proactive(self, leaf: _Leaf, as_of: float, now: float, out: list[Firing]) -> float:
        """Prefect's `proactive_evaluation` of one trigger as of `as_of` (run at `now`):
        the time of its next run."""
        run_again = as_of + leaf.within
        if leaf.always_armed and () not in leaf.buckets:
            self._start(leaf, (), as_of, as_of + leaf.within, 0, None)
        for key in list(leaf.satisfied):
            self._remove(leaf, key)  # enough events came: the key is done with
        ends, due = leaf.ends, []
        while ends and ends[0][0] <= as_of:
            _, _, key, bucket = heapq.heappop(ends)
            if leaf.buckets.get(key) is bucket:
                due.append((bucket.start, key, bucket))
        for _, key, bucket in sorted(due, key=lambda item: (item[0], item[1])):
            self._evaluate(leaf, key, bucket, as_of, now, None, out)
        while ends and leaf.buckets.get(ends[0][2]) is not ends[0][3]:
            heapq.heappop(ends)
        if ends and as_of < ends[0][0] < run_again:
            run_again = ends[0][0]
        return run_again

    def _evaluate(
        self,
        leaf: _Leaf,
        key: Key,
        bucket: _Bucket,
        at: float,
        now: float,
        event: Event | None,
        out: list[Firing],
    ) -> None:
        """Prefect's `evaluate`, case for case; `at` is the time evaluated."""
        count = 1 if event is not None else 0
        if at < bucket.start:
            return  # a late event, or one inside a debounce window: ignored
        previous = bucket.last_event
        if count and (leaf.immediate or bucket.start <= at < bucket.end):
            self._increment(leaf, key, bucket, event)
            count = 0
        ready = leaf.reactive or bucket.end <= at
        meets = leaf.meets_threshold(bucket.count)
        if ready and meets:
            self._fire(leaf, key, now, event or bucket.last_event, out, "Triggered", bucket)
            self._remove(leaf, key)
        elif at < bucket.end:
            if (
                event is not None
                and not leaf.reactive
                and not meets
                and leaf.starts_after(event["event"])
                and leaf.expects(event["event"])
            ):
                # The heartbeat pattern: an event both in `after` and `expect` of a
                # proactive trigger that has had enough events restarts the window. An
                # `expect`-only event that raced it stays the window's context.
                self._remove(leaf, key)
                last = event
                if (
                    previous is not None
                    and leaf.expects(previous["event"])
                    and not leaf.starts_after(previous["event"])
                    and timestamp(previous["occurred"]) >= at
                ):
                    last = previous
                self._start(leaf, key, at, at + leaf.within, 0, last)
            return
        if leaf.has_after or leaf.within == 0:
            self._remove(leaf, key)  # disarmed until the next `after` event
            return
        start = max(bucket.end, at)
        if leaf.reactive and count > 0:
            # The event lies past the window: it opens the next one and is counted there.
            fresh = self._start(leaf, key, start, start + leaf.within, 0, None)
            self._evaluate(leaf, key, fresh, at, now, event, out)
        else:
            self._start(leaf, key, start, start + leaf.within, count, None)

    def _fire(
        self,
        leaf: _Leaf,
        key: Key,
        now: float,
        event: Event | None,
        out: list[Firing],
        state: TriggerState,
        origin: _Bucket | str,
    ) -> None:
        window = origin if isinstance(origin, str) else (origin.start, origin.end)
        firing_id = _firing_id(leaf.ident, key, state, window, event["id"] if event else None)
        if state == "Triggered" and not leaf.reactive and leaf.parent is None:
            self._tripped[leaf, key] = firing_id
        labels = dict(zip(leaf.for_each, key, strict=True))
        self._deliver(leaf, firing_id, state, now, labels, event, out)

    def _deliver(
        self,
        fired: _Leaf | _Node,
        firing_id: str,
        state: TriggerState,
        now: float,
        labels: dict[str, str],
        event: Event | None,
        out: list[Firing],
    ) -> None:
        """A trigger fired: the automation's firing, or a child firing of its parent."""
        if fired.parent is None:
            causes = self._causes | {fired.rule.automation}
            out.append(Firing(firing_id, fired.rule.automation, state, now, labels, event, causes))
        else:
            self._child_fired(fired.parent, fired.path, firing_id, now, labels, event, out)

    def _child_fired(
        self,
        node: _Node,
        child_path: str,
        firing_id: str,
        now: float,
        labels: dict[str, str],
        event: Event | None,
        out: list[Firing],
    ) -> None:
        index = int(child_path[len(node.path) :].split(".", 1)[0])
        if node.expected == 1:
            composite = _firing_id(node.ident, firing_id)
            self._deliver(node, composite, "Triggered", now, labels, event, out)
            return
        slots = node.slots
        if node.within is not None:
            horizon = now - node.within
            for old in [i for i, slot in slots.items() if slot.triggered < horizon]:
                del slots[old]
        slots[index] = _Slot(firing_id, now, event)  # one slot per child: the newest wins
        if node.ready():
            parent_id = _firing_id(node.ident, sorted(s.firing for s in slots.values()))
            slots.clear()
            self._deliver(node, parent_id, "Triggered", now, labels, event, out)

    # -- buckets and held events

    def _ensure(
        self, leaf: _Leaf, key: Key, start: float, end: float, event: Event, count: int
    ) -> _Bucket:
        """The key's bucket as it is, or a new one (Prefect's `ensure_bucket`)."""
        bucket = leaf.buckets.get(key)
        if bucket is not None:
            return bucket
        return self._start(leaf, key, start, end, count, event)

    def _start(
        self,
        leaf: _Leaf,
        key: Key,
        start: float,
        end: float,
        count: int,
        event: Event | None,
        *,
        with_held: bool = True,
    ) -> _Bucket:
        if leaf.holds and with_held:
            count += leaf.held_in(key, start, end)
        bucket = leaf.buckets[key] = _Bucket(start, end, count, event)
        self._sequence += 1
        if not leaf.immediate:  # SPEC 5.2: "any time after" has no hidden limit
            heapq.heappush(self._sweeps, (end, self._sequence, leaf, key, bucket))
        if not leaf.reactive:
            heapq.heappush(leaf.ends, (end, self._sequence, key, bucket))
            if count >= leaf.threshold:
                leaf.satisfied.add(key)
            else:
                leaf.satisfied.discard(key)  # the bucket it replaces may have been
        return bucket

    def _increment(self, leaf: _Leaf, key: Key, bucket: _Bucket, event: Event | None) -> None:
        bucket.count += 1
        if event is not None:
            bucket.last_event = event
        if not leaf.reactive and bucket.count >= leaf.threshold:
            leaf.satisfied.add(key)

    def _remove(self, leaf: _Leaf, key: Key) -> None:
        leaf.buckets.pop(key, None)
        leaf.satisfied.discard(key)

    def _schedule(self, leaf: _Leaf, at: float) -> None:
        leaf.next_run = at
        self._sequence += 1
        heapq.heappush(self._runs, (at, self._order.get(leaf, 0), self._sequence, leaf))

    def _hold(self, leaf: _Leaf, key: Key, event: Event, at: float, now: float) -> bool:
        """Hold an `expect`-only event for the buckets that open later over it (Prefect's
        `hold_expect_event`); False if it was held before. Kept: the events up to a
        horizon behind the newest, and in each `within`-wide slot the first and last
        `threshold` (enough for any window to reach the threshold)."""
        held = leaf.held.setdefault(key, [])
        if any(event_id == event["id"] for _, event_id, _ in held):
            return False
        held.append((at, event["id"], now))
        if len(held) == 1:
            self._held_sweep(leaf, key, now + HELD_FOR)
        newest = max(occurred for occurred, _, _ in held)
        horizon = newest - max(HELD_FOR, leaf.within)
        held[:] = [item for item in held if item[0] >= horizon]
        width = leaf.within
        slot = at // width * width
        in_slot = sorted(
            (item for item in held if slot <= item[0] < slot + width),
            key=lambda item: (item[0], item[1]),
        )
        keep = (
            {*in_slot[: leaf.threshold], *in_slot[-leaf.threshold :]} if leaf.threshold else set()
        )
        held[:] = [item for item in held if not (slot <= item[0] < slot + width) or item in keep]
        return True

    def _sweep_held(self, leaf: _Leaf, key: Key, now: float) -> None:
        """Prefect's `sweep_held_events` for one key: what was held longer than HELD_FOR
        goes, unless the key has a bucket that is still open (then at its end)."""
        if key not in leaf.held:
            return
        bucket = leaf.buckets.get(key)
        if bucket is not None and bucket.end > now:
            self._held_sweep(leaf, key, bucket.end)
            return
        kept = [item for item in leaf.held[key] if item[2] >= now - HELD_FOR]
        if kept:
            leaf.held[key] = kept
            # Kept at exactly its age: it goes at the loop's next turn, as in Prefect.
            due = min(item[2] for item in kept) + HELD_FOR
            self._held_sweep(leaf, key, due if due > now else now + LOOP)
        else:
            del leaf.held[key]

    def _held_sweep(self, leaf: _Leaf, key: Key, at: float) -> None:
        self._sequence += 1
        heapq.heappush(self._held_sweeps, (at, self._sequence, leaf, key))

    # -- persistence

    def dump(self) -> dict[str, Any]:
        """The open windows, held events, runs, composite slots, tripped keys and the
        stream's ordering and clock, as JSON-able data."""
        leaves = list(self._leaves())
        return {
            "fingerprints": {a: rule.fingerprint for a, rule in self.rules.items()},
            "buckets": [
                [leaf.rule.automation, leaf.path, list(key), b.start, b.end, b.count, b.last_event]
                for leaf in leaves
                for key, b in leaf.buckets.items()
            ],
            "held": [
                [leaf.rule.automation, leaf.path, list(key), [list(item) for item in held]]
                for leaf in leaves
                for key, held in leaf.held.items()
            ],
            "runs": [
                [leaf.rule.automation, leaf.path, leaf.next_run]
                for leaf in leaves
                if leaf.next_run is not None
            ],
            "slots": [
                [rule.automation, path, index, s.firing, s.triggered, s.event]
                for rule in self.rules.values()
                for path, node in rule.nodes.items()
                for index, s in node.slots.items()
            ],
            "tripped": [
                [leaf.rule.automation, leaf.path, list(key), firing]
                for (leaf, key), firing in self._tripped.items()
            ],
            "stream": {
                "clock": [self._clock, self._clock_updated],
                "seen": self._seen,
                "waiting": [
                    [f.event, f.received, f.at, sorted(f.causes)] for f in self._waiting.values()
                ],
            },
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Windows from `dump()`, for the automations loaded now whose triggers are
        unchanged since (a changed trigger starts over, as in Prefect)."""
        same = {
            a
            for a, fingerprint in data.get("fingerprints", {}).items()
            if a in self.rules and self.rules[a].fingerprint == fingerprint
        }
        leaves = {
            (r.automation, leaf.path): leaf
            for r in self.rules.values()
            if r.automation in same
            for leaf in r.leaves
        }
        for automation, path, key, start, end, count, last in data.get("buckets", []):
            leaf = leaves.get((automation, path))
            if leaf is not None:
                self._start(leaf, tuple(key), start, end, count, last, with_held=False)
        for automation, path, key, held in data.get("held", []):
            leaf = leaves.get((automation, path))
            if leaf is not None:
                leaf.held[tuple(key)] = [(o, i, h) for o, i, h in held]
                self._held_sweep(leaf, tuple(key), min(h for _, _, h in held) + HELD_FOR)
        for automation, path, next_run in data.get("runs", []):
            leaf = leaves.get((automation, path))
            if leaf is not None:
                self._schedule(leaf, next_run)
        for automation, path, index, firing, triggered, event in data.get("slots", []):
            rule = self.rules.get(automation)
            if automation in same and rule is not None and path in rule.nodes:
                rule.nodes[path].slots[index] = _Slot(firing, triggered, event)
        for automation, path, key, firing in data.get("tripped", []):
            leaf = leaves.get((automation, path))
            if leaf is not None:
                self._tripped[leaf, tuple(key)] = firing
        stream = data.get("stream", {})
        self._clock, self._clock_updated = stream.get("clock", [None, None])
        self._seen = dict(stream.get("seen", {}))
        for event, received, at, causes in stream.get("waiting", []):
            self._waiting[event["id"]] = _Follower(event, received, at, frozenset(causes))
            self._leaders.setdefault(event["follows"], []).append(event["id"])


def next_due(dumped: dict[str, Any]) -> float | None:
    """When an evaluator in the state `dumped` next has periodic work (a proactive run,
    a follower taken as lost): the daemon's alarm clock."""
    runs = [run for _, _, run in dumped.get("runs", [])]
    lost = [
        received + LOOKBACK for _, received, _, _ in dumped.get("stream", {}).get("waiting", [])
    ]
    return min([*runs, *lost], default=None)
