"""The trigger evaluator against Prefect's semantics (SPEC 5.1-5.2).

Table-driven: each case is a trigger, a stream of events and clock ticks, and
the firings expected, as (time, automation state, key labels). Cases marked
"Prefect:" port a test of PrefectHQ/prefect tests/events/server/triggers/.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, NamedTuple

import pytest

from gitops_incidents.matching import Spec, find_label, glob
from gitops_incidents.models import Automation
from gitops_incidents.triggers import Evaluator, Firing, iso, timestamp

T0 = 1_800_000_000.0
_ids = itertools.count()


def ev(
    name: str,
    at: float,
    resource: str = "prefect.flow-run.A",
    related: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An event `at` seconds after T0."""
    return {
        "id": f"event-{next(_ids)}",
        "occurred": iso(T0 + at),
        "event": name,
        "resource": {"prefect.resource.id": resource, **(labels or {})},
        "related": related or [],
        "payload": {},
    }


def tick(at: float) -> float:
    return T0 + at


def automation(trigger: dict[str, Any]) -> Automation:
    return Automation.model_validate(
        {"name": "test", "trigger": trigger, "actions": [{"type": "do-nothing"}]}
    )


def run(
    trigger: dict[str, Any], stream: list[dict[str, Any] | float], enabled_at: float = -3600
) -> list[tuple[float, str, dict[str, str]]]:
    evaluator = Evaluator()
    evaluator.load("a", automation(trigger), T0 + enabled_at)
    firings: list[Firing] = []
    for item in stream:
        firings.extend(step(evaluator, item))
    return [(f.triggered - T0, f.state, f.labels) for f in firings]


def step(evaluator: Evaluator, item: dict[str, Any] | float) -> list[Firing]:
    """A clock tick, or an event of history: the clock moves to its time first."""
    if isinstance(item, float | int):
        return evaluator.advance(tick(item))
    return evaluator.advance(timestamp(item["occurred"])) + evaluator.feed(item)


FLOW_RUN = {"prefect.resource.id": "prefect.flow-run.*"}


class Case(NamedTuple):
    name: str
    trigger: dict[str, Any]
    stream: list[dict[str, Any] | float]
    expected: list[float]  # when the firings happen, seconds after T0
    enabled_at: float = -3600  # when the automation was enabled, seconds after T0


CASES: list[tuple[Any, ...]] = [
    # -- reactive, no after
    (
        "within 0 fires on every expected event",
        {"expect": ["x"], "posture": "Reactive"},
        [ev("x", 0), ev("x", 1), ev("y", 2), ev("x", 3)],
        [0, 1, 3],
    ),
    (
        "Prefect: rapid-fire events without threshold, within 60: one firing per window",
        {"expect": ["x"], "posture": "Reactive", "within": 60},
        [ev("x", 0), ev("x", 1), ev("x", 30), ev("x", 59), ev("x", 61), ev("x", 62)],
        [0, 61],
    ),
    (
        "the next window starts where the current one ends (debounce)",
        {"expect": ["x"], "posture": "Reactive", "within": 60},
        [ev("x", 0), ev("x", 60), ev("x", 119), ev("x", 121)],
        [0, 60, 121],
    ),
    (
        "Prefect: rapid-fire events with threshold 3 fire once the third arrives",
        {"expect": ["x"], "posture": "Reactive", "threshold": 3, "within": 60},
        [ev("x", 0), ev("x", 1), ev("x", 2), ev("x", 3), ev("x", 4)],
        [2],
    ),
    (
        "threshold not met within the window: no firing, the count starts over",
        {"expect": ["x"], "posture": "Reactive", "threshold": 2, "within": 10},
        [ev("x", 0), ev("x", 11), ev("x", 15)],
        [15],
    ),
    (
        "Prefect: an out-of-order event within the 15-minute look-back counts",
        {"expect": ["x"], "posture": "Reactive", "threshold": 2, "within": 60},
        [ev("x", 0), ev("x", -600)],
        [-600],
    ),
    (
        "Prefect: an event from before the window is ignored",
        {"expect": ["x"], "posture": "Reactive", "threshold": 2, "within": 60},
        [ev("x", 0), ev("x", -1200), ev("x", 5)],
        [5],
    ),
    (
        "Prefect: a late event for a window that already fired is ignored",
        {"expect": ["x"], "posture": "Reactive", "within": 60},
        [ev("x", 100), ev("x", 50), ev("x", 120)],
        [100],
    ),
    (
        "an empty expect matches every covered event",
        {"match": FLOW_RUN, "posture": "Reactive"},
        [ev("a", 0), ev("b", 1), ev("c", 2, resource="prefect.deployment.D")],
        [0, 1],
    ),
    # -- reactive with after
    (
        "after arms, expect fires, then the key is disarmed",
        {"after": ["start"], "expect": ["x"], "posture": "Reactive"},
        [ev("x", 0), ev("start", 1), ev("x", 2), ev("x", 3), ev("start", 4), ev("x", 5)],
        [2, 5],
    ),
    (
        "reactive with after and within 0: any time after, no hidden limit",
        {"after": ["start"], "expect": ["x"], "posture": "Reactive"},
        [ev("start", 0), ev("x", 86400 * 30)],
        [86400 * 30],
    ),
    (
        "reactive with after and a window: an expect event after it does not count",
        {"after": ["start"], "expect": ["x"], "posture": "Reactive", "within": 60},
        [ev("start", 0), ev("x", 90), ev("x", 200)],
        [],
    ),
    (
        "an expired armed window is swept: the next after event arms again",
        {"after": ["start"], "expect": ["x"], "posture": "Reactive", "within": 60},
        [ev("start", 0), ev("start", 200), ev("x", 210)],
        [210],
    ),
    (
        "Prefect: same event in after and expect never reacts immediately",
        {"after": ["x"], "expect": ["x"], "posture": "Reactive"},
        [ev("x", 0), ev("x", 1), ev("x", 2)],
        [],
    ),
    (
        "Prefect: same event in after and expect reacts after the threshold is met",
        {"after": ["x"], "expect": ["x"], "posture": "Reactive", "threshold": 2, "within": 60},
        [ev("x", 0), ev("x", 1), ev("x", 2), ev("x", 3)],
        [2],
    ),
    # -- proactive
    (
        "the heartbeat pattern: each event in both after and expect restarts the window",
        {"after": ["x"], "expect": ["x"], "posture": "Proactive", "within": 30},
        [ev("x", 0), ev("x", 10), ev("x", 35), 100.0],
        [65],
    ),
    (
        "the heartbeat pattern: a terminal expect-only event that raced the last beat",
        {"after": ["beat"], "expect": ["beat", "done"], "posture": "Proactive", "within": 30},
        [ev("beat", 0), ev("done", 20), ev("beat", 15), 100.0],
        [],
    ),
    (
        "Prefect: same event in after and expect, proactive, fires",
        {"after": ["x"], "expect": ["x"], "posture": "Proactive", "within": 30},
        [ev("x", 0), 29.0, 30.0, 60.0],
        [30],
    ),
    (
        "Prefect: proactive SLA, running but not completed within 60 s, per flow run",
        {
            "match": FLOW_RUN,
            "after": ["prefect.flow-run.Running"],
            "expect": ["prefect.flow-run.Completed"],
            "for_each": ["prefect.resource.id"],
            "posture": "Proactive",
            "within": 60,
        },
        [
            ev("prefect.flow-run.Running", 0, "prefect.flow-run.A"),
            ev("prefect.flow-run.Running", 5, "prefect.flow-run.B"),
            ev("prefect.flow-run.Completed", 30, "prefect.flow-run.A"),
            100.0,
        ],
        [65],  # at B's deadline: Prefect's next run is due at the end of B's window
    ),
    (
        "a proactive deadline fires at its time once the next event's time passes it",
        {"after": ["start"], "expect": ["done"], "posture": "Proactive", "within": 60},
        [ev("start", 0), ev("other", 500)],
        [60],
    ),
    (
        "proactive without after or for_each: always armed, rolling windows",
        {"expect": ["heartbeat"], "posture": "Proactive", "within": 60},
        [60.0, 120.0, 180.0],
        [60, 120, 180],
        0,  # enabled at T0, where the first window starts
    ),
    (
        "always armed: after a window with enough events, the next opens at the next run",
        {"expect": ["heartbeat"], "posture": "Proactive", "within": 60},
        [ev("heartbeat", 10), 60.0, 120.0, 180.0, ev("heartbeat", 190), 360.0],
        [180, 360],  # the run at 60 closes [0, 60); the one at 120 opens [120, 180)
        0,
    ),
    (
        "proactive, threshold 2: one event in the window is not enough",
        {"expect": ["x"], "posture": "Proactive", "threshold": 2, "within": 60},
        [ev("x", 10), ev("x", 20), 60.0, ev("x", 70), 140.0],
        [130],  # x at 70 opened [70 - 15 min, 130) with a count of 1
        0,
    ),
    (
        "threshold 0, reactive: every covered event fires",
        {"expect": ["x"], "posture": "Reactive", "threshold": 0},
        [ev("x", 0), ev("y", 1), ev("x", 2)],
        [0, 2],
    ),
    (
        "threshold 0, proactive: never fires (fewer than no events cannot happen)",
        {"expect": ["x"], "posture": "Proactive", "threshold": 0, "within": 10},
        [ev("x", 5), 100.0],
        [],
        0,
    ),
]


@pytest.mark.parametrize("case", [pytest.param(Case(*c), id=c[0]) for c in CASES])
def test_event_trigger(case: Case) -> None:
    fired = run(case.trigger, case.stream, enabled_at=case.enabled_at)
    assert [at for at, state, _ in fired if state == "Triggered"] == case.expected


def streamed(
    trigger: dict[str, Any], arrivals: list[tuple[float, dict[str, Any] | None]]
) -> list[float]:
    """Triggered firing times of events that arrive (`ingest`, Prefect's stream) at the
    given times, seconds after T0; None: the clock alone reaches that time."""
    evaluator = Evaluator()
    evaluator.load("a", automation(trigger), T0 - 3600)
    firings: list[Firing] = []
    for at, event in arrivals:
        firings.extend(evaluator.advance(tick(at), held_back=True))
        if event is not None:
            firings.extend(evaluator.feed(event, received=tick(at)))
    return [f.triggered - T0 for f in firings if f.state == "Triggered"]


def follower(name: str, at: float, follows: str | None, id: str) -> dict[str, Any]:
    return {**ev(name, at), "id": id, **({"follows": follows} if follows else {})}


RUNNING_THEN_COMPLETED = {
    "after": ["prefect.flow-run.Running"],
    "expect": ["prefect.flow-run.Completed"],
    "for_each": ["prefect.resource.id"],
    "posture": "Reactive",
    "within": 60,
}
SLA = {**RUNNING_THEN_COMPLETED, "posture": "Proactive"}

STREAMED: list[
    tuple[str, dict[str, Any], list[tuple[float, dict[str, Any] | None]], list[float]]
] = [
    (
        "a follower that arrives before its leader waits for it, then counts",
        RUNNING_THEN_COMPLETED,
        [
            (0, follower("prefect.flow-run.Pending", 0, None, "p")),
            (10, follower("prefect.flow-run.Completed", 30, "r", "c")),
            (20, follower("prefect.flow-run.Running", 5, "p", "r")),
        ],
        [20],  # when the Running arrived and the Completed was taken after it
    ),
    (
        "a follower whose leader never comes is taken 15 minutes after it arrived",
        {**RUNNING_THEN_COMPLETED, "within": 3600},  # its window still open by then
        [
            (0, follower("prefect.flow-run.Running", 0, None, "r")),
            (10, follower("prefect.flow-run.Completed", 10, "lost", "c")),
            (500, None),
            (1000, None),
        ],
        [910],
    ),
    (
        "a lagging stream holds proactive evaluation back: no false alert",
        SLA,
        [
            (100, follower("prefect.flow-run.Running", 0, None, "r")),  # 100 s late
            (130, None),  # 70 s after the Running by the wall clock, 30 s by the stream's
            (140, follower("prefect.flow-run.Completed", 40, None, "c")),
            (400, None),
        ],
        [],
    ),
    (
        "a lagging stream still alerts, a window after its newest event's time",
        SLA,
        [(100, follower("prefect.flow-run.Running", 0, None, "r")), (400, None)],
        [160],  # the wall clock at which the lagging clock reached 60
    ),
]


@pytest.mark.parametrize(
    ("trigger", "arrivals", "expected"),
    [pytest.param(t, a, e, id=name) for name, t, a, e in STREAMED],
)
def test_streamed_events(
    trigger: dict[str, Any],
    arrivals: list[tuple[float, dict[str, Any] | None]],
    expected: list[float],
) -> None:
    assert streamed(trigger, arrivals) == expected


def test_a_window_that_replaces_a_satisfied_one_is_not_removed_with_it() -> None:
    """Found by the differential test (stream 1270 of 2000): an event from the future
    closes a window that had enough events and opens the next at its own time; the
    next proactive run must not take the new window for the old one."""
    trigger = {"expect": ["x"], "posture": "Proactive", "threshold": 2, "within": 120}
    arrivals: list[tuple[float, dict[str, Any] | None]] = [
        (10, ev("x", 10)),
        (20, ev("x", 20)),  # [0, 120) has enough
        (100, ev("x", 150)),  # dated 50 s ahead: [150, 270) with one
        (400, None),
    ]
    assert [at for at in streamed(trigger, arrivals) if at > 0] == [270, 390]


def test_missed_windows_fire_at_their_own_times_whoever_runs_the_engine() -> None:
    """A clock that jumps over many windows (a runner that was down) fires each as the
    evaluator that never stopped would: the same firings, whenever `apply` runs."""
    trigger = {"expect": ["x"], "posture": "Proactive", "within": 60}
    jumped = [at for at, _, _ in run(trigger, [600.0], enabled_at=0)]
    assert jumped == [60, 120, 180, 240, 300, 360, 420, 480, 540, 600]
    ticks: list[dict[str, Any] | float] = [*map(float, range(0, 600, 7)), 600.0]
    ticking = [at for at, _, _ in run(trigger, ticks, enabled_at=0)]
    assert ticking == jumped


def test_for_each_splits_keys_and_labels_the_firing() -> None:
    trigger = {
        "expect": ["x"],
        "for_each": ["related:work-pool:prefect.resource.id", "prefect.resource.name"],
        "posture": "Reactive",
        "threshold": 2,
        "within": 60,
    }
    pool = [{"prefect.resource.id": "prefect.work-pool.p1", "prefect.resource.role": "work-pool"}]
    stream: list[dict[str, Any] | float] = [
        ev("x", 0, related=pool, labels={"prefect.resource.name": "n1"}),
        ev("x", 1, labels={"prefect.resource.name": "n1"}),  # no work pool: key ("", "n1")
        ev("x", 2, related=pool, labels={"prefect.resource.name": "n1"}),
    ]
    assert run(trigger, stream) == [
        (
            2,
            "Triggered",
            {
                "prefect.resource.name": "n1",
                "related:work-pool:prefect.resource.id": "prefect.work-pool.p1",
            },
        )
    ]


def test_proactive_firing_is_resolved_by_the_next_expected_event() -> None:
    trigger = {"expect": ["heartbeat"], "posture": "Proactive", "within": 60}
    fired = run(trigger, [60.0, ev("heartbeat", 70), ev("heartbeat", 80)], enabled_at=0)
    assert [(at, state) for at, state, _ in fired] == [(60, "Triggered"), (70, "Resolved")]


@pytest.mark.parametrize(
    ("patterns", "value", "expected"),
    [
        (("prefect.flow-run.*",), "prefect.flow-run.abc", True),
        (("prefect.flow-run.*",), "prefect.flow-run.", True),
        (("prefect.flow-run.*",), "xprefect.flow-run.abc", False),  # full string
        (("*.Failed",), "prefect.flow-run.Failed", True),
        (("*.Failed",), "prefect.flow-run.Failed.x", False),
        (("prefect.flow-run.?ailed",), "prefect.flow-run.Failed", True),
        (("prefect.flow-run.[CF]*",), "prefect.flow-run.Crashed", True),
        (("prefect.flow-run.[CF]*",), "prefect.flow-run.Running", False),
        (("Prefect.*",), "prefect.x", False),  # case-sensitive
        (("a", "b"), "b", True),
        ((), "a", False),
    ],
)
def test_glob(patterns: tuple[str, ...], value: str, expected: bool) -> None:
    assert glob(patterns)(value) is expected


@pytest.mark.parametrize(
    ("spec", "resource", "expected"),
    [
        ({}, {"prefect.resource.id": "x.y"}, True),
        ({"prefect.resource.id": "x.*"}, {"prefect.resource.id": "x.y"}, True),
        ({"prefect.resource.id": ["a.*", "x.*"]}, {"prefect.resource.id": "x.y"}, True),  # OR
        (
            {"prefect.resource.id": "x.*", "env": "prod"},
            {"prefect.resource.id": "x.y"},
            False,
        ),  # AND, missing
        (
            {"env": "!prod"},
            {"prefect.resource.id": "x.y"},
            False,
        ),  # missing never matches, negated or not
        ({"env": "!prod"}, {"env": "dev"}, True),
        ({"env": "!prod"}, {"env": "prod"}, False),
        ({"env": "!pr*"}, {"env": "preview"}, False),
        ({"env": ["!prod", "prod"]}, {"env": "prod"}, True),  # OR within the list
        ({"env": ["dev", "!prod"]}, {"env": "prod"}, False),
    ],
)
def test_resource_spec(spec: dict[str, Any], resource: dict[str, str], expected: bool) -> None:
    assert Spec(spec).matches(resource) is expected


def test_match_related_each_spec_by_one_related_resource() -> None:
    trigger = {
        "expect": ["x"],
        "posture": "Reactive",
        "match_related": [
            {
                "prefect.resource.role": "work-pool",
                "prefect.resource.id": "prefect.work-pool.prod-*",
            },
            {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.db"},
        ],
    }
    pool = {"prefect.resource.id": "prefect.work-pool.prod-1", "prefect.resource.role": "work-pool"}
    tag = {"prefect.resource.id": "prefect.tag.db", "prefect.resource.role": "tag"}
    mixed = {"prefect.resource.id": "prefect.tag.db", "prefect.resource.role": "work-pool"}
    stream: list[dict[str, Any] | float] = [
        ev("x", 0, related=[pool]),  # the second spec is not satisfied
        ev("x", 1, related=[tag, pool]),  # list = AND, each by one resource
        ev("x", 2, related=[mixed]),  # one resource that satisfies half of each: no
    ]
    assert [at for at, _, _ in run(trigger, stream)] == [1]


def test_find_label() -> None:
    event = ev(
        "x",
        0,
        related=[
            {"prefect.resource.id": "prefect.tag.a", "prefect.resource.role": "tag"},
            {"prefect.resource.id": "prefect.tag.b", "prefect.resource.role": "tag"},
        ],
    )
    assert find_label(event, "prefect.resource.id") == "prefect.flow-run.A"
    assert find_label(event, "related:tag:prefect.resource.id") == "prefect.tag.a"  # the first
    assert find_label(event, "related:flow:prefect.resource.id") is None
    assert find_label(event, "missing") is None


# -- composite triggers --------------------------------------------------------------------


def reactive(name: str) -> dict[str, Any]:
    return {"expect": [name], "posture": "Reactive"}


COMPOSITE_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any] | float], list[float]]] = [
    (
        "compound any fires on either child",
        {"type": "compound", "require": "any", "triggers": [reactive("a"), reactive("b")]},
        [ev("a", 0), ev("b", 1)],
        [0, 1],
    ),
    (
        "compound all needs every child; slots are cleared after firing",
        {"type": "compound", "require": "all", "triggers": [reactive("a"), reactive("b")]},
        [ev("a", 0), ev("a", 1), ev("b", 2), ev("b", 3), ev("a", 4)],
        [2, 4],
    ),
    (
        "compound 2 of 3",
        {
            "type": "compound",
            "require": 2,
            "triggers": [reactive("a"), reactive("b"), reactive("c")],
        },
        [ev("a", 0), ev("c", 1)],
        [1],
    ),
    (
        "compound within: a child firing older than the window no longer counts",
        {
            "type": "compound",
            "require": "all",
            "within": 60,
            "triggers": [reactive("a"), reactive("b")],
        },
        [ev("a", 0), ev("b", 61), ev("a", 100)],
        [100],
    ),
    (
        "Prefect: sequence in order fires",
        {"type": "sequence", "triggers": [reactive("a"), reactive("b")]},
        [ev("a", 0), ev("b", 1)],
        [1],
    ),
    (
        "Prefect: out-of-order sequence does not fire until the order is met",
        {"type": "sequence", "triggers": [reactive("a"), reactive("b")]},
        [ev("b", 0), ev("a", 1), ev("b", 2)],
        [2],
    ),
    (
        "sequence: one slot per child, the newest firing replaces the older",
        {"type": "sequence", "triggers": [reactive("a"), reactive("b"), reactive("c")]},
        [ev("a", 0), ev("b", 1), ev("a", 2), ev("c", 3), ev("b", 4), ev("c", 5)],
        [5],
    ),
    (
        "Prefect: nested composites",
        {
            "type": "compound",
            "require": "all",
            "triggers": [
                reactive("a"),
                {"type": "sequence", "triggers": [reactive("b"), reactive("c")]},
            ],
        },
        [ev("c", 0), ev("b", 1), ev("a", 2), ev("c", 3)],
        [3],
    ),
    (
        "a proactive child fires its composite at its deadline",
        {
            "type": "compound",
            "require": "all",
            "triggers": [
                reactive("a"),
                {"after": ["start"], "expect": ["done"], "posture": "Proactive", "within": 60},
            ],
        },
        [ev("start", 0), ev("a", 10), 59.0, 60.0],
        [60],
    ),
]


@pytest.mark.parametrize(
    ("trigger", "stream", "expected"),
    [pytest.param(t, s, e, id=name) for name, t, s, e in COMPOSITE_CASES],
)
def test_composite_trigger(
    trigger: dict[str, Any], stream: list[dict[str, Any] | float], expected: list[float]
) -> None:
    assert [at for at, _, _ in run(trigger, stream)] == expected


# -- the engine's needs ------------------------------------------------------------------------


def test_events_from_before_the_automation_was_enabled_are_ignored() -> None:
    fired = run(reactive("x"), [ev("x", -10), ev("x", 0), ev("x", 10)], enabled_at=0)
    assert [at for at, _, _ in fired] == [0, 10]


def test_loop_guard_an_automation_does_not_act_on_its_own_consequences() -> None:
    evaluator = Evaluator()
    evaluator.load("a", automation(reactive("x")), T0)
    evaluator.load("b", automation(reactive("x")), T0)
    fired = evaluator.feed(ev("x", 1), causes=frozenset({"a"}))
    assert [(f.automation, sorted(f.causes)) for f in fired] == [("b", ["a", "b"])]


def test_firing_ids_are_deterministic() -> None:
    stream = [ev("x", 0), ev("x", 100)]

    def ids() -> list[str]:
        evaluator = Evaluator()
        evaluator.load("a", automation({**reactive("x"), "within": 60}), T0 - 10)
        return [f.id for e in stream for f in evaluator.feed(e)]

    first = ids()
    assert len(first) == 2 and len(set(first)) == 2
    assert ids() == first


STATEFUL = [
    {"expect": ["x"], "posture": "Reactive", "threshold": 3, "within": 60},
    {
        "after": ["start"],
        "expect": ["done"],
        "for_each": ["prefect.resource.id"],
        "posture": "Proactive",
        "within": 60,
    },
    {"expect": ["x"], "posture": "Proactive", "within": 30},
    {
        "type": "sequence",
        "within": 100,
        "triggers": [reactive("start"), reactive("x"), reactive("done")],
    },
]


@pytest.mark.parametrize("trigger", STATEFUL)
@pytest.mark.parametrize("cut", [1, 3, 5])
def test_dump_and_restore_continue_exactly(trigger: dict[str, Any], cut: int) -> None:
    """A run interrupted at any point and resumed from its JSON state fires as an
    uninterrupted one: what `apply` relies on between runs."""
    stream: list[dict[str, Any] | float] = [
        ev("start", 0, "prefect.flow-run.A"),
        ev("x", 5),
        ev("start", 8, "prefect.flow-run.B"),
        ev("x", 20),
        ev("done", 30, "prefect.flow-run.A"),
        ev("x", 40),
        100.0,
        ev("x", 110),
        200.0,
    ]
    whole = run(trigger, stream)
    first = Evaluator()
    first.load("a", automation(trigger), T0 - 3600)
    fired: list[Firing] = []
    for item in stream[:cut]:
        fired.extend(step(first, item))
    state = json.loads(json.dumps(first.dump()))
    second = Evaluator()
    second.load("a", automation(trigger), T0 - 3600)
    second.restore(state)
    for item in stream[cut:]:
        fired.extend(step(second, item))
    assert [(f.triggered - T0, f.state, f.labels) for f in fired] == whole
    assert whole  # every case fires at least once


def test_a_changed_trigger_starts_over_an_unchanged_one_keeps_its_windows() -> None:
    counting = {"expect": ["x"], "posture": "Reactive", "threshold": 2, "within": 60}
    evaluator = Evaluator()
    evaluator.load("a", automation(counting), T0 - 10)
    assert evaluator.feed(ev("x", 0)) == []
    evaluator.load("a", automation(counting), T0 - 10)  # e.g. only its actions changed
    assert len(evaluator.feed(ev("x", 1))) == 1
    evaluator.feed(ev("x", 100))
    evaluator.load("a", automation({**counting, "threshold": 3}), T0 + 101)
    assert [w.count for w in evaluator.windows()] == []
    assert evaluator.feed(ev("x", 102)) == []


# Prefect: test_basics.py::test_matches and ::test_does_not_match, a value against one
# label's expected value (None: the label is missing).
PREFECT_MATCHES = [
    ("*", "any.old.thing", True),
    ("*.csv", "file.csv", True),
    ("!*.csv", "file.parquet", True),
    ("s3://*.csv", "s3://bucket/object.csv", True),
    ("s3://*", "s3://bucket/file.csv", True),
    ("!s3://*", "http://example.com", True),
    ("exactamundo", "exactamundo", True),
    ("*", None, False),
    ("*.csv", "file.parquet", False),
    ("!*.csv", "file.csv", False),
    ("s3://*.csv", "https://host/file.csv", False),
    ("s3://*", "https://host/file.csv", False),
    ("!s3://*", "s3://bucket/file.csv", False),
    ("exactamundo", "positively not", False),
]


@pytest.mark.parametrize(("expected", "value", "matched"), PREFECT_MATCHES)
def test_prefect_matches(expected: str, value: str | None, matched: bool) -> None:
    resource = {} if value is None else {"label": value}
    assert Spec({"label": expected}).matches(resource) is matched
