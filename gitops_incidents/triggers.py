"""Prefect's trigger semantics (SPEC 5.1-5.2) as a pure evaluator: events and
a clock in, firings out. No I/O; the engine keeps `dump()` between runs.

Windows are Prefect's "buckets": one open bucket per trigger and key, with a
start, an end and a count. `_evaluate` follows
`prefect.server.events.triggers.evaluate` case for case. Where Prefect's
server polls (proactive deadlines, the sweep of expired buckets), this
evaluator keeps a heap of due times and acts on each when the clock passes it.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import heapq
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gitops_incidents.events import LATEST, uuid5
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


# -- matching (SPEC 5.1) -----------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def glob(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether any of the full-string, case-sensitive globs (`*`, `?`, `[..]`) matches."""
    exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
    wild = [fnmatch.translate(p) for p in patterns if p not in exact]
    if not wild:
        return exact.__contains__
    regex = re.compile("|".join(wild))
    return lambda value: value in exact or regex.match(value) is not None


class Spec:
    """A resource specification: AND across labels, OR within a label's values; a
    leading `!` negates a value; a missing label never matches, negated or not."""

    def __init__(self, spec: dict[str, str | list[str]]) -> None:
        self.labels: list[tuple[str, Callable[[str], bool], list[Callable[[str], bool]]]] = []
        for name, values in spec.items():
            listed = [values] if isinstance(values, str) else values
            positive = glob(tuple(v for v in listed if not v.startswith("!")))
            negated = [glob((v[1:],)) for v in listed if v.startswith("!")]
            self.labels.append((name, positive, negated))

    def __bool__(self) -> bool:
        return bool(self.labels)

    def matches(self, resource: dict[str, Any]) -> bool:
        for name, positive, negated in self.labels:
            value = resource.get(name)
            if value is None:
                return False
            if positive(value):
                continue
            # OR within the list: a negated value the label does not match also counts.
            for test in negated:
                if not test(value):
                    break
            else:
                return False
        return True

    def any_matches(self, resources: list[dict[str, Any]]) -> bool:
        return any(self.matches(resource) for resource in resources)


@functools.lru_cache(maxsize=4096)
def _spec(canonical: str) -> Spec:
    return Spec(json.loads(canonical))


def spec(raw: dict[str, str | list[str]]) -> Spec:
    """One Spec object per distinct specification, so an event tests each once."""
    return _spec(json.dumps(raw, sort_keys=True))


def find_label(event: Event, label: str) -> str | None:
    """A label of the primary resource, or `related:<role>:<label>` of the first
    related resource in that role (Prefect's `find_resource_label`)."""
    if label.startswith("related:"):
        _, role, inner = [*label.split(":", 2), "", ""][:3]
        for related in event.get("related") or ():
            if related.get("prefect.resource.role") == role:
                value = related.get(inner)
                return value if isinstance(value, str) else None
        return None
    value = event["resource"].get(label)
    return value if isinstance(value, str) else None


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
    """An event trigger, compiled for evaluation."""

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
        self.always_armed = not self.reactive and not trigger.after and not trigger.for_each

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

    def ready(self, slots: dict[int, _Slot]) -> bool:
        if self.sequence:
            ordered = sorted(slots.items(), key=lambda item: (item[1].triggered, item[0]))
            return [index for index, _ in ordered] == list(range(self.expected))
        return len(slots) >= self.expected


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


# -- the evaluator -----------------------------------------------------------------------


@dataclass
class Evaluator:
    """Feed it events in arrival order and advance its clock; it returns firings."""

    rules: dict[str, _Rule] = field(default_factory=dict)
    _buckets: dict[tuple[_Leaf, Key], _Bucket] = field(default_factory=dict)
    _slots: dict[_Node, dict[int, _Slot]] = field(default_factory=dict)
    _tripped: dict[tuple[_Leaf, Key], str] = field(default_factory=dict)
    _due: list[tuple[float, int, _Leaf, Key]] = field(default_factory=list)
    _sequence: int = 0
    _by_name: dict[str, list[_Leaf]] = field(default_factory=dict)
    _causes: frozenset[str] = frozenset()

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
            if leaf.always_armed:
                self._start_bucket(leaf, (), enabled_at, enabled_at + leaf.within, 0, None)

    def unload(self, automation_id: str) -> None:
        rule = self.rules.pop(automation_id, None)
        if rule is None:
            return
        self._by_name.clear()
        leaves, nodes = set(rule.leaves), set(rule.nodes.values())
        self._buckets = {k: b for k, b in self._buckets.items() if k[0] not in leaves}
        self._tripped = {k: f for k, f in self._tripped.items() if k[0] not in leaves}
        self._slots = {n: s for n, s in self._slots.items() if n not in nodes}
        self._due = [entry for entry in self._due if entry[2] not in leaves]
        heapq.heapify(self._due)

    # -- events and the clock

    def feed(
        self, event: Event, causes: frozenset[str] = frozenset(), at: float | None = None
    ) -> list[Firing]:
        """Firings due to `event`, after the deadlines that passed before it.

        `causes`: the automations whose actions produced the event; none of them
        acts on it, so that no automation re-triggers itself without bound. `at`:
        the event's time for the windows, if not its `occurred` (a bounded one).
        """
        now = timestamp(event["occurred"]) if at is None else at
        firings = self.advance(now)
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
            if leaf.rule.automation in causes or now < leaf.rule.enabled_at:
                continue
            if leaf.covers(event, tested, related):
                self._react(leaf, event, name, now, firings)
        self._causes = frozenset()
        return firings

    def advance(self, now: float) -> list[Firing]:
        """Firings of the proactive deadlines that `now` has passed; sweeps expired windows."""
        firings: list[Firing] = []
        due = self._due
        while due and due[0][0] <= now:
            _, _, leaf, key = heapq.heappop(due)
            bucket = self._buckets.get((leaf, key))
            if bucket is None or self._due_time(leaf, bucket) > now:
                continue  # stale: the bucket was removed or replaced since
            if leaf.reactive:
                del self._buckets[leaf, key]  # swept: it can no longer fire
                continue
            if bucket.count >= leaf.threshold:
                # Enough events arrived: no firing, and (as Prefect's proactive
                # evaluation does) the bucket is removed; an always-armed trigger
                # opens its next window.
                del self._buckets[leaf, key]
                if leaf.always_armed:
                    self._start_bucket(leaf, (), now, now + leaf.within, 0, None)
                continue
            self._evaluate(leaf, key, bucket, now, None, firings)
        return firings

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
                for (leaf, key), bucket in self._buckets.items()
            ),
            key=lambda w: (w.end, w.automation, w.trigger, w.key),
        )

    # -- Prefect's algorithm

    def _react(self, leaf: _Leaf, event: Event, name: str, now: float, out: list[Firing]) -> None:
        key = leaf.key(event)
        expects = leaf.expects(name)
        bucket: _Bucket | None = None
        if leaf.has_after and leaf.starts_after(name):
            # An event both in `after` and `expect` arms the key and does not count
            # itself: the bucket starts at -1 (Prefect's nebula#4201).
            bucket = self._ensure_bucket(
                leaf, key, now, now + leaf.within, event, -1 if expects else 0
            )
        if bucket is None and not leaf.has_after and expects:
            bucket = self._ensure_bucket(leaf, key, now - LOOKBACK, now + leaf.within, event, 0)
        if not expects:
            return
        if not leaf.reactive and (leaf, key) in self._tripped:
            # The expected event came back after a proactive firing: resolved.
            tripped = self._tripped.pop((leaf, key))
            self._fire(leaf, key, now, event, out, "Resolved", tripped)
        if bucket is None:
            bucket = self._buckets.get((leaf, key))
            if bucket is None:
                return
        self._evaluate(leaf, key, bucket, now, event, out)

    def _evaluate(
        self,
        leaf: _Leaf,
        key: Key,
        bucket: _Bucket,
        now: float,
        event: Event | None,
        out: list[Firing],
    ) -> None:
        count = 1 if event is not None else 0
        if now < bucket.start:
            return  # a late event, or one inside a debounce window: ignored
        if count and (leaf.immediate or bucket.start <= now < bucket.end):
            bucket.count += count
            bucket.last_event = event
            count = 0
        ready = leaf.reactive or bucket.end <= now
        if ready and leaf.meets_threshold(bucket.count):
            self._fire(leaf, key, now, event or bucket.last_event, out, "Triggered", bucket)
            self._buckets.pop((leaf, key), None)
        elif now < bucket.end:
            return
        if leaf.has_after:
            self._buckets.pop((leaf, key), None)  # disarmed until the next `after` event
            return
        if leaf.within == 0:
            self._buckets.pop((leaf, key), None)
            return
        start = max(bucket.end, now)
        if leaf.reactive and count > 0:
            # The event lies past the window: it opens the next one and is counted there.
            fresh = self._start_bucket(leaf, key, start, start + leaf.within, 0, bucket.last_event)
            self._evaluate(leaf, key, fresh, now, event, out)
        else:
            self._start_bucket(leaf, key, start, start + leaf.within, count, bucket.last_event)

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
        slots = self._slots.setdefault(node, {})
        if node.within is not None:
            horizon = now - node.within
            for old in [i for i, slot in slots.items() if slot.triggered < horizon]:
                del slots[old]
        slots[index] = _Slot(firing_id, now, event)  # one slot per child: the newest wins
        if node.ready(slots):
            parent_id = _firing_id(node.ident, sorted(s.firing for s in slots.values()))
            del self._slots[node]
            self._deliver(node, parent_id, "Triggered", now, labels, event, out)

    # -- buckets

    def _ensure_bucket(
        self, leaf: _Leaf, key: Key, start: float, end: float, event: Event, count: int
    ) -> _Bucket:
        bucket = self._buckets.get((leaf, key))
        if bucket is not None:
            bucket.last_event = event
            return bucket
        return self._start_bucket(leaf, key, start, end, count, event)

    def _start_bucket(
        self, leaf: _Leaf, key: Key, start: float, end: float, count: int, event: Event | None
    ) -> _Bucket:
        bucket = self._buckets[leaf, key] = _Bucket(start, end, count, event)
        if not leaf.immediate:
            self._sequence += 1
            heapq.heappush(self._due, (self._due_time(leaf, bucket), self._sequence, leaf, key))
        return bucket

    @staticmethod
    def _due_time(leaf: _Leaf, bucket: _Bucket) -> float:
        return bucket.end if not leaf.reactive else bucket.end + SWEEP_AFTER

    # -- persistence

    def dump(self) -> dict[str, Any]:
        """The open windows, composite slots and tripped keys, as JSON-able data."""
        return {
            "fingerprints": {a: rule.fingerprint for a, rule in self.rules.items()},
            "buckets": [
                [leaf.rule.automation, leaf.path, list(key), b.start, b.end, b.count, b.last_event]
                for (leaf, key), b in self._buckets.items()
            ],
            "slots": [
                [node.rule.automation, node.path, index, s.firing, s.triggered, s.event]
                for node, slots in self._slots.items()
                for index, s in slots.items()
            ],
            "tripped": [
                [leaf.rule.automation, leaf.path, list(key), firing]
                for (leaf, key), firing in self._tripped.items()
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Windows from `dump()`, for the automations loaded now whose triggers are
        unchanged since (a changed trigger starts over, as in Prefect)."""
        same = {
            a
            for a, fingerprint in data.get("fingerprints", {}).items()
            if a in self.rules and self.rules[a].fingerprint == fingerprint
        }
        leaves = {(r.automation, leaf.path): leaf for r in self.rules.values() for leaf in r.leaves}
        nodes = {
            (r.automation, p): node for r in self.rules.values() for p, node in r.nodes.items()
        }
        for restored in leaves.values():
            if restored.rule.automation in same:
                self._buckets.pop((restored, ()), None)  # the always-armed window is restored
        for automation, path, key, start, end, count, last in data.get("buckets", []):
            leaf = leaves.get((automation, path))
            if automation in same and leaf is not None:
                self._start_bucket(leaf, tuple(key), start, end, count, last)
        for automation, path, index, firing, triggered, event in data.get("slots", []):
            node = nodes.get((automation, path))
            if automation in same and node is not None:
                self._slots.setdefault(node, {})[index] = _Slot(firing, triggered, event)
        for automation, path, key, firing in data.get("tripped", []):
            leaf = leaves.get((automation, path))
            if automation in same and leaf is not None:
                self._tripped[leaf, tuple(key)] = firing
