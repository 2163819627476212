"""Prefect resources looked up by id, for `declare --from`: a name to propose and the
resource with its related ones, named and with roles, as Prefect's events link them."""

from __future__ import annotations

import uuid
from typing import Any

from gitops_incidents.actions import ActionFailed
from gitops_incidents.prefect.actions import deployment, work_pool
from gitops_incidents.prefect.client import connect

KINDS = ("flow-run", "work-pool", "deployment", "block-document")


def resource(resource_id: str) -> tuple[str, list[dict[str, str]]]:
    """(a proposed incident name, [{id, role, name}, ...]) for `prefect.<kind>.<id>`."""
    prefix, _, rest = resource_id.partition(".")
    kind, _, ident = rest.partition(".")
    if prefix != "prefect" or kind not in KINDS or not ident:
        raise ActionFailed(
            f"{resource_id!r}: give prefect.<kind>.<id>, the kind one of {', '.join(KINDS)}"
        )
    with connect() as client:
        if kind == "flow-run":
            return _flow_run(client, _uuid(ident))
        if kind == "work-pool":
            pool = work_pool(client, ident)
            status = "PAUSED" if pool.is_paused else (pool.status.value if pool.status else "")
            what = {"PAUSED": "is paused", "NOT_READY": "has no ready worker"}.get(
                status, "failing"
            )
            return f"Work pool {pool.name} {what}", [_link("work-pool", pool.id, pool.name)]
        if kind == "deployment":
            found = deployment(client, ident)
            flow = client.read_flow(found.flow_id)
            links = [_link("deployment", found.id, found.name), _link("flow", flow.id, flow.name)]
            if found.work_pool_name:
                pool = work_pool(client, found.work_pool_name)
                links.append(_link("work-pool", pool.id, pool.name))
            return f"Deployment {flow.name}/{found.name} failing", links
        block = client.read_block_document(_uuid(ident))
        name = block.name or str(block.id)
        return f"Block {name} failing", [_link("block-document", block.id, name)]


def _flow_run(client: Any, ident: uuid.UUID) -> tuple[str, list[dict[str, str]]]:
    run = client.read_flow_run(ident)
    flow = client.read_flow(run.flow_id)
    links = [_link("flow-run", run.id, run.name), _link("flow", flow.id, flow.name)]
    if run.deployment_id:
        found = client.read_deployment(run.deployment_id)
        links.append(_link("deployment", found.id, found.name))
    if run.work_queue_id:
        links.append(_link("work-queue", run.work_queue_id, run.work_queue_name or ""))
    if run.work_pool_id:
        links.append(_link("work-pool", run.work_pool_id, run.work_pool_name or ""))
    state = run.state.type.value if run.state else ""
    what = {"FAILED": "failed", "CRASHED": "crashed", "CANCELLED": "was cancelled"}.get(
        state, f"is {run.state.name.lower()}" if run.state else "has no state"
    )
    return f"Flow run {run.name} {what}", links


def _link(kind: str, ident: Any, name: str) -> dict[str, str]:
    link = {"id": f"prefect.{kind}.{ident}", "role": kind}
    if name:
        link["name"] = name
    return link


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ActionFailed(f"{text!r} is not a UUID, as Prefect names this kind") from None
