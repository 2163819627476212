"""Prefect's actions (SPEC 5.3): pause and resume work pools, work queues and
deployments, run a deployment, cancel, suspend, resume a flow run, change its state.

Targets come as Prefect's own events name them (`prefect.work-pool.<uuid>`), or by
name where a person selected one (`work_pool_id: k8s-prod`). Outcomes follow what
Prefect answered, not the HTTP status: a state change it rejects is a failed action.
Each is safe to repeat after a crash: pausing what is paused is success, and
run-deployment passes the invocation key as Prefect's idempotency key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gitops_incidents.actions import ActionFailed, ActionType, Call, infer
from gitops_incidents.faults import crashpoint
from gitops_incidents.prefect.client import connect

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun, WorkPool, WorkQueue
    from prefect.client.schemas.responses import DeploymentResponse


def _target(call: Call, field: str) -> str:
    """The selected id or name, or the last segment of the inferred resource id."""
    selected = getattr(call.action, field, None)
    if selected is not None:
        return str(selected)
    inferred = infer(call, field)
    assert inferred is not None
    return inferred.rsplit(".", 1)[1]


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


# -- lookups: by UUID as Prefect's events name things, or by name as people do -----------


def work_pool(client: SyncPrefectClient, target: str) -> WorkPool:
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterId

    ident = _uuid(target)
    if ident is None:
        return client.read_work_pool(target)
    found = client.read_work_pools(
        work_pool_filter=WorkPoolFilter(id=WorkPoolFilterId(any_=[ident]))
    )
    if not found:
        raise ActionFailed(f"Prefect has no work pool {target}")
    return found[0]


def work_queue(client: SyncPrefectClient, target: str) -> WorkQueue:
    ident = _uuid(target)
    if ident is not None:
        return client.read_work_queue(ident)
    pool, _, name = target.rpartition("/")  # `pool/queue`, or a queue of the default pool
    return client.read_work_queue_by_name(name, work_pool_name=pool or None)


def deployment(client: SyncPrefectClient, target: str) -> DeploymentResponse:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    ident = _uuid(target)
    if ident is not None:
        return client.read_deployment(ident)
    if "/" in target:  # `flow/deployment`, as Prefect writes it
        return client.read_deployment_by_name(target)
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[target]))
    )
    if len(found) != 1:
        named = "no" if not found else f"{len(found)}"
        raise ActionFailed(
            f"Prefect has {named} deployment(s) named {target!r}: write it as flow/deployment"
        )
    return found[0]


def _flow_run(client: SyncPrefectClient, call: Call) -> FlowRun:
    """The flow run of the triggering event, as Prefect's flow-run actions take it."""
    event = call.event or {}
    for resource in [event.get("resource") or {}, *(event.get("related") or ())]:
        resource_id = str(resource.get("prefect.resource.id", ""))
        ident = _uuid(resource_id.removeprefix("prefect.flow-run."))
        if resource_id.startswith("prefect.flow-run.") and ident is not None:
            return client.read_flow_run(ident)
    raise ActionFailed("the triggering event names no flow run (prefect.flow-run.<uuid>)")


# -- pause and resume ----------------------------------------------------------------------


def _pausing(
    noun: str,
    field: str,
    find: Callable[[Any, str], Any],
    update: Callable[[Any, Any, bool], None],
    flag: str = "is_paused",
) -> Callable[[bool], Callable[[Call], str]]:
    """Pause or resume actions for one kind of object (`flag` says whether it is paused):
    what is so already is success."""

    def action(paused: bool) -> Callable[[Call], str]:
        def run(call: Call) -> str:
            with connect() as client:
                found = find(client, _target(call, field))
                if getattr(found, flag) == paused:
                    return f"{noun} {found.name} already {_word(paused)}"
                update(client, found, paused)
                crashpoint("after-send")
                return f"{_word(paused)} {noun} {found.name}"

        return run

    return action


def _update_work_pool(client: Any, pool: Any, paused: bool) -> None:
    from prefect.client.schemas.actions import WorkPoolUpdate

    client.update_work_pool(pool.name, WorkPoolUpdate(is_paused=paused))


def _update_deployment(client: Any, found: Any, paused: bool) -> None:
    (client.pause_deployment if paused else client.resume_deployment)(found.id)


_pause_work_pool = _pausing("work pool", "work_pool_id", work_pool, _update_work_pool)
_pause_work_queue = _pausing(
    "work queue",
    "work_queue_id",
    work_queue,
    lambda client, queue, paused: client.update_work_queue(queue.id, is_paused=paused),
)
_pause_deployment = _pausing(
    "deployment", "deployment_id", deployment, _update_deployment, flag="paused"
)


def _word(paused: bool) -> str:
    return "paused" if paused else "resumed"


def run_deployment(call: Call) -> str:
    action = call.action
    with connect() as client:
        found = deployment(client, _target(call, "deployment_id"))
        # The invocation key is Prefect's idempotency key: a run again after a crash
        # gets the same flow run back, never a second one.
        run = client.create_flow_run_from_deployment(
            found.id,
            parameters=action.parameters,
            job_variables=action.job_variables,
            idempotency_key=call.key,
        )
        crashpoint("after-send")
        return f"flow run {run.name} ({run.id}) of deployment {found.name}"


# -- flow runs -----------------------------------------------------------------------------


def _set_state(
    call: Call, state: Callable[[], Any], *, force: bool = False, done: Callable[[FlowRun], bool]
) -> str:
    """Propose `state()` for the triggering flow run; what Prefect decided."""
    with connect() as client:
        flow_run = _flow_run(client, call)
        if done(flow_run):
            return f"flow run {flow_run.name} is already {_state_name(flow_run)}"
        result = client.set_flow_run_state(flow_run.id, state(), force=force)
        crashpoint("after-send")
        return _decided(client, flow_run, result.status.value, result.details, done)


def _decided(
    client: SyncPrefectClient,
    flow_run: FlowRun,
    status: str,
    details: Any,
    done: Callable[[FlowRun], bool],
) -> str:
    now = client.read_flow_run(flow_run.id)
    if status == "ACCEPT" or done(now):
        # Prefect may decline the transition and still get there (cancelling a
        # scheduled run is REJECTed, and the run ends CANCELLED).
        return f"flow run {flow_run.name} is {_state_name(now)}"
    reason = getattr(details, "reason", None) or "no reason given"
    raise ActionFailed(f"Prefect answered {status} for flow run {flow_run.name}: {reason}")


def _state_name(flow_run: FlowRun) -> str:
    state = flow_run.state
    return f"{state.name} ({state.type.value})" if state else "without a state"


def _in(*types: str) -> Callable[[FlowRun], bool]:
    return lambda run: run.state is not None and run.state.type.value in types


# prefect-client is imported inside the calls: `connect` says so in one line without it.
def cancel_flow_run(call: Call) -> str:
    def state() -> Any:
        from prefect.states import Cancelling

        return Cancelling(message=f"Cancelled by the automation {call.automation.name!r}")

    return _set_state(call, state, done=_in("CANCELLING", "CANCELLED"))


def suspend_flow_run(call: Call) -> str:
    def state() -> Any:
        from prefect.states import Suspended

        return Suspended(timeout_seconds=None, pause_reschedule=True)

    return _set_state(call, state, done=_in("PAUSED"))


def resume_flow_run(call: Call) -> str:
    with connect() as client:
        flow_run = _flow_run(client, call)
        if not _in("PAUSED")(flow_run):
            if call.recovering:
                state = _state_name(flow_run)
                return f"flow run {flow_run.name} is {state} (resumed before a restart)"
            raise ActionFailed(f"flow run {flow_run.name} is not paused: {_state_name(flow_run)}")
        result = client.resume_flow_run(flow_run.id)
        crashpoint("after-send")
        return _decided(
            client,
            flow_run,
            result.status.value,
            result.details,
            lambda run: not _in("PAUSED")(run),
        )


def change_flow_run_state(call: Call) -> str:
    action = call.action
    name = action.name or action.state.title()

    def state() -> Any:
        from prefect.client.schemas.objects import State, StateType

        return State(type=StateType(action.state), name=name, message=action.message)

    def done(run: FlowRun) -> bool:
        # Only a run again after a crash takes the state reached as its own doing.
        reached = run.state is not None and (run.state.type.value, run.state.name)
        return call.recovering and reached == (action.state, name)

    return _set_state(call, state, force=action.force, done=done)


def _describe_flow_run(call: Call) -> str:
    return f"{call.action.type.replace('-', ' ')} of the triggering flow run"


def _describe_run(call: Call) -> str:
    return f"run deployment {_target(call, 'deployment_id')}"


def _describe_target(noun: str, field: str) -> Callable[[Call], str]:
    return lambda call: f"{call.action.type.split('-')[0]} {noun} {_target(call, field)}"


# Every one is safe to repeat: what is paused stays paused, a flow run is created once
# per idempotency key, a state already reached is success.
ACTIONS: dict[str, ActionType] = {
    "pause-work-pool": ActionType(
        _pause_work_pool(True), _describe_target("work pool", "work_pool_id"), True
    ),
    "resume-work-pool": ActionType(
        _pause_work_pool(False), _describe_target("work pool", "work_pool_id"), True
    ),
    "pause-work-queue": ActionType(
        _pause_work_queue(True), _describe_target("work queue", "work_queue_id"), True
    ),
    "resume-work-queue": ActionType(
        _pause_work_queue(False), _describe_target("work queue", "work_queue_id"), True
    ),
    "pause-deployment": ActionType(
        _pause_deployment(True), _describe_target("deployment", "deployment_id"), True
    ),
    "resume-deployment": ActionType(
        _pause_deployment(False), _describe_target("deployment", "deployment_id"), True
    ),
    "run-deployment": ActionType(run_deployment, _describe_run, True),
    "cancel-flow-run": ActionType(cancel_flow_run, _describe_flow_run, True),
    "suspend-flow-run": ActionType(suspend_flow_run, _describe_flow_run, True),
    "resume-flow-run": ActionType(resume_flow_run, _describe_flow_run, True),
    "change-flow-run-state": ActionType(change_flow_run_state, _describe_flow_run, True),
}
