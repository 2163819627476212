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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from collections.abc import Iterator
from typing import Any

LOOP = 5.0  # seconds between turns of Prefect's proactive loop
NAMESPACE = uuid.UUID("6f1f8d8e-6c0e-4a59-9f55-0d1f3b7a2c10")


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def _main(scenarios: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    import sqlalchemy as sa

    import prefect.types._datetime as prefect_time
    from prefect.server.database import orm_models, provide_database_interface
    from prefect.server.events.models import automation_held_events
    from prefect.server.events.models import composite_trigger_child_firing as child_firings
    from prefect.server.events import triggers
    from prefect.server.events.ordering import PRECEDING_EVENT_LOOKBACK
    from prefect.server.events.ordering.memory import CausalOrdering
    from prefect.server.events.schemas.automations import (
        Automation,
        CompositeTrigger,
        EventTrigger,
        Firing,
        Posture,
    )
    from prefect.server.events.schemas.events import ReceivedEvent

    db = provide_database_interface()
    # The evaluator's tables straight from the models: Alembic's migrations of the
    # whole schema take seconds.
    tables = [
        model.__table__
        for model in (
            db.Automation,
            db.AutomationBucket,
            db.AutomationHeldEvent,
            db.CompositeTriggerChildFiring,
            db.AutomationEventFollower,
        )
    ]
    engine = await db.engine()
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: orm_models.Base.metadata.create_all(sync, tables))
    clock = [0.0]
    def simulated(tz: object = "UTC") -> datetime:
        return _moment(clock[0])

    prefect_time.now = simulated  # type: ignore[assignment]
    orm_models.now = simulated  # type: ignore[attr-defined]
    child_firings.now = simulated  # type: ignore[attr-defined]
    fired: list[tuple[Firing, float]] = []

    async def act(firing: Firing) -> None:
        fired.append((firing, clock[0]))

    triggers.act = act  # type: ignore[assignment]
    lookback = PRECEDING_EVENT_LOOKBACK.total_seconds()

    def root(trigger: Any) -> str:
        return str(trigger.automation.name)

    results = []
    for scenario in scenarios:
        await triggers.reset()
        CausalOrdering.clear_all_scopes()
        async with db.session_context(begin_transaction=True) as session:
            for table in (
                db.AutomationBucket,
                db.AutomationHeldEvent,
                db.CompositeTriggerChildFiring,
                db.AutomationEventFollower,
                db.Automation,
            ):
                await session.execute(sa.delete(table))
        automations = []
        for number, item in enumerate(scenario["automations"], 1):
            automation = Automation.model_validate(
                {
                    "id": uuid.uuid5(NAMESPACE, item["id"]),
                    "name": item["id"],
                    "trigger": _with_ids(item["trigger"], number, iter(range(1, 1000))),
                    "actions": [{"type": "do-nothing"}],
                }
            )
            automations.append(automation)
        clock[0] = scenario["enabled"]
        async with db.session_context(begin_transaction=True) as session:
            for automation in automations:
                session.add(db.Automation(**automation.model_dump()))
        for automation in automations:
            triggers.load_automation(automation)
        proactive = [
            t
            for a in automations
            for t in a.triggers_of_type(EventTrigger)
            if t.posture == Posture.Proactive
        ]
        next_run = {t.id: scenario["enabled"] for t in proactive}
        holding = any(automation_held_events.holds_expect_events(t) for t in proactive)
        waiting: list[float] = []  # when a held follower is taken as lost
        fired.clear()
        out: list[dict[str, Any]] = []
        names: dict[uuid.UUID, str] = {}

        async def until(t: float) -> None:
            """Everything Prefect's periodic work does up to t, in time order."""
            while True:
                due = [(r, str(tid)) for tid, r in next_run.items() if r <= t]
                lost = [w for w in waiting if w <= t]
                moment = min([r for r, _ in due] + lost, default=None)
                if moment is None:
                    break
                clock[0] = moment
                await periodic(moment)
                for trigger in proactive:
                    if next_run[trigger.id] <= moment:
                        after = await triggers.proactive_evaluation(trigger, _moment(moment))
                        # A run due now runs at the loop's next turn (every 5 s).
                        at = after.timestamp()
                        next_run[trigger.id] = at if at > moment else moment + LOOP
                waiting[:] = [w for w in waiting if w > moment]
            clock[0] = t
            await periodic(t)

        async def periodic(moment: float) -> None:
            offset = await triggers.get_events_clock_offset()
            for event in await triggers.get_lost_followers():
                await triggers.reactive_evaluation(event)
            async with db.session_context(begin_transaction=True) as session:
                if holding:  # a no-op without triggers that hold events: skipped for speed
                    await automation_held_events.sweep_held_events(session, _moment(moment))
                await triggers.sweep_closed_buckets(
                    session, _moment(moment + offset) - timedelta(seconds=60)
                )

        for index, step in enumerate(scenario["steps"]):
            await until(step["at"])
            if "event" in step:
                raw = step["event"]
                event = ReceivedEvent.model_validate(
                    {**raw, "id": _uuid(raw["id"]), "received": _moment(step["at"]),
                     **({"follows": _uuid(raw["follows"])} if raw.get("follows") else {})}
                )
                names[event.id] = raw["id"]
                if raw.get("follows"):
                    waiting.append(step["at"] + lookback)
                try:
                    await triggers.reactive_evaluation(event)
                except Exception as error:  # EventArrivedEarly: held
                    if type(error).__name__ != "EventArrivedEarly":
                        raise
            for firing, at in fired:
                trigger = firing.trigger
                if not isinstance(trigger.parent, Automation):
                    continue  # a child of a composite: its parent's firing is reported
                event = firing.triggering_event
                out.append(
                    {
                        "step": index,
                        "automation": root(trigger),
                        "time": at,
                        "labels": dict(firing.triggering_labels),
                        "event": names.get(event.id) if event else None,
                        "composite": isinstance(trigger, CompositeTrigger),
                    }
                )
            fired.clear()
        results.append(out)
    return results


def _with_ids(trigger: dict[str, Any], automation: int, counter: Iterator[int]) -> dict[str, Any]:
    """Trigger ids that sort in the order of a composite's children: Prefect reads child
    firings in the order of their trigger ids, and orders a sequence's children that
    fired at the same moment so (random ids would make such ties random)."""
    own = uuid.UUID(int=automation << 64 | next(counter))
    children = [_with_ids(child, automation, counter) for child in trigger.get("triggers", [])]
    return {**trigger, "id": str(own), **({"triggers": children} if children else {})}


def _uuid(text: str) -> str:
    return str(uuid.uuid5(NAMESPACE, text))


def main() -> int:
    scenarios = json.load(sys.stdin)
    # The database lives in memory where the system has it: its speed is not measured.
    memory = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=memory) as home:
        os.environ.update(
            PREFECT_HOME=home,
            PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{Path(home) / 'p.db'}",
            PREFECT_LOGGING_LEVEL="ERROR",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        json.dump(asyncio.run(_main(scenarios)), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
