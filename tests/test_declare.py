"""`declare`: a new incident file, checked, written, committed as the person running it."""

from __future__ import annotations

import json

import pytest

from gitops_incidents.cli import main
from tests.conftest import Repo


def declare(capsys: pytest.CaptureFixture[str], repo: Repo, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["--repo", str(repo.path), "declare", *args])
    return status, capsys.readouterr().err


@pytest.fixture
def tracker(repo: Repo) -> Repo:
    repo.write("incidents/old.yaml", "name: Old\nseverity: SEV-3\n")
    repo.commit("start")
    return repo


def test_declare_writes_a_valid_file_and_commits_it_as_the_person(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = declare(
        capsys, tracker, "API latency over 2 s", "--severity", "SEV-2", "--tag", "prod",
        "--resource", "prefect.work-pool.k8s-prod", "--summary", "p99 above 2 s.",
    )  # fmt: skip
    assert status == 0, err
    assert err == "declared incidents/api-latency-over-2-s.yaml: API latency over 2 s (SEV-2)\n"
    assert (tracker.path / "incidents/api-latency-over-2-s.yaml").read_text() == (
        "# yaml-language-server: $schema=../schemas/incident.schema.json\n"
        "name: API latency over 2 s\nseverity: SEV-2\nsummary: p99 above 2 s.\n"
        "tags:\n- prod\nrelated_resources:\n- prefect.work-pool.k8s-prod\n"
    )
    assert tracker.git("log", "-1", "--format=%an|%s") == (
        "Test Author|Declare api-latency-over-2-s: API latency over 2 s\n"
    )
    assert tracker.git("status", "--porcelain") == ""
    capsys.readouterr()
    assert main(["--repo", str(tracker.path), "events", "--since", "HEAD~1"]) == 0
    (event,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert event["event"] == "prefect-cloud.incident.declared"
    # The same name again gets a file of its own.
    assert declare(capsys, tracker, "API latency over 2 s", "--severity", "SEV-3")[0] == 0
    assert (tracker.path / "incidents/api-latency-over-2-s-2.yaml").is_file()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ("x", "--severity", "SEV-9"),
            "--severity 'SEV-9' is not on the scale: SEV-1, SEV-2, SEV-3, SEV-4, SEV-5",
        ),
        (("Old", "--severity", "SEV-2", "--id", "old"), "--id old: it exists already"),
        (
            ("x", "--severity", "SEV-2", "--id", "index"),
            "--id index: id 'index' is the site's own page",
        ),
        (("--severity", "SEV-2"), "give the incident a NAME (or --from a Prefect resource)"),
    ],
)
def test_declare_refuses_clearly_and_writes_nothing(
    tracker: Repo, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], problem: str
) -> None:
    head = tracker.head()
    status, err = declare(capsys, tracker, *args)
    assert status == 2
    assert err.startswith(f"gitops-incidents: error: {problem}")
    assert tracker.head() == head and tracker.git("status", "--porcelain") == ""


def test_declare_checks_the_file_before_it_writes(
    tracker: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = declare(capsys, tracker, "x", "--severity", "SEV-2", "--resource", "not an id")
    assert status == 1
    assert "related_resources[0]" in err
    assert tracker.git("status", "--porcelain") == ""


def test_declare_no_commit_only_writes(tracker: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    head = tracker.head()
    assert declare(capsys, tracker, "Draft", "--severity", "SEV-4", "--no-commit")[0] == 0
    assert tracker.head() == head
    assert tracker.git("status", "--porcelain") == "?? incidents/draft.yaml\n"
