"""Impact from Prefect: for an incident's linked deployments, work pools, work queues
and flows, the flow runs expected to start in the incident's window, by state (failed,
crashed, late, completed, all), against the same span of time just before it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gitops_incidents.actions import ActionFailed
from gitops_incidents.prefect.actions import deployment, work_pool
from gitops_incidents.prefect.client import connect

COUNTED = ("deployment", "work-pool", "work-queue", "flow")
# What each column counts: state types, or state names (Late is a kind of Scheduled).
COLUMNS: dict[str, tuple[str, list[str]]] = {
    "failed": ("type", ["FAILED"]),
    "crashed": ("type", ["CRASHED"]),
    "late": ("name", ["Late"]),
    "completed": ("type", ["COMPLETED"]),
}
TIMEOUT = 5.0  # a build never waits long on Prefect


def counted(resources: list[dict[str, str]]) -> list[dict[str, str]]:
    """The linked resources whose flow runs can be counted."""
    return [r for r in resources if r["id"].rpartition(".")[0] in {f"prefect.{k}" for k in COUNTED}]


def measure(resources: list[dict[str, str]], start: float, end: float) -> dict[str, Any]:
    """Counts for each countable resource in [start, end] and in the span before."""
    with connect(timeout=TIMEOUT) as client:
        problem = client.api_healthcheck()
        if problem is not None:
            raise ActionFailed(f"Prefect does not answer: {type(problem).__name__}: {problem}")
        rows = []
        for resource in counted(resources):
            row: dict[str, Any] = {"id": resource["id"], "name": resource.get("name") or ""}
            try:
                filters = _filters(client, resource["id"])
            except ActionFailed as exc:
                row["error"] = str(exc)
                rows.append(row)
                continue
            row["during"] = _counts(client, filters, start, end)
            row["before"] = _counts(client, filters, start - (end - start), start)
            rows.append(row)
    return {"since": start, "until": end, "measured": time.time(), "rows": rows}


def _filters(client: Any, resource_id: str) -> dict[str, Any]:
    from prefect.client.schemas import filters as f

    kind, ident = resource_id.removeprefix("prefect.").split(".", 1)
    if kind == "deployment":
        found = deployment(client, ident)
        return {"deployment_filter": f.DeploymentFilter(id=f.DeploymentFilterId(any_=[found.id]))}
    if kind == "work-pool":
        pool = work_pool(client, ident)
        return {"work_pool_filter": f.WorkPoolFilter(name=f.WorkPoolFilterName(any_=[pool.name]))}
    if kind == "work-queue":
        return {
            "work_queue_filter": f.WorkQueueFilter(id=f.WorkQueueFilterId(any_=[uuid.UUID(ident)]))
        }
    try:
        return {"flow_filter": f.FlowFilter(id=f.FlowFilterId(any_=[uuid.UUID(ident)]))}
    except ValueError:
        return {"flow_filter": f.FlowFilter(name=f.FlowFilterName(any_=[ident]))}


def _counts(client: Any, filters: dict[str, Any], start: float, end: float) -> dict[str, int]:
    from datetime import UTC, datetime

    from prefect.client.schemas import filters as f

    window = f.FlowRunFilterExpectedStartTime(
        after_=datetime.fromtimestamp(start, UTC), before_=datetime.fromtimestamp(end, UTC)
    )
    counts = {
        "all": client.count_flow_runs(
            flow_run_filter=f.FlowRunFilter(expected_start_time=window), **filters
        )
    }
    for column, (by, values) in COLUMNS.items():
        state = (
            f.FlowRunFilterState(type=f.FlowRunFilterStateType(any_=values))
            if by == "type"
            else f.FlowRunFilterState(name=f.FlowRunFilterStateName(any_=values))
        )
        run_filter = f.FlowRunFilter(expected_start_time=window, state=state)
        counts[column] = client.count_flow_runs(flow_run_filter=run_filter, **filters)
    return counts


BUDGET = 30.0  # seconds of measuring a build may spend, in all


def for_incidents(cache: Any, incidents: list[Any], now: float) -> dict[str, dict[str, Any]]:
    """Figures for each incident with countable resources: kept ones for a closed window
    (resolved), measured ones otherwise, or why there are none (`unavailable`). Prefect
    is asked at most BUDGET seconds in all; once it fails, it is not asked again."""
    from gitops_incidents.triggers import timestamp

    found: dict[str, dict[str, Any]] = {}
    deadline, unavailable = time.monotonic() + BUDGET, None
    for item in incidents:
        resources = counted(item.resources)
        if not resources:
            continue
        start = timestamp(item.start_time)
        end = timestamp(item.end_time) if item.end_time else now
        key = f"{item.id}/{start}/{end}/{','.join(sorted(r['id'] for r in resources))}"
        kept = cache.impact(key) if item.end_time else None
        if kept is not None:
            found[item.id] = kept
            continue
        if unavailable is None and time.monotonic() > deadline:
            unavailable = "not measured in this build: its time for Prefect ran out"
        if unavailable is not None:
            found[item.id] = {"unavailable": unavailable}
            continue
        try:
            figures = measure(resources, start, end)
        except ActionFailed as exc:
            unavailable = str(exc)
            found[item.id] = {"unavailable": unavailable}
            continue
        found[item.id] = figures
        if item.end_time:
            cache.store_impact(key, figures)
    return found
