"""The automation engine end to end: real git repositories, a real HTTP server on
127.0.0.1, `apply` in this process and in separate processes (crashes, races)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitops_incidents import gitcmd, snapshot
from gitops_incidents.cli import main
from gitops_incidents.commands.ingest import parse_event
from gitops_incidents.faults import CRASH_EXIT
from gitops_incidents.ledger import LEASE, Claim, Ledger
from tests.conftest import CONFIG, T0, Repo, tallies
from tests.webhook_server import Receiver

NS = "prefect-cloud"
BOT = ("gitops-incidents", "bot@example.invalid")


def incident(name: str, severity: str = "SEV-2", extra: str = "") -> str:
    return f"name: {name}\nseverity: {severity}\n{extra}"


def automation(expect: str, actions_yaml: str, extra: str = "") -> str:
    return (
        f"name: on {expect}\n"
        "trigger:\n"
        f"  match: {{prefect.resource.id: {NS}.incident.*}}\n"
        f"  expect: [{expect}]\n"
        "  posture: Reactive\n"
        f"{extra}"
        f"actions:\n{actions_yaml}"
    )


PAGER = "  - type: call-webhook\n    target: pager\n"
SLACK = "  - type: send-notification\n    target: slack\n    body: '{{ event.resource.name }}'\n"


def apply(repo: Repo, *args: str) -> int:
    return main(["--repo", str(repo.path), "apply", *args])


def apply_process(repo: Repo, *args: str, crash: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if crash:
        env["GITOPS_INCIDENTS_CRASH"] = crash
    return subprocess.Popen(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(repo.path), "apply"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def state(repo: Repo) -> dict[str, str]:
    """Each invocation's status."""
    _, engine_state = Ledger(repo.path, "main").read()
    return {key: i.status for key, i in engine_state.invocations.items()}


def bot_commits(repo: Repo) -> list[str]:
    log = repo.git("log", "--format=%H %an", "main")
    return [line.split()[0] for line in log.splitlines() if line.endswith(BOT[0])]


# -- the basics ----------------------------------------------------------------------------


@pytest.mark.parametrize("first", [True, False], ids=["on the first apply", "in a later commit"])
def test_an_invalid_automation_is_reported_on_the_first_apply_as_later(
    tracker: Repo, first: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12, item 5: the first `apply` (which starts at HEAD) reports an invalid
    automation file as a later commit that adds it is reported."""
    if not first:
        assert apply(tracker) == 0
    tracker.write("automations/broken.yaml", "name: broken\ntrigger:\n  posture: Sideways\n")
    tracker.commit("broken", when=T0 + 5)
    capsys.readouterr()
    code = apply(tracker)
    err = capsys.readouterr().err
    assert "warning: automations/broken.yaml:3:" in err and "posture" in err
    assert code == 0  # the same either way: a warning, as for any commit apply walks


def test_first_apply_starts_at_head_then_acts_once_per_firing(
    tracker: Repo, receiver: Receiver
) -> None:
    tracker.write("automations/page.yaml", automation(f"{NS}.incident.declared", PAGER))
    tracker.commit("page on declare", when=T0 + 10)
    assert apply(tracker) == 0
    assert receiver.to("/pager") == []  # nothing from before the first run

    tracker.write("incidents/db.yaml", incident("Database down"))
    tracker.commit("declare", when=T0 + 20)
    assert apply(tracker) == 0
    assert apply(tracker) == 0  # a re-run finds nothing new
    (request,) = receiver.to("/pager")
    event = request.json()
    assert event["event"] == f"{NS}.incident.declared"
    assert event["resource"]["prefect.resource.name"] == "Database down"
    key = request.headers["Idempotency-Key"]
    assert key.startswith("page/") and key.endswith("/0")
    assert state(tracker) == {key: "done"}


def test_replay_acts_on_the_past_but_not_before_an_automation_existed(
    tracker: Repo, receiver: Receiver
) -> None:
    tracker.write("incidents/a.yaml", incident("Before the automation"))
    tracker.commit("a", when=T0 + 10)
    tracker.write("automations/page.yaml", automation(f"{NS}.incident.declared", PAGER))
    tracker.commit("page on declare", when=T0 + 20)
    tracker.write("incidents/b.yaml", incident("After the automation"))
    tracker.commit("b", when=T0 + 30)
    assert apply(tracker, "--replay") == 0
    names = [r.json()["resource"]["prefect.resource.name"] for r in receiver.to("/pager")]
    assert names == ["After the automation"]
    assert apply(tracker, "--replay") == 2  # only a first run replays


def test_automation_added_later_never_acts_on_the_past(tracker: Repo, receiver: Receiver) -> None:
    assert apply(tracker) == 0
    tracker.write("incidents/a.yaml", incident("A"))
    tracker.commit("a", when=T0 + 10)
    tracker.write("automations/page.yaml", automation(f"{NS}.incident.declared", PAGER))
    tracker.write("incidents/b.yaml", incident("B, in the commit that adds the automation"))
    tracker.commit("page on declare, and b", when=T0 + 20)
    tracker.write("incidents/c.yaml", incident("C"))
    tracker.commit("c", when=T0 + 20)  # the same second: still after
    assert apply(tracker) == 0
    names = [r.json()["resource"]["prefect.resource.name"] for r in receiver.to("/pager")]
    assert names == ["C"]


def test_paused_automation_does_not_act_and_resumes_for_new_events_only(
    tracker: Repo, receiver: Receiver
) -> None:
    page = automation(f"{NS}.incident.declared", PAGER)
    tracker.write("automations/page.yaml", page)
    tracker.commit("page", when=T0 + 1)
    assert apply(tracker) == 0
    tracker.write("automations/page.yaml", page.replace("name:", "enabled: false\nname:"))
    tracker.commit("pause", when=T0 + 2)
    tracker.write("incidents/a.yaml", incident("While paused"))
    tracker.commit("a", when=T0 + 3)
    tracker.write("automations/page.yaml", page)
    tracker.commit("resume", when=T0 + 4)
    tracker.write("incidents/b.yaml", incident("After resuming"))
    tracker.commit("b", when=T0 + 5)
    assert apply(tracker) == 0
    names = [r.json()["resource"]["prefect.resource.name"] for r in receiver.to("/pager")]
    assert names == ["After resuming"]


# -- crashes -------------------------------------------------------------------------------


def _declare_with(tracker: Repo, actions_yaml: str, count: int = 1) -> None:
    tracker.write("automations/act.yaml", automation(f"{NS}.incident.declared", actions_yaml))
    tracker.commit("automation", when=T0 + 1)
    assert apply(tracker) == 0
    for n in range(count):
        tracker.write(f"incidents/i{n}.yaml", incident(f"Incident {n}"))
    tracker.commit("declare", when=T0 + 2)


def test_crash_after_sending_a_webhook_resends_with_the_same_key(
    tracker: Repo, receiver: Receiver
) -> None:
    _declare_with(tracker, PAGER)
    crashed = apply_process(tracker, crash="after-send")
    assert crashed.wait() == CRASH_EXIT
    assert list(state(tracker).values()) == ["running"]
    assert apply(tracker) == 0
    # Delivered twice with one Idempotency-Key: an idempotent receiver acts once.
    assert list(receiver.deliveries("/pager").values()) == [2]
    assert list(state(tracker).values()) == ["done"]
    assert apply(tracker) == 0
    assert len(receiver.to("/pager")) == 2


def test_crash_after_sending_a_notification_is_unknown_never_resent(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    _declare_with(tracker, SLACK)
    assert apply_process(tracker, crash="after-send").wait() == CRASH_EXIT
    assert apply(tracker) == 1  # the outcome is unknown: reported, exit 1
    assert len(receiver.to("/slack")) == 1
    assert list(state(tracker).values()) == ["unknown"]
    assert apply(tracker) == 0  # reported once; never sent again
    assert len(receiver.to("/slack")) == 1
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "status"]) == 0
    assert "unknown: act/" in capsys.readouterr().err


def test_crash_before_the_state_is_recorded_evaluates_again_once(
    tracker: Repo, receiver: Receiver
) -> None:
    _declare_with(tracker, PAGER + SLACK)
    assert apply_process(tracker, crash="before-state").wait() == CRASH_EXIT
    assert receiver.requests == []
    assert apply(tracker) == 0
    assert len(receiver.to("/pager")) == 1 and len(receiver.to("/slack")) == 1


COMMENT = "  - type: comment-on-incident\n    source: inferred\n    text: Seen by {{ automation.name }}.\n"


def test_crash_after_committing_finds_the_commit_instead_of_committing_again(
    tracker: Repo,
) -> None:
    _declare_with(tracker, COMMENT)
    assert apply_process(tracker, crash="after-commit").wait() == CRASH_EXIT
    assert len(bot_commits(tracker)) == 1
    assert apply(tracker) == 0
    assert len(bot_commits(tracker)) == 1
    _, engine_state = Ledger(tracker.path, "main").read()
    (invocation,) = engine_state.invocations.values()
    assert invocation.status == "done" and "found after a restart" in invocation.detail
    text = gitcmd.read_blob(tracker.path, "main", "incidents/i0.yaml") or b""
    assert text.count(b"Seen by") == 1


def test_two_runners_racing_deliver_each_action_exactly_once(
    tracker: Repo, receiver: Receiver
) -> None:
    _declare_with(tracker, PAGER + SLACK + COMMENT, count=6)
    runners = [apply_process(tracker) for _ in range(3)]
    for runner in runners:
        _, err = runner.communicate(timeout=120)
        assert runner.returncode == 0, err.decode()
    assert apply(tracker) == 0
    pager, slack = receiver.deliveries("/pager"), receiver.deliveries("/slack")
    assert len(pager) == 6 and set(pager.values()) == {1}
    assert len(slack) == 6 and set(slack.values()) == {1}
    assert len(bot_commits(tracker)) == 6
    assert set(state(tracker).values()) == {"done"}


# -- commits by actions ----------------------------------------------------------------------


def test_a_human_commit_landing_meanwhile_is_kept(
    tracker: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _declare_with(tracker, COMMENT)
    real = gitcmd.commit_tree
    landed: list[str] = []

    def racing_commit_tree(
        root: Path,
        parent: str | None,
        files: dict[str, bytes | None],
        message: str,
        env: dict[str, str] | None = None,
    ) -> str:
        if "incidents/i0.yaml" in files and not landed:
            # Between the action's read of the branch and its publishing.
            tracker.write(
                "incidents/i0.yaml", incident("Incident 0", extra="summary: by a human\n")
            )
            landed.append(tracker.commit("human edit", author=("Human", "h@example.invalid")))
        return real(root, parent, files, message, env)

    monkeypatch.setattr(gitcmd, "commit_tree", racing_commit_tree)
    assert apply(tracker) == 0
    (bot,) = bot_commits(tracker)
    assert tracker.git("rev-parse", f"{bot}^").strip() == landed[0]
    text = (gitcmd.read_blob(tracker.path, "main", "incidents/i0.yaml") or b"").decode()
    assert "summary: by a human" in text and "Seen by" in text
    # The checked-out working tree follows the branch.
    assert "Seen by" in (tracker.path / "incidents/i0.yaml").read_text()
    assert tracker.git("status", "--porcelain") == ""


def test_action_commits_carry_the_bot_the_trailer_and_gits_dates(
    tracker: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _declare_with(tracker, COMMENT)
    monkeypatch.setenv("GIT_COMMITTER_DATE", f"@{T0 + 500} +0000")
    monkeypatch.setenv("GIT_AUTHOR_DATE", f"@{T0 + 400} +0000")
    assert apply(tracker) == 0
    (bot,) = bot_commits(tracker)
    fields = tracker.git("show", "-s", "--format=%an|%ae|%at|%ct|%(trailers:valueonly)", bot)
    name, email, authored, committed, trailer = fields.strip().split("|")
    assert (name, email) == BOT
    assert (int(authored), int(committed)) == (T0 + 400, T0 + 500)
    assert trailer.startswith("act/") and trailer.endswith("/0")


def test_loop_guard_stops_an_automation_reacting_to_itself(tracker: Repo) -> None:
    tracker.write(
        "automations/echo.yaml",
        automation(f"{NS}.incident.comment.added", COMMENT),
    )
    tracker.write("incidents/a.yaml", incident("A"))
    tracker.commit("echo comments", when=T0 + 1)
    assert apply(tracker) == 0
    tracker.write("incidents/a.yaml", incident("A", extra="comments:\n  - text: hello\n"))
    tracker.commit("comment", when=T0 + 2)
    assert apply(tracker) == 0
    assert apply(tracker) == 0
    assert len(bot_commits(tracker)) == 1  # its own comment does not trigger it again


def start_then_declare_x(tracker: Repo) -> None:
    """Commit the automations written, start the engine, declare incident x, apply."""
    tracker.commit("automations", when=T0 + 1)
    assert apply(tracker) == 0
    tracker.write("incidents/x.yaml", incident("X"))
    tracker.commit("declare", when=T0 + 2)
    assert apply(tracker) == 0


def test_automations_chain_through_commits_within_one_apply(tracker: Repo) -> None:
    """declare -> (A) comment -> (B) severity change: the second commit is evaluated in
    the same apply, and each automation acts once."""
    tracker.write("automations/a.yaml", automation(f"{NS}.incident.declared", COMMENT))
    severity = "  - type: change-incident-severity\n    source: inferred\n    severity: SEV-1\n"
    tracker.write("automations/b.yaml", automation(f"{NS}.incident.comment.added", severity))
    start_then_declare_x(tracker)
    text = (gitcmd.read_blob(tracker.path, "main", "incidents/x.yaml") or b"").decode()
    assert "severity: SEV-1" in text and "Seen by on" in text
    assert len(bot_commits(tracker)) == 2


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_pause_automation_flips_enabled_in_yaml_and_json(tracker: Repo, suffix: str) -> None:
    target = {
        "name": "target",
        "trigger": {"expect": ["x"], "posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
    }
    if suffix == ".json":
        tracker.write(f"automations/target{suffix}", json.dumps(target, indent=4) + "\n")
    else:
        tracker.write(
            f"automations/target{suffix}",
            "# kept\nname: target\ntrigger: {expect: [x], posture: Reactive}\n"
            "actions:\n  - type: do-nothing\n",
        )
    pause = "  - type: pause-automation\n    automation_id: target\n"
    tracker.write("automations/pauser.yaml", automation(f"{NS}.incident.declared", pause))
    start_then_declare_x(tracker)
    text = (gitcmd.read_blob(tracker.path, "main", f"automations/target{suffix}") or b"").decode()
    if suffix == ".json":
        assert json.loads(text)["enabled"] is False and '\n    "name"' in text
    else:
        assert text.startswith("# kept\n") and "enabled: false" in text
    assert main(["--repo", str(tracker.path), "validate"]) == 0


def test_declare_incident_writes_a_valid_file_with_inferred_resources(tracker: Repo) -> None:
    declare = (
        "  - type: declare-incident\n"
        "    name: 'Follow-up of {{ event.resource.name }}'\n"
        "    summary: 'Opened because {{ event.resource.id }} was declared.'\n"
        "    severity: SEV-3\n"
        "    tags: [follow-up]\n"
    )
    tracker.write(
        "automations/follow.yaml",
        automation(f"{NS}.incident.declared", declare).replace(
            "  posture", "  match_related: {prefect.resource.role: work-pool}\n  posture"
        ),
    )
    tracker.commit("follow-ups", when=T0 + 1)
    assert apply(tracker) == 0
    tracker.write(
        "incidents/x.yaml",
        incident("Pool <b>down</b>", extra="related_resources: [prefect.work-pool.k8s]\n"),
    )
    tracker.commit("declare", when=T0 + 2)
    assert apply(tracker) == 0
    files = sorted(p.name for p in (tracker.path / "incidents").iterdir())
    (declared,) = [f for f in files if f.startswith("follow-up-of-pool-b-down-b-")]
    text = (tracker.path / "incidents" / declared).read_text()
    assert "name: Follow-up of Pool <b>down</b>" in text
    assert "prefect.work-pool.k8s" in text and f"{NS}.incident.x" in text
    assert main(["--repo", str(tracker.path), "validate"]) == 0


# -- failures --------------------------------------------------------------------------------


def test_failures_are_recorded_with_reasons_and_block_nothing(
    tracker: Repo,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PAGER_URL", "http://127.0.0.1:9/unreachable")  # discard port: refused
    monkeypatch.delenv("TEAMS_URL")
    receiver.failures["/hook"] = 2  # two 503s, then 200: transient, retried
    broken_template = "  - type: send-notification\n    target: slack\n    body: '{{ 1 / 0 }}'\n"
    teams = "  - type: send-notification\n    target: teams\n    body: x\n"
    hook = "  - type: send-notification\n    target: hook\n    body: '{{ event.event }}'\n"
    prefect = "  - type: pause-work-pool\n    work_pool_id: k8s\n"
    _declare_with(tracker, PAGER + broken_template + teams + prefect + hook)
    capsys.readouterr()
    assert apply(tracker) == 1
    err = capsys.readouterr().err
    assert (
        "failed: on prefect-cloud.incident.declared: call-webhook: POST http://127.0.0.1:9/…: ConnectError"
        in err
    )
    assert "(after 3 attempts)" in err
    assert "template failed at render time: division by zero" in err
    assert "environment variable TEAMS_URL is not set" in err
    assert "PREFECT_API_URL" in err
    statuses = sorted(state(tracker).values())
    assert statuses == ["done", "failed", "failed", "failed", "failed"]
    assert len(receiver.to("/hook")) == 3
    # A later commit is still processed; failed actions are not run again.
    tracker.write("incidents/later.yaml", incident("Later"))
    tracker.commit("later", when=T0 + 3)
    assert apply(tracker) == 1
    assert len(receiver.to("/hook")) == 4
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "status"]) == 0
    assert capsys.readouterr().err.count("failed: act/") == 8


def test_apprise_and_teams_notifications(tracker: Repo, receiver: Receiver) -> None:
    notify = (
        "  - type: send-notification\n    target: apprise\n    subject: 'Declared'\n"
        "    body: '{{ event.resource.name }}'\n"
        "  - type: send-notification\n    target: teams\n    body: '{{ event.resource.name }}'\n"
    )
    _declare_with(tracker, notify)
    assert apply(tracker) == 0
    (sent,) = receiver.to("/apprise")
    assert sent.json()["title"] == "Declared" and sent.json()["message"] == "Incident 0"
    (card,) = receiver.to("/teams")
    assert card.json()["text"] == "Incident 0"


# -- history rewritten -----------------------------------------------------------------------


def test_force_push_with_the_same_changes_fires_nothing_again(
    tracker: Repo, receiver: Receiver
) -> None:
    tracker.write("automations/page.yaml", automation(f"{NS}.incident.*", PAGER))
    base = tracker.commit("page on anything", when=T0 + 1)
    assert apply(tracker) == 0
    tracker.write("incidents/a.yaml", incident("A"))
    tracker.commit("declare a", when=T0 + 2)
    tracker.write("incidents/a.yaml", incident("A", severity="SEV-1"))
    tracker.commit("raise a", when=T0 + 3)
    assert apply(tracker) == 0
    assert len(receiver.to("/pager")) == 2
    # The same changes again, as new commits (other messages and dates): a rebase.
    tracker.git("reset", "-q", "--hard", base)
    tracker.write("incidents/a.yaml", incident("A"))
    tracker.commit("Declare A (reworded)", when=T0 + 50)
    tracker.write("incidents/a.yaml", incident("A", severity="SEV-1"))
    tracker.commit("Raise A (reworded)", when=T0 + 60)
    assert apply(tracker) == 0
    assert len(receiver.to("/pager")) == 2
    # A genuinely new change after the rewrite still fires.
    tracker.write("incidents/a.yaml", incident("A", severity="SEV-1", extra="status: resolved\n"))
    tracker.commit("resolve a", when=T0 + 70)
    assert apply(tracker) == 0
    assert [r.json()["event"] for r in receiver.to("/pager")][-1] == f"{NS}.incident.resolved"
    assert len(receiver.to("/pager")) == 3


# -- proactive deadlines, status, plan, ingest -----------------------------------------------

STALE = """\
name: stale
trigger:
  match: {prefect.resource.id: prefect-cloud.incident.*}
  after: [prefect-cloud.incident.declared]
  expect: [prefect-cloud.incident.comment.added]
  for_each: [prefect.resource.id]
  posture: Proactive
  within: PT30M
actions:
  - type: send-notification
    target: hook
    body: 'No update on {{ event.resource.name }}'
"""


def test_proactive_deadline_at_the_clock_and_status(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker.write("automations/stale.yaml", STALE)
    tracker.commit("stale", when=T0 + 1)
    assert apply(tracker, "--as-of", "2027-01-15T08:00:01Z") == 0
    tracker.write("incidents/a.yaml", incident("A"))
    tracker.write("incidents/b.yaml", incident("B"))
    tracker.commit("declare", when=T0 + 60)
    tracker.write("incidents/b.yaml", incident("B", extra="comments: [{text: on it}]\n"))
    tracker.commit("comment b", when=T0 + 120)
    assert apply(tracker, "--as-of", "2027-01-15T08:10:00Z") == 0
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "status", "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [(w["key"], w["deadline"]) for w in status["windows"]] == [
        ([f"{NS}.incident.a"], "2027-01-15T08:31:00Z"),
        ([f"{NS}.incident.b"], "2027-01-15T08:31:00Z"),
    ]
    assert receiver.to("/hook") == []
    assert apply(tracker, "--as-of", "2027-01-15T08:31:00Z") == 0
    assert [r.json()["body"] for r in receiver.to("/hook")] == ["No update on A"]
    assert apply(tracker, "--as-of", "2027-01-15T09:31:00Z") == 0
    assert len(receiver.to("/hook")) == 1


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_plan_shows_what_would_fire_and_changes_nothing(
    tracker: Repo, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker.write("automations/page.yaml", automation(f"{NS}.incident.declared", PAGER + COMMENT))
    tracker.commit("page", when=T0 + 1)
    assert apply(tracker) == 0  # the engine and its cache exist: plan must leave both alone
    tracker.git("checkout", "-q", "-b", "proposal")
    tracker.write("incidents/new.yaml", incident("Proposed"))
    tracker.commit("propose", when=T0 + 2)
    before = _snapshot(tracker.path)
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "plan", "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert [e["event"] for e in planned["events"]] == [f"{NS}.incident.declared"]
    (firing,) = planned["firings"]
    assert firing["automation"] == f"on {NS}.incident.declared"
    assert [a["would"] for a in firing["actions"]] == [
        "POST to webhook pager",
        "comment on new: 'Seen by on prefect-cloud.incident.declared.'",
    ]
    assert _snapshot(tracker.path) == before
    assert receiver.requests == []


def test_ingest_external_events_declares_once_and_ignores_duplicates(
    tracker: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker.write(
        "automations/etl.yaml",
        "name: ETL failing\n"
        "trigger:\n"
        "  match: {prefect.resource.id: prefect.flow-run.*}\n"
        "  match_related: {prefect.resource.id: prefect.deployment.etl}\n"
        "  expect: [prefect.flow-run.Failed]\n"
        "  posture: Reactive\n  threshold: 3\n  within: PT1H\n"
        "actions:\n"
        "  - type: declare-incident\n    name: ETL failing\n    severity: SEV-2\n",
    )
    tracker.commit("etl", when=T0 + 1)
    assert apply(tracker) == 0
    lines = [
        json.dumps(
            {
                "id": f"e{n}",
                "occurred": f"2027-01-15T09:0{n}:00Z",
                "event": "prefect.flow-run.Failed",
                "resource": {"prefect.resource.id": f"prefect.flow-run.r{n}"},
                "related": [
                    {
                        "prefect.resource.id": "prefect.deployment.etl",
                        "prefect.resource.role": "deployment",
                    }
                ],
            }
        )
        for n in range(3)
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([lines[0], lines[0], lines[1], "{not json", lines[2]]) + "\n")
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "ingest", str(events)]) == 1  # the bad line
    assert f"{events}:4:1: not JSON" in capsys.readouterr().err
    assert main(["--repo", str(tracker.path), "ingest", str(events)]) == 1
    declared = [p.name for p in (tracker.path / "incidents").iterdir() if p.name.startswith("etl-")]
    assert len(declared) == 1
    text = (tracker.path / "incidents" / declared[0]).read_text()
    assert "prefect.deployment.etl" in text and "prefect.flow-run.r2" in text


def test_ingest_holds_a_follower_across_runs_until_its_leader_arrives(
    tracker: Repo, tmp_path: Path
) -> None:
    """A Completed read before the Running it follows (Prefect's stream gives no order)
    waits in the engine's state for it, from one `ingest` to the next, then counts."""
    tracker.write(
        "automations/done.yaml",
        "name: Finished after starting\n"
        "trigger:\n"
        "  match: {prefect.resource.id: prefect.flow-run.*}\n"
        "  after: [prefect.flow-run.Running]\n"
        "  expect: [prefect.flow-run.Completed]\n"
        "  for_each: [prefect.resource.id]\n"
        "  posture: Reactive\n  within: PT1H\n"
        "actions:\n"
        "  - type: declare-incident\n    name: Finished\n    severity: SEV-4\n",
    )
    tracker.commit("done", when=T0 + 1)
    assert apply(tracker) == 0

    def ingest(name: str, minute: int, follows: str | None) -> None:
        event = {
            "id": name,
            "occurred": f"2027-01-15T09:0{minute}:00Z",
            "event": f"prefect.flow-run.{name}",
            "resource": {"prefect.resource.id": "prefect.flow-run.r1"},
            **({"follows": follows} if follows else {}),
        }
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(event) + "\n")
        assert main(["--repo", str(tracker.path), "ingest", str(path)]) == 0

    def declared() -> list[str]:
        return [p.name for p in (tracker.path / "incidents").iterdir() if "finished" in p.name]

    ingest("Completed", 5, follows="Running")
    assert declared() == []  # evaluated at once, it would be dropped: nothing is armed
    ingest("Running", 1, follows=None)
    assert len(declared()) == 1


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"[]", "expected a JSON object (a Prefect event)"),
        (
            b"{",
            "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            b"[" * 100_000,
            "not JSON: maximum recursion depth exceeded while decoding a JSON array from a unicode string",
        ),
        (b'{"id": "x", "event": "e"}', "the event has no 'occurred' string"),
        (
            b'{"id": "x", "event": "e", "occurred": "2027-01-01T00:00:00Z"}',
            "the event has no resource with a 'prefect.resource.id'",
        ),
        (
            b'{"id": "x", "event": "e", "occurred": "yesterday", "resource": {"prefect.resource.id": "a.b"}}',
            "'occurred' is not an ISO 8601 time: 'yesterday'",
        ),
        (
            b'{"id": "x", "event": "e", "occurred": "2027-01-01T00:00:00", "resource": {"prefect.resource.id": "a.b"}}',
            "'occurred' has no time zone",
        ),
        (
            b'{"id": "x", "event": "e", "occurred": "2027-01-01T00:00:00Z", "resource": {"prefect.resource.id": "a.b", "n": 1}}',
            "resource labels must be strings",
        ),
        (
            b'{"id": "x", "event": "e", "occurred": "2027-01-01T00:00:00Z", "resource": {"prefect.resource.id": "a.b"}, "related": {}}',
            "'related' must be a list of resources",
        ),
        (b"x" * (1 << 20) + b"x", "the line is over 1048576 bytes"),
    ],
)
def test_ingest_rejects_what_is_not_an_event(line: bytes, problem: str) -> None:
    assert parse_event(line) == ({}, problem)


def test_a_damaged_ledger_is_a_clear_error_not_a_guess(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert apply(tracker) == 0
    ledger = Ledger(tracker.path, "main")
    commit, _ = ledger.read()
    damaged = gitcmd.commit_tree(tracker.path, commit, {"engine.json": b"{not json"}, "damage")
    assert gitcmd.update_ref(tracker.path, ledger.ref, damaged, commit)
    capsys.readouterr()
    assert apply(tracker) == 1
    err = capsys.readouterr().err
    assert "refs/gitops-incidents/main:engine.json cannot be read" in err
    assert "git update-ref refs/gitops-incidents/main <commit>" in err


def test_templates_see_the_incident_the_event_the_labels_and_the_firing(
    tracker: Repo, receiver: Receiver
) -> None:
    body = (
        "#{{ incident.number }} {{ incident.name }} ({{ incident.severity }}, {{ incident.status }})"
        " by {{ event.resource_in_role('actor').name }}; {{ labels['prefect.resource.id'] }};"
        " {{ firing.state }}; {{ event.payload.new }}"
    )
    notify = f'  - type: send-notification\n    target: hook\n    body: "{body}"\n'
    tracker.write(
        "automations/t.yaml",
        automation(
            f"{NS}.incident.updated.severity", notify, extra="  for_each: [prefect.resource.id]\n"
        ),
    )
    tracker.write("incidents/db.yaml", incident("Database down"))
    tracker.commit("declare and automate", when=T0 + 1)
    assert apply(tracker) == 0
    tracker.write("incidents/db.yaml", incident("Database down", severity="SEV-1"))
    tracker.commit("raise", author=("Alice", "alice@example.invalid"), when=T0 + 2)
    assert apply(tracker) == 0
    (sent,) = receiver.to("/hook")
    assert sent.json()["body"] == (
        f"#2 Database down (SEV-1, active) by Alice; {NS}.incident.db; Triggered; SEV-1"
    )


@pytest.mark.parametrize(
    ("host", "alive", "age", "abandoned"),
    [
        ("here", True, 10, False),  # a runner at work
        ("here", False, 10, True),  # its process ended: taken over at once
        ("here", True, LEASE + 1, True),  # a reused process id cannot hold it forever
        ("elsewhere", True, 10, False),
        ("elsewhere", True, LEASE + 1, True),
    ],
)
def test_when_a_claim_is_abandoned(host: str, alive: bool, age: float, abandoned: bool) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claim = Claim(
        "runner",
        socket.gethostname() if host == "here" else "another-host.invalid",
        os.getpid() if alive else dead.pid,
        T0,
    )
    assert claim.abandoned(T0 + age) is abandoned


def test_templates_find_labels_by_their_dotted_names(tracker: Repo) -> None:
    comment = (
        "  - type: comment-on-incident\n    source: inferred\n    text: >-\n"
        "      Paused {{ event.related | selectattr('prefect.resource.role', 'eq', 'work-pool')"
        " | map(attribute='prefect.resource.id') | join(', ') }} and"
        " {{ event.related | selectattr('role', 'eq', 'work-pool') | map(attribute='id') | first }}\n"
    )
    tracker.write("automations/act.yaml", automation(f"{NS}.incident.declared", comment))
    tracker.commit("automation", when=T0 + 1)
    assert apply(tracker) == 0
    tracker.write(
        "incidents/db.yaml",
        incident("DB", extra="related_resources: [prefect.work-pool.k8s-prod]\n"),
    )
    tracker.commit("declare", when=T0 + 2)
    assert apply(tracker) == 0
    text = (gitcmd.read_blob(tracker.path, "main", "incidents/db.yaml") or b"").decode()
    assert "- text: Paused prefect.work-pool.k8s-prod and prefect.work-pool.k8s-prod\n" in text


# -- a fresh clone (CI): the engine's ref carries where history's walk stood -------------


def test_a_fresh_clone_reads_only_the_commits_after_the_engines_position(
    tracker: Repo, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitops_incidents import validation

    tracker.write("automations/page.yaml", automation(f"{NS}.incident.updated.severity", PAGER))
    for number in range(5):
        tracker.write(f"incidents/old-{number}.yaml", incident(f"Old {number}"))
        tracker.commit(f"declare old {number}", when=T0 + number)
    tracker.write("incidents/db.yaml", incident("Database down"))
    tracker.commit("declare db", when=T0 + 10)
    assert apply(tracker) == 0
    origin = tmp_path / "origin.git"
    tracker.git("clone", "-q", "--bare", str(tracker.path), str(origin))
    tracker.git("push", "-q", str(origin), "refs/gitops-incidents/*:refs/gitops-incidents/*")

    fresh = Repo.clone(origin, tmp_path / "fresh")
    fresh.git("fetch", "-q", "origin", "refs/gitops-incidents/*:refs/gitops-incidents/*")
    fresh.write("incidents/db.yaml", incident("Database down", "SEV-1"))
    fresh.commit("raise db", when=T0 + 20)
    parsed: list[str] = []
    read = validation.read_document

    def counting(path: str, *rest: Any) -> Any:
        parsed.append(path)
        return read(path, *rest)

    monkeypatch.setattr(validation, "read_document", counting)
    assert apply(fresh) == 0
    assert [p for p in parsed if p.startswith("incidents/")] == ["incidents/db.yaml"], parsed
    (request,) = receiver.to("/pager")
    assert request.json()["resource"]["prefect.resource.name"] == "Database down"
    # What the snapshot gave is what walking the whole history gives.
    whole = Repo.clone(origin, tmp_path / "whole")
    whole.git("fetch", "-q", str(fresh.path), "main:main", "--update-head-ok")
    events_fresh = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "events"], cwd=fresh.path,
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    events_whole = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "events"], cwd=whole.path,
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert events_fresh == events_whole and events_fresh.count(b"\n") == 8


def _other_code(checkpoint: dict[str, Any]) -> dict[str, bytes | None]:
    return {"history/checkpoint.json": json.dumps({**checkpoint, "code": "another"}).encode()}


def _no_clock(checkpoint: dict[str, Any]) -> dict[str, bytes | None]:
    del checkpoint["epoch"]
    return {"history/checkpoint.json": json.dumps(checkpoint).encode()}


def _moved_state(checkpoint: dict[str, Any]) -> dict[str, bytes | None]:
    path = snapshot.incident_path("db")
    return {path: None, "history/incidents/zz/db": b"{}"}


# How a snapshot in the engine's ref may not be one this code can start from; each is
# walked past from the start, with the same events and firings, and written anew.
FORGED = {
    "a ledger from before snapshots": lambda _: {"history": None},
    "written by other code": _other_code,
    "checkpoint not JSON": lambda checkpoint: {"history/checkpoint.json": b'{"tip": '},
    "checkpoint without its clock": _no_clock,
    "a state where this code puts none": _moved_state,
    "a state that is not one": lambda _: {snapshot.incident_path("db"): b'["x"]'},
    "a state that is not JSON": lambda _: {snapshot.incident_path("db"): b"\xff{"},
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
def test_a_snapshot_this_code_cannot_start_from_is_walked_past(
    tracker: Repo, receiver: Receiver, forge: Any
) -> None:
    tracker.write("automations/page.yaml", automation(f"{NS}.incident.updated.severity", PAGER))
    tracker.write("incidents/db.yaml", incident("Database down"))
    tracker.commit("declare db", when=T0 + 10)
    assert apply(tracker) == 0
    ledger = tracker.git("rev-parse", "refs/gitops-incidents/main").strip()
    checkpoint = json.loads(tracker.git("show", f"{ledger}:history/checkpoint.json"))
    forged = gitcmd.commit_tree(tracker.path, ledger, forge(checkpoint), "forged")
    tracker.git("update-ref", "refs/gitops-incidents/main", forged)
    shutil.rmtree(tracker.path / ".git" / "gitops-incidents")  # a fresh clone's
    tracker.write("incidents/db.yaml", incident("Database down", "SEV-1"))
    tracker.commit("raise db", when=T0 + 20)
    assert apply(tracker) == 0
    (request,) = receiver.to("/pager")
    assert request.json()["resource"]["prefect.resource.name"] == "Database down"
    assert tallies(tracker)["db"][0] == 2
    ledger = tracker.git("rev-parse", "refs/gitops-incidents/main").strip()
    written = snapshot.read(tracker.path, ledger)
    assert written is not None and written["tip"] == tracker.git("rev-parse", "HEAD").strip()
    state = json.loads(tracker.git("show", f"{ledger}:{snapshot.incident_path('db')}"))
    assert state["document"]["severity"] == "SEV-1" and state["ordinal"] == 2


def test_a_sha256_repository_keeps_its_ledger_and_snapshot(
    tracker: Repo, receiver: Receiver, tmp_path: Path
) -> None:
    subprocess.run(
        ["git", "init", "-q", "-b", "main", "--object-format=sha256", str(tmp_path / "s")],
        check=True,
    )  # fmt: skip
    repo = Repo(tmp_path / "s", init=False)
    repo.write("gitops-incidents.yaml", CONFIG)
    repo.write("automations/page.yaml", automation(f"{NS}.incident.updated.severity", PAGER))
    repo.write("incidents/db.yaml", incident("Database down"))
    repo.commit("declare db", when=T0 + 10)
    assert apply(repo) == 0
    repo.write("incidents/db.yaml", incident("Database down", "SEV-1"))
    repo.commit("raise db", when=T0 + 20)
    shutil.rmtree(repo.path / ".git" / "gitops-incidents")  # from the snapshot alone
    assert apply(repo) == 0
    (request,) = receiver.to("/pager")
    assert request.json()["resource"]["prefect.resource.name"] == "Database down"
    ledger = repo.git("rev-parse", "refs/gitops-incidents/main").strip()
    written = snapshot.read(repo.path, ledger)
    state = repo.git("rev-parse", f"{ledger}:{snapshot.incident_path('db')}").strip()
    assert len(ledger) == 64 and written is not None and len(state) == 64
