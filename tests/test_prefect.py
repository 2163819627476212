"""The Prefect actions against a real Prefect server (started by the tests, on
127.0.0.1), each verified by reading the object back from Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitops_incidents.cli import main
from gitops_incidents.faults import CRASH_EXIT
from gitops_incidents.ledger import Ledger
from tests.conftest import Repo
from tests.prefect_server import running

NS = "prefect-cloud"
# Commits an hour ago: Prefect's own events are dated now, and an automation acts only on
# events after the commit that added it.
T0 = int(time.time()) - 3600
OCCURRED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + 60))


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(tmp_path_factory.mktemp("prefect") / "home") as url:
        yield url


class Prefect:
    """The server's REST API, for setting up objects and reading them back."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._send("POST", path, body)
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        return self._send("GET", path).json()

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        # A SQLite server answers 503 "database is locked" under bursts: try again.
        for attempt in range(20):
            response = self.http.request(method, path, json=body)
            if response.status_code != 503 or attempt == 19:
                break
            time.sleep(0.1)
        response.raise_for_status()
        return response

    def work_pool(self, name: str) -> dict[str, Any]:
        self.post("/work_pools/", {"name": name, "type": "process"})
        pool: dict[str, Any] = self.get(f"/work_pools/{name}")
        return pool

    def deployment(self, name: str, pool: str) -> dict[str, Any]:
        flow = self.post("/flows/", {"name": f"flow-of-{name}"})
        created = self.post(
            "/deployments/",
            {
                "name": name,
                "flow_id": flow["id"],
                "work_pool_name": pool,
                "parameter_openapi_schema": {
                    "type": "object",
                    "properties": {"day": {"type": "string"}},
                },
            },
        )
        found: dict[str, Any] = self.get(f"/deployments/{created['id']}")
        return found

    def pool_and_deployment(self, pool_prefix: str, name: str) -> tuple[str, dict[str, Any]]:
        """A new work pool, and a deployment on it."""
        pool = unique(pool_prefix)
        self.work_pool(pool)
        return pool, self.deployment(unique(name), pool)

    def failed_run(self, deployment_id: str) -> dict[str, Any]:
        """A flow run of the deployment that ran and failed, as Prefect records it."""
        flow_run: dict[str, Any] = self.post(f"/deployments/{deployment_id}/create_flow_run", {})
        for state in ("RUNNING", "FAILED"):
            body = {"state": {"type": state}, "force": True}
            self.post(f"/flow_runs/{flow_run['id']}/set_state", body)
        return flow_run

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.post(
            "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}}
        )
        return runs


@pytest.fixture
def prefect(prefect_api: str) -> Iterator[Prefect]:
    api = Prefect(prefect_api)
    yield api
    api.http.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def on_declared(actions: str) -> str:
    return (
        "name: react to a declaration\n"
        "trigger:\n"
        f"  match: {{prefect.resource.id: {NS}.incident.*}}\n"
        f"  expect: [{NS}.incident.declared]\n"
        "  posture: Reactive\n"
        f"actions:\n{actions}"
    )


def on_flow_run(event: str, actions: str) -> str:
    return (
        "name: react to a flow run\n"
        "trigger:\n"
        "  match: {prefect.resource.id: prefect.flow-run.*}\n"
        f"  expect: [{event}]\n"
        "  posture: Reactive\n"
        f"actions:\n{actions}"
    )


def run(capsys: pytest.CaptureFixture[str], repo: Repo, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["--repo", str(repo.path), *args])
    return status, capsys.readouterr().err


@pytest.fixture
def tracker(repo: Repo, prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> Repo:
    monkeypatch.setenv("GITOPS_INCIDENTS_RETRY_DELAY", "0.01")
    repo.write("incidents/old.yaml", "name: Before the engine\nseverity: SEV-3\n")
    repo.commit("start", when=T0)
    return repo


def armed(repo: Repo, capsys: pytest.CaptureFixture[str], automation: str, extra: str = "") -> None:
    """Add the automation, start the engine, commit a declaration (not applied yet)."""
    repo.write("automations/act.yaml", automation)
    repo.commit("automation", when=T0 + 1)
    assert run(capsys, repo, "apply")[0] == 0
    repo.write("incidents/db.yaml", f"name: Database down\nseverity: SEV-1\n{extra}")
    repo.commit("declare", when=T0 + 2)


def crash_after_the_call(repo: Repo) -> None:
    """`apply` in a process of its own, killed right after its first call to Prefect."""
    crashed = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(repo.path), "apply"],
        env={**os.environ, "GITOPS_INCIDENTS_CRASH": "after-send"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == CRASH_EXIT, crashed.stderr


def declare(
    repo: Repo, capsys: pytest.CaptureFixture[str], automation: str, extra: str = ""
) -> str:
    """`armed`, then apply: its output."""
    armed(repo, capsys, automation, extra)
    status, err = run(capsys, repo, "apply")
    assert status == 0, err
    return err


def outcomes(repo: Repo) -> list[tuple[str, str]]:
    _, state = Ledger(repo.path, "main").read()
    return [(i.status, i.detail) for i in sorted(state.invocations.values(), key=lambda i: i.key)]


# -- work pools, work queues, deployments ------------------------------------------------


def test_pause_and_resume_a_work_pool_linked_to_an_incident(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique("k8s-prod")
    prefect.work_pool(name)
    pause = "  - type: pause-work-pool\n    source: inferred\n"
    resume = f"  - type: resume-work-pool\n    work_pool_id: {name}\n"
    declare(tracker, capsys, on_declared(pause + pause + resume + pause),
            f"related_resources: [prefect.work-pool.{name}]\n")  # fmt: skip
    assert prefect.get(f"/work_pools/{name}")["is_paused"] is True
    assert [detail for _, detail in outcomes(tracker)] == [
        f"paused work pool {name}",
        f"work pool {name} already paused",
        f"resumed work pool {name}",
        f"paused work pool {name}",
    ]


def test_a_work_pool_named_by_its_uuid_as_prefects_events_name_it(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = unique("pool")
    pool = prefect.work_pool(name)
    tracker.write(
        "automations/act.yaml",
        on_flow_run("prefect.flow-run.Failed", "  - type: pause-work-pool\n    source: inferred\n"),
    )
    tracker.commit("automation", when=T0 + 1)
    assert run(capsys, tracker, "apply")[0] == 0
    events = tmp_path / "events.jsonl"
    event = {
        "id": str(uuid.uuid4()),
        "occurred": OCCURRED,
        "event": "prefect.flow-run.Failed",
        "resource": {"prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}"},
        "related": [
            {
                "prefect.resource.id": f"prefect.work-pool.{pool['id']}",
                "prefect.resource.role": "work-pool",
            }
        ],
    }
    events.write_text(json.dumps(event) + "\n")
    assert run(capsys, tracker, "ingest", str(events))[0] == 0
    assert prefect.get(f"/work_pools/{name}")["is_paused"] is True


def test_pause_and_resume_a_work_queue_and_a_deployment(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = unique("pool")
    prefect.work_pool(pool)
    queue = prefect.post(f"/work_pools/{pool}/queues", {"name": "critical"})
    deployment = prefect.deployment(unique("nightly"), pool)
    flow = prefect.get(f"/flows/{deployment['flow_id']}")["name"]
    actions = (
        f"  - type: pause-work-queue\n    work_queue_id: {queue['id']}\n"
        f"  - type: resume-work-queue\n    work_queue_id: {pool}/critical\n"
        f"  - type: pause-work-queue\n    work_queue_id: {pool}/critical\n"
        f"  - type: pause-deployment\n    deployment_id: {flow}/{deployment['name']}\n"
        f"  - type: resume-deployment\n    deployment_id: {deployment['id']}\n"
        f"  - type: pause-deployment\n    deployment_id: {deployment['name']}\n"
    )
    declare(tracker, capsys, on_declared(actions))
    assert prefect.get(f"/work_queues/{queue['id']}")["is_paused"] is True
    assert prefect.get(f"/deployments/{deployment['id']}")["paused"] is True
    assert [status for status, _ in outcomes(tracker)] == ["done"] * 6


def test_run_a_deployment_once_even_when_apply_is_killed_after_the_call(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    _pool, deployment = prefect.pool_and_deployment("pool", "backfill")
    action = (
        f"  - type: run-deployment\n    deployment_id: {deployment['id']}\n"
        "    parameters: {day: '2027-01-15'}\n    job_variables: {env: {MODE: incident}}\n"
    )
    armed(tracker, capsys, on_declared(action))
    crash_after_the_call(tracker)
    assert len(prefect.flow_runs(deployment["id"])) == 1
    assert run(capsys, tracker, "apply")[0] == 0  # the restart runs it again: same key
    (flow_run,) = prefect.flow_runs(deployment["id"])
    assert flow_run["parameters"] == {"day": "2027-01-15"}
    assert flow_run["job_variables"] == {"env": {"MODE": "incident"}}
    assert flow_run["idempotency_key"].startswith("act/") and flow_run["idempotency_key"].endswith(
        "/0"
    )
    ((status, detail),) = outcomes(tracker)
    assert status == "done" and flow_run["id"] in detail


def test_an_unknown_target_is_a_failed_action_with_prefects_reason(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    actions = (
        "  - type: pause-work-pool\n    work_pool_id: no-such-pool\n"
        f"  - type: pause-deployment\n    deployment_id: {uuid.uuid4()}\n"
        "  - type: pause-deployment\n    deployment_id: no-such-deployment\n"
    )
    armed(tracker, capsys, on_declared(actions))
    assert run(capsys, tracker, "apply")[0] == 1
    assert [s for s, _ in outcomes(tracker)] == ["failed"] * 3
    details = [d for _, d in outcomes(tracker)]
    assert details[0] == 'Prefect has no such object: Work pool "no-such-pool" not found.'
    assert details[1] == "Prefect has no such object: Deployment not found"
    assert (
        details[2]
        == "Prefect has no deployment(s) named 'no-such-deployment': write it as flow/deployment"
    )


# -- flow runs ------------------------------------------------------------------------------


def _flow_run_event(tmp_path: Path, flow_run_id: str, event: str) -> Path:
    events = tmp_path / f"{uuid.uuid4()}.jsonl"
    body = {
        "id": str(uuid.uuid4()),
        "occurred": OCCURRED,
        "event": event,
        "resource": {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}"},
    }
    events.write_text(json.dumps(body) + "\n")
    return events


def _scheduled_run(prefect: Prefect) -> tuple[dict[str, Any], dict[str, Any]]:
    _pool, deployment = prefect.pool_and_deployment("pool", "dep")
    flow_run = prefect.post(f"/deployments/{deployment['id']}/create_flow_run", {})
    return deployment, flow_run


def _state(prefect: Prefect, flow_run_id: str) -> tuple[str, str]:
    state = prefect.get(f"/flow_runs/{flow_run_id}")["state"]
    return state["type"], state["name"]


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("  - type: cancel-flow-run\n", "SCHEDULED", ("CANCELLED", "Cancelled")),
        (
            "  - type: change-flow-run-state\n    state: FAILED\n    name: Broken\n"
            "    message: declared an incident\n",
            "SCHEDULED",
            ("FAILED", "Broken"),
        ),
        ("  - type: suspend-flow-run\n", "RUNNING", ("PAUSED", "Suspended")),
    ],
    ids=["cancel", "change-state", "suspend"],
)
def test_flow_run_actions_on_the_triggering_flow_run(
    tracker: Repo,
    prefect: Prefect,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    action: str,
    before: str,
    after: tuple[str, str],
) -> None:
    _, flow_run = _scheduled_run(prefect)
    if before == "RUNNING":
        prefect.post(
            f"/flow_runs/{flow_run['id']}/set_state", {"state": {"type": "RUNNING"}, "force": True}
        )
    tracker.write("automations/act.yaml", on_flow_run("prefect.flow-run.Late", action))
    tracker.commit("automation", when=T0 + 1)
    assert run(capsys, tracker, "apply")[0] == 0
    events = _flow_run_event(tmp_path, flow_run["id"], "prefect.flow-run.Late")
    status, err = run(capsys, tracker, "ingest", str(events))
    assert status == 0, err
    assert _state(prefect, flow_run["id"]) == after
    ((outcome, detail),) = outcomes(tracker)
    assert outcome == "done" and after[0] in detail


def test_resume_a_suspended_flow_run_and_a_refusal_is_a_failure(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, flow_run = _scheduled_run(prefect)
    resume = "  - type: resume-flow-run\n"
    tracker.write("automations/act.yaml", on_flow_run("prefect.flow-run.Resume", resume))
    tracker.commit("automation", when=T0 + 1)
    assert run(capsys, tracker, "apply")[0] == 0
    # Not paused: Prefect would abort; the action fails with the reason.
    status, err = run(
        capsys,
        tracker,
        "ingest",
        str(_flow_run_event(tmp_path, flow_run["id"], "prefect.flow-run.Resume")),
    )
    assert status == 1
    assert "is not paused: Scheduled (SCHEDULED)" in err
    prefect.post(
        f"/flow_runs/{flow_run['id']}/set_state", {"state": {"type": "RUNNING"}, "force": True}
    )
    prefect.post(
        f"/flow_runs/{flow_run['id']}/set_state",
        {
            "state": {
                "type": "PAUSED",
                "name": "Suspended",
                "state_details": {"pause_reschedule": True},
            },
            "force": True,
        },
    )
    status, err = run(
        capsys,
        tracker,
        "ingest",
        str(_flow_run_event(tmp_path, flow_run["id"], "prefect.flow-run.Resume")),
    )
    assert status == 0, err
    assert _state(prefect, flow_run["id"])[0] != "PAUSED"


# -- without Prefect -----------------------------------------------------------------------


def test_without_the_extra_a_prefect_action_fails_in_one_line_naming_it(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    armed(tracker, capsys, on_declared("  - type: pause-work-pool\n    work_pool_id: x\n"))
    # prefect-client cannot be imported, as where the extra is not installed.
    code = (
        "import sys; sys.modules['prefect'] = None; "
        "from gitops_incidents.cli import main; "
        f"raise SystemExit(main(['--repo', {str(tracker.path)!r}, 'apply']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 1
    assert (
        "  failed: react to a declaration: pause-work-pool: calling Prefect needs the optional "
        "extra: pip install 'gitops-incidents[prefect]'"
    ) in result.stderr.splitlines()


def test_a_prefect_server_that_is_down_is_retried_then_a_failure(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.prefect_server import free_port

    armed(tracker, capsys, on_declared("  - type: pause-work-pool\n    work_pool_id: x\n"))
    down = f"http://127.0.0.1:{free_port()}/api"
    result = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(tracker.path), "apply"],
        env={**os.environ, "PREFECT_API_URL": down, "PREFECT_CLIENT_MAX_RETRIES": "0"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Prefect cannot be reached: ConnectError" in result.stderr
    assert "(after 3 attempts)" in result.stderr


def test_a_prefect_server_that_is_down_then_up_is_retried_to_success(
    tracker: Repo, prefect: Prefect, prefect_api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.prefect_server import late_proxy

    name = unique("k8s-prod")
    prefect.work_pool(name)
    armed(tracker, capsys, on_declared(f"  - type: pause-work-pool\n    work_pool_id: {name}\n"))
    result = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(tracker.path), "apply"],
        env={**os.environ, "PREFECT_API_URL": late_proxy(prefect_api, after=1.5),
             "PREFECT_CLIENT_MAX_RETRIES": "0", "GITOPS_INCIDENTS_RETRY_DELAY": "1"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        f"done: react to a declaration: pause-work-pool: paused work pool {name}" in result.stderr
    )
    assert prefect.get(f"/work_pools/{name}")["is_paused"] is True


# -- events out: automations inside Prefect react to incidents in git ---------------------

SEED_TRIGGER = {
    "match": {"prefect.resource.id": "prefect-cloud.incident.*"},
    "expect": ["prefect-cloud.incident.declared"],
    "posture": "Reactive",
    "threshold": 1,
    "within": 0,
}


def _wait(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def test_a_prefect_automation_with_the_seed_trigger_pauses_a_pool_on_a_commit(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique("k8s-prod")
    pool = prefect.work_pool(name)
    automation = prefect.post(
        "/automations/",
        {
            "name": unique("pause on declared"),
            "trigger": {"type": "event", **SEED_TRIGGER},
            "actions": [
                {"type": "pause-work-pool", "source": "selected", "work_pool_id": pool["id"]}
            ],
        },
    )
    time.sleep(1)  # an automation reaches Prefect's trigger cache a moment later
    tracker.write("gitops-incidents.yaml", "prefect: {emit_events: true}\n")
    tracker.commit("emit events to Prefect", when=T0 + 1)
    status, err = run(capsys, tracker, "apply")
    assert status == 0 and "published" not in err  # the past is not sent
    tracker.write("incidents/db.yaml", "name: Database down\nseverity: SEV-1\n")
    tracker.commit("declare", when=T0 + 2)
    status, err = run(capsys, tracker, "apply")
    assert status == 0, err
    assert "published 1 event(s) to Prefect" in err
    _wait(lambda: prefect.get(f"/work_pools/{name}")["is_paused"])
    assert run(capsys, tracker, "apply")[1].count("published") == 0  # once
    _, state = Ledger(tracker.path, "main").read()
    assert state.emitted == tracker.head()
    prefect.http.delete(f"/automations/{automation['id']}")


def test_events_not_published_while_prefect_is_down_are_published_later(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.prefect_server import free_port

    tracker.write("gitops-incidents.yaml", "prefect: {emit_events: true}\n")
    tracker.commit("emit events to Prefect", when=T0 + 1)
    assert run(capsys, tracker, "apply")[0] == 0
    name = unique("incident")
    tracker.write(f"incidents/{name}.yaml", "name: While Prefect is down\nseverity: SEV-2\n")
    tracker.commit("declare", when=T0 + 2)
    down = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(tracker.path), "apply"],
        env={**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
             "PREFECT_CLIENT_MAX_RETRIES": "0"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert down.returncode == 1
    assert "events not published to Prefect (Prefect cannot be reached" in down.stderr
    status, err = run(capsys, tracker, "apply")
    assert status == 0 and "published 1 event(s) to Prefect" in err

    def stored() -> bool:
        found = prefect.post(
            "/events/filter",
            {"filter": {"resource": {"id": [f"prefect-cloud.incident.{name}"]},
                        "occurred": {"since": "2020-01-01T00:00:00Z", "until": "2099-12-31T00:00:00Z"}}},
        )  # fmt: skip
        return bool(found["events"])

    _wait(stored)


# -- events in: a failing flow run declares an incident ----------------------------------


def test_a_failing_flow_run_in_prefect_declares_an_incident_linked_to_it(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    pool, deployment = prefect.pool_and_deployment("k8s-prod", "nightly-etl")
    declare_it = (
        "  - type: declare-incident\n"
        "    name: Flow run {{ event.resource.name }} failed\n"
        "    severity: SEV-2\n"
    )
    automation = on_flow_run("prefect.flow-run.Failed", declare_it).replace(
        "  match: {prefect.resource.id: prefect.flow-run.*}\n",
        "  match: {prefect.resource.id: prefect.flow-run.*}\n"
        f"  match_related: {{prefect.resource.id: 'prefect.deployment.{deployment['id']}'}}\n",
    )
    tracker.write("automations/declare.yaml", automation)
    tracker.commit("declare on a failed run", when=T0 + 1)
    assert run(capsys, tracker, "apply")[0] == 0
    assert run(capsys, tracker, "ingest", "--from-prefect", "--once")[0] == 0  # starts now
    flow_run = prefect.failed_run(deployment["id"])

    def declared() -> list[Path]:
        status, err = run(capsys, tracker, "ingest", "--from-prefect", "--once")
        assert status == 0, err
        return [p for p in (tracker.path / "incidents").iterdir() if p.name.startswith("flow-run-")]

    _wait(lambda: bool(declared()))
    (incident,) = declared()  # read again: not declared twice
    text = incident.read_text()
    assert f"name: Flow run {flow_run['name']} failed" in text
    for resource in (
        f"prefect.flow-run.{flow_run['id']}",
        f"prefect.deployment.{deployment['id']}",
    ):
        assert resource in text
    pool_id = prefect.get(f"/work_pools/{pool}")["id"]
    assert f"prefect.work-pool.{pool_id}" in text


# -- declare from a resource ------------------------------------------------------------


def test_declare_from_a_failed_flow_run_links_it_and_what_it_ran_on(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    from gitops_incidents.validation import validate

    pool, deployment = prefect.pool_and_deployment("k8s-prod", "nightly-etl")
    flow_run = prefect.failed_run(deployment["id"])
    read = prefect.get(f"/flow_runs/{flow_run['id']}")
    capsys.readouterr()
    status = main(["--repo", str(tracker.path), "declare", "--from",
                   f"prefect.flow-run.{flow_run['id']}", "--severity", "SEV-2"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 0, err
    name = f"Flow run {flow_run['name']} failed"
    path = tracker.path / "incidents" / f"flow-run-{flow_run['name']}-failed.yaml"
    text = path.read_text()
    assert f"name: {name}\n" in text
    flow = prefect.get(f"/flows/{deployment['flow_id']}")
    for line in (
        f"- {{id: prefect.flow-run.{flow_run['id']}, role: flow-run, name: {flow_run['name']}}}",
        f"- {{id: prefect.flow.{flow['id']}, role: flow, name: {flow['name']}}}",
        f"- {{id: prefect.deployment.{deployment['id']}, role: deployment, name: {deployment['name']}}}",
        f"- {{id: prefect.work-queue.{read['work_queue_id']}, role: work-queue, name: default}}",
        f"- {{id: prefect.work-pool.{read['work_pool_id']}, role: work-pool, name: {pool}}}",
    ):
        assert line in text.splitlines(), text
    assert validate(tracker.path).errors == 0
    assert tracker.git("log", "-1", "--format=%s").startswith(
        f"Declare flow-run-{flow_run['name']}"
    )


def test_declare_from_an_unknown_resource_says_prefects_reason(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    status = main(["--repo", str(tracker.path), "declare", "--from",
                   f"prefect.flow-run.{uuid.uuid4()}", "--severity", "SEV-2"])  # fmt: skip
    assert status == 1
    assert "Prefect has no such object: Flow run not found" in capsys.readouterr().err


# -- impact from Prefect -------------------------------------------------------------------


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def test_impact_counts_flow_runs_in_the_window_and_keeps_them_once_closed(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    pool, deployment = prefect.pool_and_deployment("k8s-prod", "nightly-etl")
    start = int(time.time()) - 1800
    end = start + 600
    for offset, final in ((-300, "COMPLETED"), (60, "FAILED"), (120, "COMPLETED"), (180, None)):
        scheduled = {"type": "SCHEDULED", "state_details": {"scheduled_time": _iso(start + offset)}}
        flow_run = prefect.post(
            f"/deployments/{deployment['id']}/create_flow_run", {"state": scheduled}
        )
        if final:
            prefect.post(
                f"/flow_runs/{flow_run['id']}/set_state", {"state": {"type": final}, "force": True}
            )
    tracker.write(
        "incidents/etl.yaml",
        f"name: ETL down\nseverity: SEV-2\nstatus: resolved\nstart_time: {_iso(start)}\n"
        f"end_time: {_iso(end)}\nrelated_resources:\n"
        f"  - {{id: prefect.deployment.{deployment['id']}, name: nightly-etl}}\n"
        f"  - prefect.work-pool.{pool}\n",
    )
    tracker.commit("backfill the ETL incident", when=T0 + 5)
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "report", "etl", "--format", "json"]) == 0
    figures = json.loads(capsys.readouterr().out)["prefect_impact"]
    during = {"failed": 1, "crashed": 0, "late": 0, "completed": 1, "all": 3}
    before = {"failed": 0, "crashed": 0, "late": 0, "completed": 1, "all": 1}
    assert [(r["name"], r["during"], r["before"]) for r in figures["rows"]] == [
        ("nightly-etl", during, before),
        ("", during, before),
    ]
    # The window is closed: a later report needs no Prefect.
    from tests.prefect_server import free_port

    later = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(tracker.path), "report", "etl"],
        env={**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert later.returncode == 0, later.stderr
    assert (
        "| nightly-etl | failed 1 (0) · crashed 0 (0) · late 0 (0) · completed 1 (1) · all 3 (1) |"
        in later.stdout
    )
    # And on the incident's page.
    import shutil

    from tests.conftest import ROOT

    shutil.copytree(ROOT / "site", tracker.path / "site", ignore=shutil.ignore_patterns("build"))
    out = tracker.path.parent / "out"
    assert main(["--repo", str(tracker.path), "build", "--out", str(out)]) == 0
    page = (out / "incidents" / "etl.html").read_text()
    row = "failed 1 (0) · crashed 0 (0) · late 0 (0) · completed 1 (1) · all 3 (1)"
    assert f"<td>nightly-etl</td><td>{row}</td>" in page


def test_a_build_with_prefect_down_says_so_on_the_page_and_does_not_wait(
    tracker: Repo, tmp_path: Path
) -> None:
    import shutil

    from tests.conftest import ROOT
    from tests.prefect_server import free_port

    shutil.copytree(ROOT / "site", tracker.path / "site", ignore=shutil.ignore_patterns("build"))
    tracker.write(
        "incidents/db.yaml",
        "name: Database down\nseverity: SEV-1\nrelated_resources: [prefect.work-pool.k8s]\n",
    )
    tracker.commit("declare", when=T0 + 5)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(tracker.path), "build", "--out", str(tmp_path / "out")],
        env={**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    page = (tmp_path / "out" / "incidents" / "db.html").read_text()
    assert "Not measured: Prefect does not answer" in page


def test_pause_once_when_apply_is_killed_between_the_call_and_the_ledger(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique("k8s-prod")
    prefect.work_pool(name)
    armed(tracker, capsys, on_declared(f"  - type: pause-work-pool\n    work_pool_id: {name}\n"))
    crash_after_the_call(tracker)
    assert prefect.get(f"/work_pools/{name}")["is_paused"] is True
    assert run(capsys, tracker, "apply")[0] == 0  # the restart: safe to repeat
    assert outcomes(tracker) == [("done", f"work pool {name} already paused")]
    pauses = prefect.post(
        "/events/filter",
        {"filter": {"event": {"name": ["prefect.work-pool.paused"]},
                    "resource": {"id": [f"prefect.work-pool.{prefect.get(f'/work_pools/{name}')['id']}"]},
                    "occurred": {"since": "2020-01-01T00:00:00Z", "until": "2099-12-31T00:00:00Z"}}},
    )  # fmt: skip
    assert len(pauses["events"]) <= 1  # paused once (the event may not be stored yet)


def test_declare_from_a_work_pool_a_deployment_or_a_block(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    pool, deployment = prefect.pool_and_deployment("k8s-prod", "nightly-etl")
    pool_id = prefect.get(f"/work_pools/{pool}")["id"]
    flow = prefect.get(f"/flows/{deployment['flow_id']}")
    block_type = prefect.post(
        "/block_types/", {"name": unique("Warehouse"), "slug": unique("warehouse")}
    )
    schema = prefect.post(
        "/block_schemas/",
        {"fields": {"title": "Warehouse", "type": "object", "properties": {}},
         "block_type_id": block_type["id"], "capabilities": []},
    )  # fmt: skip
    block = prefect.post(
        "/block_documents/",
        {"name": unique("orders-db"), "data": {}, "block_schema_id": schema["id"],
         "block_type_id": block_type["id"]},
    )  # fmt: skip
    cases = [
        (
            f"prefect.work-pool.{pool}",
            f"Work pool {pool} has no ready worker",
            [f"- {{id: prefect.work-pool.{pool_id}, role: work-pool, name: {pool}}}"],
        ),
        (
            f"prefect.deployment.{flow['name']}/{deployment['name']}",
            f"Deployment {flow['name']}/{deployment['name']} failing",
            [
                f"- {{id: prefect.deployment.{deployment['id']}, role: deployment, name: {deployment['name']}}}",
                f"- {{id: prefect.flow.{flow['id']}, role: flow, name: {flow['name']}}}",
                f"- {{id: prefect.work-pool.{pool_id}, role: work-pool, name: {pool}}}",
            ],
        ),
        (
            f"prefect.block-document.{block['id']}",
            f"Block {block['name']} failing",
            [
                f"- {{id: prefect.block-document.{block['id']}, role: block-document, name: {block['name']}}}"
            ],
        ),
    ]
    for source, name, links in cases:
        capsys.readouterr()
        status = main(
            ["--repo", str(tracker.path), "declare", "--from", source, "--severity", "SEV-3"]
        )
        err = capsys.readouterr().err
        assert status == 0, err
        assert f": {name}" in err
        relpath = err.split("declared ", 1)[1].split(":", 1)[0]
        lines = (tracker.path / relpath).read_text().splitlines()
        for link in links:
            assert link in lines, (source, lines)


def _declaring_failed_runs(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """An automation that declares an incident when a run of a new deployment fails,
    applied; the deployment."""
    _pool, deployment = prefect.pool_and_deployment("k8s-prod", "nightly-etl")
    declare_it = "  - type: declare-incident\n    name: Flow run {{ event.resource.name }} failed\n    severity: SEV-2\n"
    automation = on_flow_run("prefect.flow-run.Failed", declare_it).replace(
        "  posture: Reactive\n",
        f"  match_related: {{prefect.resource.id: 'prefect.deployment.{deployment['id']}'}}\n  posture: Reactive\n",
    )
    tracker.write("automations/declare.yaml", automation)
    tracker.commit("declare on a failed run", when=T0 + 1)
    assert run(capsys, tracker, "apply")[0] == 0
    return deployment


def test_following_the_live_stream_declares_at_once_and_stops_on_sigterm(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    deployment = _declaring_failed_runs(tracker, prefect, capsys)
    assert run(capsys, tracker, "ingest", "--from-prefect", "--once")[0] == 0  # the cursor: now
    follower = subprocess.Popen(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(tracker.path), "ingest", "--from-prefect"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stderr is not None
        while "following Prefect's events" not in follower.stderr.readline():
            assert follower.poll() is None
        time.sleep(1)  # the websocket is open
        started = time.monotonic()
        flow_run = prefect.failed_run(deployment["id"])

        def declared() -> bool:
            return f"Declare flow-run-{flow_run['name']}" in tracker.git(
                "log", "--format=%s", "main"
            )

        _wait(declared, timeout=30)
        latency = time.monotonic() - started
    finally:
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=30) == 0
    assert latency < 5  # here about 1.2 s: a batch of the stream is at most 1 s old
    # Restarted, it catches up from its cursor and declares nothing twice.
    assert run(capsys, tracker, "ingest", "--from-prefect", "--once")[0] == 0
    assert tracker.git("log", "--format=%s", "main").count("Declare flow-run-") == 1


def test_the_daemon_follows_prefects_events_and_catches_up_after_a_restart(
    tracker: Repo, prefect: Prefect, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    deployment = _declaring_failed_runs(tracker, prefect, capsys)
    command = [sys.executable, "-m", "gitops_incidents", "--repo", str(tracker.path), "watch",
               "--prefect-events", "--interval", "0.5"]  # fmt: skip

    def watch() -> subprocess.Popen[str]:
        daemon = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        assert daemon.stderr is not None
        while "following Prefect's events" not in daemon.stderr.readline():
            assert daemon.poll() is None
        time.sleep(1)  # the websocket is open
        return daemon

    def declared() -> list[str]:
        log = tracker.git("log", "--format=%s", "main")
        return [line for line in log.splitlines() if line.startswith("Declare flow-run-")]

    daemon = watch()
    started = time.monotonic()
    first = prefect.failed_run(deployment["id"])
    _wait(lambda: len(declared()) == 1, timeout=30)
    latency = time.monotonic() - started
    daemon.send_signal(signal.SIGTERM)
    _, log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log
    assert "evaluated Prefect's events" in log and " error " not in log
    assert latency < 3  # a batch at most 0.25 s apart, after Prefect's own delivery
    second = prefect.failed_run(deployment["id"])  # while no daemon runs
    daemon = watch()  # caught up from its cursor first
    _wait(lambda: len(declared()) == 2, timeout=30)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    for flow_run in (first, second):  # each declared once
        assert sum(f"Flow run {flow_run['name']} failed" in s for s in declared()) == 1


CONFIGURED = """
import sys
from gitops_incidents.actions import ActionFailed
from gitops_incidents.prefect import client
try:
    client.configured()
    print("configured", "prefect" in sys.modules)
except ActionFailed as exc:
    print("not configured", "prefect" in sys.modules, exc)
"""


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        (None, "not configured False"),  # nowhere: said without importing Prefect
        ("profile", "configured True"),
        (".env", "configured True"),
        ("prefect.toml", "configured True"),
        ("pyproject.toml", "configured True"),
    ],
)
def test_an_api_set_anywhere_prefect_reads_is_found(
    tmp_path: Path, place: str | None, expected: str
) -> None:
    url = "http://127.0.0.1:9/api"
    home, cwd = tmp_path / "home", tmp_path / "work"
    cwd.mkdir(parents=True)
    if place == "profile":
        (home / ".prefect").mkdir(parents=True)
        (home / ".prefect" / "profiles.toml").write_text(
            f'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "{url}"\n'
        )
    elif place == ".env":
        (cwd / ".env").write_text(f"PREFECT_API_URL={url}\n")
    elif place == "prefect.toml":
        (cwd / "prefect.toml").write_text(f'[api]\nurl = "{url}"\n')
    elif place == "pyproject.toml":
        (cwd / "pyproject.toml").write_text(f'[tool.prefect.api]\nurl = "{url}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "HOME": str(home)
    }
    result = subprocess.run(
        [sys.executable, "-c", CONFIGURED], cwd=cwd, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert result.stdout.startswith(expected), result.stdout + result.stderr
