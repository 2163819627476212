"""`update`, `comment`, `resolve`, `reopen`: an incident's life through the one
writer, each change checked, its comments and layout kept, committed as the person."""

from __future__ import annotations

import json

import pytest

from gitops_incidents.cli import main
from tests.conftest import Repo

HAND_WRITTEN = """\
# The primary, as the on-call wrote it.
name: Postgres primary down   # keep this comment
severity: SEV-2
summary: |
  Flow runs on k8s-prod fail
  with connection refused.
tags: [prod]
"""


def cli(capsys: pytest.CaptureFixture[str], repo: Repo, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["--repo", str(repo.path), *args])
    return status, capsys.readouterr().err


@pytest.fixture
def tracker(repo: Repo) -> Repo:
    repo.write("incidents/db.yaml", HAND_WRITTEN)
    repo.commit("start")
    return repo


def test_a_life_of_edits_keeps_the_persons_layout_and_reads_as_events(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    start = tracker.head()
    steps = [
        ("comment", "db", "Failing over to the replica.\nETA 10 min.", "--at", "2027-01-15T08:05:00Z"),
        ("update", "db", "--severity", "SEV-1", "--commander", "alice", "--tag", "database",
         "--untag", "prod", "--resource", "prefect.work-pool.k8s-prod"),
        ("resolve", "db", "--at", "2027-01-15T09:00:00Z", "--impact", "14 flow runs failed."),
    ]  # fmt: skip
    for step in steps:
        status, err = cli(capsys, tracker, *step)
        assert status == 0, err
    assert (tracker.path / "incidents/db.yaml").read_text() == (
        "# The primary, as the on-call wrote it.\n"
        "name: Postgres primary down   # keep this comment\n"
        "severity: SEV-1\n"
        "status: resolved\n"
        "end_time: 2027-01-15T09:00:00Z\n"
        "summary: |\n  Flow runs on k8s-prod fail\n  with connection refused.\n"
        "tags: [database]\n"
        "related_resources:\n- prefect.work-pool.k8s-prod\n"
        "impact: 14 flow runs failed.\n"
        "roles:\n  commander: alice\n"
        "comments:\n"
        "- text: |\n    Failing over to the replica.\n    ETA 10 min.\n"
        "  author: Test Author\n  at: 2027-01-15T08:05:00Z\n"
    )
    assert tracker.git("log", "--format=%an|%s", f"{start}..").splitlines() == [
        "Test Author|Resolve db",
        "Test Author|Update db",
        "Test Author|Comment on db",
    ]
    assert tracker.git("status", "--porcelain") == ""
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "events", "--since", start]) == 0
    names = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert names == [
        "prefect-cloud.incident.comment.added",
        "prefect-cloud.incident.updated.severity",
        "prefect-cloud.incident.updated.tags",
        "prefect-cloud.incident.updated.related_resources",
        "prefect-cloud.incident.updated.roles",
        "prefect-cloud.incident.updated.impact",
        "prefect-cloud.incident.resolved",
    ]
    # Reopened: active again, its end time gone.
    assert cli(capsys, tracker, "reopen", "db")[0] == 0
    text = (tracker.path / "incidents/db.yaml").read_text()
    assert "status: active\n" in text and "end_time" not in text


def test_a_comment_is_by_the_person_git_commits_as_and_dated_now(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, tracker, "comment", "db", "Seen.")[0] == 0
    comment = (tracker.path / "incidents/db.yaml").read_text().split("comments:\n")[1]
    assert comment.startswith("- text: Seen.\n  author: Test Author\n  at: 20")
    assert comment.endswith("Z\n")


@pytest.mark.parametrize(
    ("args", "status", "said"),
    [
        (("comment", "nope", "x"), 2, "error: no incident 'nope': there is no incidents/nope.yaml"),
        (("comment", "../db", "x"), 2, "error: no incident '../db'"),
        (("comment", "db", "  "), 2, "error: the comment is empty"),
        (("update", "db"), 2, "error: nothing to update: give at least one of the options"),
        (
            ("update", "db", "--severity", "SEV-9"),
            2,
            "error: --severity 'SEV-9' is not on the scale",
        ),
        (("update", "db", "--role", "scribe"), 2, "error: --role 'scribe': give it as ROLE=NAME"),
        (("reopen", "db"), 1, "gitops-incidents: db: it is active, not resolved"),
        (("resolve", "db", "--at", "yesterday"), 1, "incidents/db.yaml:"),
        (("update", "db", "--resource", "not an id"), 1, "incidents/db.yaml:"),
    ],
)
def test_a_change_that_cannot_be_made_is_said_in_one_line_and_writes_nothing(
    tracker: Repo,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    status: int,
    said: str,
) -> None:
    head = tracker.head()
    got, err = cli(capsys, tracker, *args)
    assert got == status
    assert said in err.splitlines()[0]
    assert "Traceback" not in err
    assert tracker.head() == head and tracker.git("status", "--porcelain") == ""


def test_resolving_a_resolved_incident_is_refused(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, tracker, "resolve", "db")[0] == 0
    head = tracker.head()
    assert cli(capsys, tracker, "resolve", "db") == (
        1,
        "gitops-incidents: db: it is resolved already (reopen it first)\n",
    )
    assert tracker.head() == head


def test_no_commit_only_edits_and_push_publishes(
    tracker: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Repo
) -> None:
    head = tracker.head()
    assert cli(capsys, tracker, "update", "db", "--name", "Primary down", "--no-commit")[0] == 0
    assert tracker.head() == head
    assert tracker.git("status", "--porcelain") == " M incidents/db.yaml\n"
    tracker.git("checkout", "--", "incidents/db.yaml")
    remote = Repo(tracker.path.parent / "remote.git", init=False)
    tracker.git("init", "-q", "--bare", str(remote.path))
    tracker.git("push", "-q", "-u", str(remote.path), "main")
    assert cli(capsys, tracker, "comment", "db", "Pushed.", "--push")[0] == 0
    assert remote.git("log", "-1", "--format=%s", "main") == "Comment on db\n"


def test_a_comment_that_reads_like_a_time_stays_a_text(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(
            capsys, tracker, "comment", "db", "2027-01-15T08:00:00Z", "--at", "2027-01-15T08:05:00Z"
        )[0]
        == 0
    )
    text = (tracker.path / "incidents/db.yaml").read_text()
    assert (
        "- text: '2027-01-15T08:00:00Z'\n  author: Test Author\n  at: 2027-01-15T08:05:00Z\n"
        in text
    )
