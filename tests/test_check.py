"""`check`: a pull request's branch in a real repository, its report in each format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops_incidents.cli import main
from tests.conftest import Repo

INCIDENT = """\
name: Database down
severity: SEV-2
comments:
  - text: Declared from the pager.
    author: dana
  - text: Failing over.
    author: erin
"""
COMMENT_ON_SEV1 = """\
name: Acknowledge SEV-1 changes
trigger:
  match: {prefect.resource.id: prefect-cloud.incident.*}
  expect: [prefect-cloud.incident.updated.severity]
  posture: Reactive
actions:
  - {type: comment-on-incident, source: inferred, text: Paged the on-call.}
"""


def check(capsys: pytest.CaptureFixture[str], repo: Repo, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["--repo", str(repo.path), "check", "--base", "main", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def pull_request(repo: Repo) -> Repo:
    repo.write("incidents/db.yaml", INCIDENT)
    repo.write("automations/ack.yaml", COMMENT_ON_SEV1)
    repo.commit("start")
    repo.git("checkout", "-q", "-b", "pr")
    return repo


def test_a_clean_pull_request_shows_what_merging_would_do(
    pull_request: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    pull_request.write("incidents/db.yaml", INCIDENT.replace("SEV-2", "SEV-1"))
    pull_request.commit("raise")
    # main moves on meanwhile: the pull request is what it adds since it forked.
    pull_request.git("checkout", "-q", "main")
    pull_request.write("incidents/other.yaml", "name: Other\nseverity: SEV-4\n")
    pull_request.commit("elsewhere")
    pull_request.git("checkout", "-q", "pr")
    status, out, err = check(capsys, pull_request)
    assert status == 0, err
    assert err.splitlines() == [
        "1 event(s) in main..HEAD",
        f"  {err.splitlines()[1].split()[0]} prefect-cloud.incident.updated.severity "
        "prefect-cloud.incident.db",
        "1 firing(s) would follow",
        "Acknowledge SEV-1 changes:",
        "  fires on prefect-cloud.incident.updated.severity",
        "    comment-on-incident: comment on db: 'Paged the on-call.'",
        "check main..HEAD: no problems, 1 firing(s) planned",
    ]
    assert out == ""
    status, out, _ = check(capsys, pull_request, "--format", "json")
    report = json.loads(out)
    assert report["findings"] == [] and report["head"] == pull_request.head()
    assert [f["automation"] for f in report["firings"]] == ["Acknowledge SEV-1 changes"]


@pytest.mark.parametrize(
    ("change", "path", "where", "message"),
    [
        (lambda r: r.git("mv", "incidents/db.yaml", "incidents/database.yaml"),
         "incidents/database.yaml", (1, 1), "renamed from incidents/db.yaml: an incident's id is its file name and never changes"),
        (lambda r: r.git("rm", "-q", "incidents/db.yaml"),
         "incidents/db.yaml", (1, 1), "deleted: an incident stays in the record; resolve it instead"),
        (lambda r: r.write("incidents/db.yaml", INCIDENT.replace("Failing over.", "Failed over.")),
         "incidents/db.yaml", (6, 5), "comment 2 (by erin) was edited: comments are only appended"),
        (lambda r: r.write("incidents/db.yaml", INCIDENT.split("  - text: Failing")[0]),
         "incidents/db.yaml", (3, 1), "1 landed comment(s) removed: comments are only appended"),
        (lambda r: r.write("incidents/db.yaml", INCIDENT.replace("SEV-2", "SEV-9")),
         "incidents/db.yaml", (2, 11), "severity: unknown severity 'SEV-9'; the scale is SEV-1"),
    ],
)  # fmt: skip
def test_what_would_lose_the_record_or_break_it_is_flagged_on_its_line(
    pull_request: Repo,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: object,
    path: str,
    where: tuple[int, int],
    message: str,
) -> None:
    change(pull_request)  # type: ignore[operator]
    pull_request.commit("the change")
    status, _, err = check(capsys, pull_request)
    assert status == 1
    assert err.splitlines()[0].startswith(f"{path}:{where[0]}:{where[1]}: {message}")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    status, out, _ = check(capsys, pull_request, "--format", "github")
    assert status == 1
    line, column = where
    assert out.startswith(
        f"::error file={path},line={line},col={column},title=gitops-incidents::{message}"
    )
    text = summary.read_text()
    assert text.startswith("## gitops-incidents: `main..HEAD`\n\n**1 problem(s)** to fix")
    assert f"| `{path}` | {line}:{column} | {message}" in text
    assert "### What merging would do:" in text


def test_markdown_is_the_summary_on_stdout(
    pull_request: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    pull_request.write("incidents/db.yaml", INCIDENT + "  - text: Recovered | for now.\n")
    pull_request.commit("comment")
    status, out, _ = check(capsys, pull_request, "--format", "markdown")
    assert status == 0
    assert "No problems: the files are valid and the record loses nothing." in out
    assert "prefect-cloud.incident.comment.added prefect-cloud.incident.db" in out


def test_a_comment_put_between_landed_ones_is_an_addition(
    pull_request: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the merge driver writes when main is merged into the branch: both sides'
    # comments in time order, so a new one may stand before a landed one.
    between = INCIDENT.replace(
        "  - text: Failing over.",
        "  - text: Paged the DBA.\n    author: bob\n  - text: Failing over.",
    )
    pull_request.write("incidents/db.yaml", between)
    pull_request.commit("merged in time order")
    status, _, err = check(capsys, pull_request)
    assert status == 0, err
    assert "prefect-cloud.incident.comment.added" in err
