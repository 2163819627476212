"""Prefect's own trigger evaluator (`prefect.server.events.triggers`), driven in a
process of its own on a SQLite database, the way Prefect's tests drive it: reactive
evaluation per event, proactive evaluation at chosen times, on a simulated clock.

    python -m tests.prefect_evaluator < scenarios.json > firings.json

Each scenario: `automations` ({id, trigger} with Prefect's trigger JSON), `enabled`
(when they are loaded) and `steps`, each `{"at": t, "event": {...}}` (the event
arrives at t) or `{"at": t}` (the clock reaches t). Times are seconds since 1970.

The clock is Prefect's server in the limit of a loop that never sleeps: before
anything happens at a time t, each proactive trigger is evaluated at every run time
Prefect scheduled for it up to t (`proactive_evaluation` returns the next one, as
`evaluate_proactive_triggers` keeps it), followers waiting longer than Prefect's
look-back are taken, and closed buckets are swept. Output: one list per scenario of
firings `{step, automation, time, labels, event}`, where `step` is the index of the
step at or before which it fired.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gitops_incidents.triggers import LOOP  # the turn of Prefect's proactive loop

NAMESPACE = uuid.UUID("6f1f8d8e-6c0e-4a59-9f55-0d1f3b7a2c10")


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def _main(scenarios: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    import prefect.types._datetime as prefect_time
    from prefect.server.database import orm_models, provide_database_interface
    from prefect.server.events import triggers
    from prefect.server.events.models import composite_trigger_child_firing as child_firings

    db = provide_database_interface()
    # The evaluator's tables straight from the models: Alembic's migrations of the
    # whole schema take seconds.
    engine = await db.engine()
    async with engine.begin() as connection:
        tables = [model.__table__ for model in _tables(db)]
        await connection.run_sync(lambda sync: orm_models.Base.metadata.create_all(sync, tables))
    run = _Run(db, engine.url.set(drivername="sqlite"))
    # Prefect's clock is the scenario's, wherever Prefect reads it.
    modules: list[Any] = [prefect_time, orm_models, child_firings]
    for module in modules:
        module.now = run.now
    patched: Any = triggers
    patched.act = run.act
    return [await run.scenario(scenario) for scenario in scenarios]


def _tables(db: Any) -> list[Any]:
    return [
        db.AutomationBucket,
        db.AutomationHeldEvent,
        db.CompositeTriggerChildFiring,
        db.AutomationEventFollower,
        db.Automation,
    ]


class _Run:
    """One scenario at a time through Prefect's evaluator, on the simulated clock."""

    def __init__(self, db: Any, url: Any) -> None:
        import sqlalchemy as sa
        from prefect.server.events.ordering import PRECEDING_EVENT_LOOKBACK

        self.db = db
        self.reader = sa.create_engine(url)
        self.clock = 0.0
        self.fired: list[tuple[Any, float]] = []
        self.lookback = PRECEDING_EVENT_LOOKBACK.total_seconds()
        self.next_run: dict[Any, float] = {}
        self.waiting: list[float] = []  # when a follower would be taken as lost
        self.proactive: list[Any] = []
        self.holding = False

    def now(self, tz: object = "UTC") -> datetime:
        return _moment(self.clock)

    async def act(self, firing: Any) -> None:
        self.fired.append((firing, self.clock))

    async def scenario(self, scenario: dict[str, Any]) -> list[dict[str, Any]]:
        import sqlalchemy as sa
        from prefect.server.events import triggers
        from prefect.server.events.models import automation_held_events
        from prefect.server.events.ordering.memory import CausalOrdering
        from prefect.server.events.schemas.automations import Automation, EventTrigger, Posture

        await triggers.reset()
        CausalOrdering.clear_all_scopes()
        async with self.db.session_context(begin_transaction=True) as session:
            for table in _tables(self.db):
                await session.execute(sa.delete(table))
        automations = [
            Automation.model_validate(
                {
                    "id": uuid.uuid5(NAMESPACE, item["id"]),
                    "name": item["id"],
                    "trigger": _with_ids(item["trigger"], number, iter(range(1, 1000))),
                    "actions": [{"type": "do-nothing"}],
                }
            )
            for number, item in enumerate(scenario["automations"], 1)
        ]
        self.clock = scenario["enabled"]
        async with self.db.session_context(begin_transaction=True) as session:
            for automation in automations:
                session.add(self.db.Automation(**automation.model_dump()))
        for automation in automations:
            triggers.load_automation(automation)
        self.proactive = [
            t
            for a in automations
            for t in a.triggers_of_type(EventTrigger)
            if t.posture == Posture.Proactive
        ]
        self.next_run = {t.id: scenario["enabled"] for t in self.proactive}
        self.holding = any(automation_held_events.holds_expect_events(t) for t in self.proactive)
        self.waiting = []
        self.fired.clear()
        out: list[dict[str, Any]] = []
        names: dict[uuid.UUID, str] = {}
        for index, step in enumerate(scenario["steps"]):
            await self.until(step["at"])
            if "event" in step:
                await self.arrive(step["event"], step["at"], names)
            out.extend(self.report(index, names))
        return out

    async def arrive(self, raw: dict[str, Any], at: float, names: dict[uuid.UUID, str]) -> None:
        from prefect.server.events import triggers
        from prefect.server.events.schemas.events import ReceivedEvent

        follows = {"follows": _uuid(raw["follows"])} if raw.get("follows") else {}
        event = ReceivedEvent.model_validate(
            {"received": _moment(at), **raw, "id": _uuid(raw["id"]), **follows}
        )
        names[event.id] = raw["id"]
        if follows:  # when it would be taken as lost, if it is held
            stamp = datetime.fromisoformat(raw.get("received", _moment(at).isoformat()))
            self.waiting.append(max(stamp.timestamp() + self.lookback, at))
        try:
            await triggers.reactive_evaluation(event)
        except Exception as error:  # EventArrivedEarly: held for its leader
            if type(error).__name__ != "EventArrivedEarly":
                raise

    def report(self, index: int, names: dict[uuid.UUID, str]) -> list[dict[str, Any]]:
        from prefect.server.events.schemas.automations import Automation, CompositeTrigger

        rows = []
        for firing, at in self.fired:
            trigger = firing.trigger
            if not isinstance(trigger.parent, Automation):
                continue  # a child of a composite: its parent's firing is reported
            event = firing.triggering_event
            rows.append(
                {
                    "step": index,
                    "automation": str(trigger.automation.name),
                    "time": at,
                    "labels": dict(firing.triggering_labels),
                    "event": names.get(event.id) if event else None,
                    "composite": isinstance(trigger, CompositeTrigger),
                }
            )
        self.fired.clear()
        return rows

    async def until(self, t: float) -> None:
        """Everything Prefect's periodic work does up to t, in time order."""
        from prefect.server.events import triggers

        while True:
            due = [r for r in self.next_run.values() if r <= t]
            moment = min(due + [w for w in self.waiting if w <= t], default=None)
            if moment is None:
                break
            self.clock = moment
            await self.lost()
            for trigger in self.proactive:
                if self.next_run[trigger.id] <= moment:
                    run: Any = triggers.proactive_evaluation
                    after = await run(trigger, _moment(moment))
                    # A run due already waits for the loop's next turn (every 5 s).
                    at = after.timestamp()
                    self.next_run[trigger.id] = at if at > moment else moment + LOOP
            self.waiting = [w for w in self.waiting if w > moment]
            await self.sweep(moment)
        self.clock = t
        await self.lost()
        await self.sweep(t)

    async def lost(self) -> None:
        """The followers Prefect's `periodic_evaluation` takes as lost, now."""
        from prefect.server.events import triggers

        for event in await triggers.get_lost_followers():
            await triggers.reactive_evaluation(event)

    async def sweep(self, moment: float) -> None:
        """The sweeps of Prefect's `periodic_evaluation`: after the proactive runs of the
        same moment, so that a window is evaluated before it is swept."""
        from prefect.server.events import triggers
        from prefect.server.events.models import automation_held_events

        offset = await triggers.get_events_clock_offset()
        now, closed_before = _moment(moment), _moment(moment + offset) - timedelta(seconds=60)
        # A sweep whose DELETE would match no row is skipped, for speed: most match none.
        # Held events: the first of the DELETE's conditions (only triggers that hold
        # events have any).
        held_before = now - automation_held_events.HELD_EXPECT_EVENTS_RETENTION
        sweep_held = self.holding and self.any(self.db.AutomationHeldEvent.updated < held_before)
        sweep_closed = self.any(self.db.AutomationBucket.end <= closed_before)
        if not (sweep_held or sweep_closed):
            return
        async with self.db.session_context(begin_transaction=True) as session:
            # Prefect's decorated functions, which the type checker cannot see through.
            held: Any = automation_held_events.sweep_held_events
            closed: Any = triggers.sweep_closed_buckets
            if sweep_held:
                await held(session, now)
            if sweep_closed:
                await closed(session, closed_before)

    def any(self, condition: Any) -> bool:
        """Whether a row meets the condition, read on a plain connection of its own: the
        database as Prefect's last commit left it."""
        import sqlalchemy as sa

        table = condition.left.table
        with self.reader.connect() as connection:
            found = connection.execute(
                sa.select(sa.literal(1)).select_from(table).where(condition).limit(1)
            )
            return found.first() is not None


def _with_ids(trigger: dict[str, Any], automation: int, counter: Iterator[int]) -> dict[str, Any]:
    """Trigger ids that sort in the order of a composite's children: Prefect reads child
    firings in the order of their trigger ids, and orders a sequence's children that
    fired at the same moment so (random ids would make such ties random)."""
    own = uuid.UUID(int=automation << 64 | next(counter))
    children = [_with_ids(child, automation, counter) for child in trigger.get("triggers", [])]
    return {**trigger, "id": str(own), **({"triggers": children} if children else {})}


def _uuid(text: str) -> str:
    return str(uuid.uuid5(NAMESPACE, text))


def _inline_sqlite() -> None:
    """aiosqlite runs each call on a thread of its connection and wakes the event loop
    with the answer: two thread hops a statement, half of this process's time. Here
    the calls run in the loop's own thread, one at a time as before; the statements,
    the database and what Prefect's code sees are the same."""
    import aiosqlite.core

    async def execute(self: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return function(*args, **kwargs)

    async def connect(self: Any) -> Any:
        if self._connection is None:
            self._connection = self._connector()
        return self

    connection: Any = aiosqlite.core.Connection
    connection._execute, connection._connect = execute, connect


def main() -> int:
    scenarios = json.load(sys.stdin)
    _inline_sqlite()
    # The database lives in memory where the system has it: its speed is not measured.
    memory = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=memory) as home:
        os.environ.update(
            PREFECT_HOME=home,
            PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{Path(home) / 'p.db'}",
            PREFECT_LOGGING_LEVEL="ERROR",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        from prefect.settings import temporary_settings

        # Settings read once: outside a settings context Prefect reads the
        # environment again at each look-up, a tenth of this process's time.
        with temporary_settings():
            json.dump(asyncio.run(_main(scenarios)), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
