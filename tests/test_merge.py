"""The merge driver: real branches merged by the real `git merge`, with the driver
`init` configured, and the three-way merge itself as a table."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitops_incidents.cli import main
from gitops_incidents.merge import merge
from tests.conftest import Repo, initialized

BASE = """\
# yaml-language-server: $schema=../schemas/incident.schema.json
name: Database down   # as the on-call wrote it
severity: SEV-2
comments:
  - text: Declared from the pager.
    author: dana
    at: 2027-01-15T08:00:00Z
"""


@pytest.fixture
def tracker(tmp_path: Path) -> Repo:
    return initialized(tmp_path / "ops", {"incidents/db.yaml": BASE})


def on_branch(repo: Repo, branch: str, *commands: tuple[str, ...]) -> None:
    repo.git("checkout", "-q", "-B", branch, "main")
    for command in commands:
        assert main(["--repo", str(repo.path), *command]) == 0
    repo.git("checkout", "-q", "main")


def git_merge(repo: Repo, branch: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo.path), "merge", "--no-edit", "-q", branch],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_comments_added_on_both_branches_are_both_kept_in_time_order(tracker: Repo) -> None:
    on_branch(tracker, "alice", ("comment", "db", "Failing over.", "--author", "alice",
                                 "--at", "2027-01-15T08:20:00Z"))  # fmt: skip
    assert main(["--repo", str(tracker.path), "comment", "db", "Replica lag 2 s.",
                 "--author", "bob", "--at", "2027-01-15T08:10:00Z"]) == 0  # fmt: skip
    result = git_merge(tracker, "alice")
    assert result.returncode == 0, result.stderr
    assert (tracker.path / "incidents/db.yaml").read_text() == BASE + (
        "  - text: Replica lag 2 s.\n    author: bob\n    at: 2027-01-15T08:10:00Z\n"
        "  - text: Failing over.\n    author: alice\n    at: 2027-01-15T08:20:00Z\n"
    )
    assert tracker.git("status", "--porcelain") == ""
    assert main(["--repo", str(tracker.path), "validate"]) == 0


def test_one_branch_resolves_while_the_other_comments(tracker: Repo) -> None:
    on_branch(tracker, "fix", ("resolve", "db", "--at", "2027-01-15T09:00:00Z"))
    assert main(["--repo", str(tracker.path), "comment", "db", "Still watching.",
                 "--author", "bob", "--at", "2027-01-15T08:50:00Z"]) == 0  # fmt: skip
    result = git_merge(tracker, "fix")
    assert result.returncode == 0, result.stderr
    text = (tracker.path / "incidents/db.yaml").read_text()
    assert text.startswith(BASE.split("comments:")[0].replace(
        "severity: SEV-2\n", "severity: SEV-2\nstatus: resolved\nend_time: 2027-01-15T09:00:00Z\n"
    ))  # fmt: skip
    assert text.endswith(
        "  - text: Still watching.\n    author: bob\n    at: 2027-01-15T08:50:00Z\n"
    )


def test_the_same_field_changed_differently_is_a_conflict_with_markers(tracker: Repo) -> None:
    on_branch(tracker, "carol", ("update", "db", "--severity", "SEV-1"),
              ("comment", "db", "Raised.", "--author", "carol", "--at", "2027-01-15T08:30:00Z"))  # fmt: skip
    assert main(["--repo", str(tracker.path), "update", "db", "--severity", "SEV-3"]) == 0
    result = git_merge(tracker, "carol")
    assert result.returncode != 0
    assert "CONFLICT (content): Merge conflict in incidents/db.yaml" in result.stdout
    assert "changed on both sides: severity" in result.stderr
    text = (tracker.path / "incidents/db.yaml").read_text()
    assert (
        "<<<<<<< ours (incidents/db.yaml)\nseverity: SEV-3\n=======\nseverity: SEV-1\n"
        ">>>>>>> theirs\n"
    ) in text
    assert "  - text: Raised.\n" in text  # what did not conflict is merged
    assert tracker.git("status", "--porcelain") == "UU incidents/db.yaml\n"


ONE = "name: A\nseverity: SEV-2\n"
FIRST = "- text: first\n  at: 2027-01-15T08:00:00Z\n"
COMMENTED = ONE + "comments:\n" + FIRST
ZEROTH = "- text: zeroth\n  at: 2027-01-15T07:00:00Z\n"
THIRD = "- text: third\n  at: 2027-01-15T09:00:00Z\n"
FOURTH = "- text: fourth\n  at: 2027-01-15T09:30:00Z\n"


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "merged", "conflicts"),
    [
        # A field changed on one side only is taken from it, whichever side.
        (ONE, ONE, ONE.replace("A", "B"), "name: B\nseverity: SEV-2\n", []),
        (ONE, ONE.replace("A", "B"), ONE, "name: B\nseverity: SEV-2\n", []),
        # Removed on one side, untouched on the other: removed.
        (ONE + "summary: x\n", ONE + "summary: x\n", ONE, ONE, []),
        # Added alike on both sides: once. A new key goes where SPEC 3 orders it.
        (ONE, ONE + "tags: [a]\n", ONE + "tags: [a]\n", ONE + "tags: [a]\n", []),
        (ONE, ONE + "comments: []\n", "name: A\nsummary: s\nseverity: SEV-2\n",
         "name: A\nseverity: SEV-2\nsummary: s\ncomments: []\n", []),
        # The same comment added on both sides is kept once.
        (ONE, COMMENTED, COMMENTED, COMMENTED, []),
        # A landed comment edited on one side while the other appends: a conflict.
        (COMMENTED, COMMENTED.replace("first", "edited"), COMMENTED + "- text: second\n",
         None, ["comments"]),
        # A landed comment edited on one side only: taken (check flags it on review).
        (COMMENTED, COMMENTED.replace("first", "edited"), COMMENTED,
         COMMENTED.replace("first", "edited"), []),
        # A comment an earlier merge put between landed ones is an addition like any.
        (COMMENTED + THIRD, ONE + "comments:\n" + ZEROTH + FIRST + THIRD, COMMENTED + THIRD + FOURTH,
         ONE + "comments:\n" + ZEROTH + FIRST + THIRD + FOURTH, []),
        # Undated comments go after the dated ones, ours first.
        (ONE, ONE + "comments:\n- text: o\n", ONE + "comments:\n- text: t\n  at: 2027-01-15T08:00:00Z\n",
         ONE + "comments:\n- text: t\n  at: 2027-01-15T08:00:00Z\n- text: o\n", []),
    ],
)  # fmt: skip
def test_merge_by_field(
    base: str, ours: str, theirs: str, merged: str | None, conflicts: list[str]
) -> None:
    result = merge(base, ours, theirs, "incidents/a.yaml")
    assert result.conflicts == conflicts
    if merged is not None:
        assert result.text == merged


def test_a_side_that_is_not_a_mapping_is_merged_by_lines() -> None:
    result = merge(ONE, ONE + "oops: [\n", ONE.replace("A", "B"), "incidents/a.yaml")
    assert result.conflicts == []  # the line merge had no overlap
    assert result.text == "name: B\nseverity: SEV-2\noops: [\n"
    clash = merge(ONE, "- a list\n", "- another\n", "incidents/a.yaml")
    assert clash.conflicts == ["(lines)"]
    assert clash.text.startswith("<<<<<<< ours (incidents/a.yaml)\n- a list\n=======\n")
