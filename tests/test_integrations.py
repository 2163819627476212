"""The ways in from other tools: the pre-commit hook through the real `pre-commit`,
and the GitHub Action's steps run as a runner runs them (bash, with GitHub's
environment variables pointing at temporary files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import ROOT, Repo, initialized

BAD = "name: Database down\nseverity: SEV-9\n"
GOOD = "name: Database down\nseverity: SEV-2\n"
BIN = str(Path(sys.executable).parent)  # gitops-incidents, as installed


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def pre_commit(repo: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=repo, capture_output=True, text=True, check=False,
        env=_env(PRE_COMMIT_HOME=str(home)),
    )  # fmt: skip


@pytest.fixture
def tracker(tmp_path: Path) -> Repo:
    return initialized(tmp_path / "ops", {"incidents/good.yaml": GOOD})


def test_the_published_hook_through_pre_commit_try_repo(tracker: Repo, tmp_path: Path) -> None:
    """pre-commit installs this repository into a virtualenv of its own, as a user's
    `repo: https://.../gitops-incidents` does, and runs the hook on staged files."""
    tracker.write("incidents/bad.yaml", BAD)
    tracker.git("add", "incidents/bad.yaml")
    home = tmp_path / "pre-commit-home"
    result = pre_commit(tracker.path, "try-repo", str(ROOT), "gitops-incidents-validate",
                        "--files", "incidents/bad.yaml", "incidents/good.yaml", home=home)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"gitops-incidents validate\.+Failed", result.stdout)
    assert "incidents/bad.yaml:2:11: severity: unknown severity 'SEV-9'" in result.stdout
    result = pre_commit(tracker.path, "try-repo", str(ROOT), "gitops-incidents-validate",
                        "--files", "incidents/good.yaml", home=home)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"gitops-incidents validate\.+Passed", result.stdout)


def test_the_hook_init_writes_stops_a_bad_commit(tracker: Repo, tmp_path: Path) -> None:
    home = tmp_path / "pre-commit-home"
    installed = pre_commit(tracker.path, "install", home=home)
    assert installed.returncode == 0, installed.stderr
    tracker.write("incidents/bad.yaml", BAD)
    tracker.git("add", "incidents/bad.yaml")
    head = tracker.head()
    commit = subprocess.run(
        ["git", "commit", "-q", "-m", "bad"], cwd=tracker.path, capture_output=True, text=True,
        check=False, env=_env(PRE_COMMIT_HOME=str(home)),
    )  # fmt: skip
    assert commit.returncode == 1
    assert "incidents/bad.yaml:2:11: severity: unknown severity 'SEV-9'" in commit.stderr
    assert tracker.head() == head


# -- the Action ----------------------------------------------------------------------


def action_steps(inputs: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    """(id, script, env) of each `run` step the Action would run with `inputs`, its
    inputs' expressions evaluated; the runner's own steps (setup-python, the pip
    install of the published package) are left out: the package is installed here."""
    action = YAML(typ="safe").load((ROOT / "action.yml").read_text())
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values |= inputs

    def evaluate(text: str) -> str:
        return re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: values[m.group(1)], text)

    steps = []
    for step in action["runs"]["steps"]:
        if "run" not in step or step["id"] == "install":
            continue
        condition = step.get("if")
        if condition:
            name, expected = re.fullmatch(r"inputs\.([\w-]+) == '(\w+)'", condition).groups()  # type: ignore[union-attr]
            if values[name] != expected:
                continue
        env = {key: evaluate(str(value)) for key, value in step.get("env", {}).items()}
        steps.append((step["id"], step["run"], env))
    return steps


def run_step(
    repo: Path, script: str, env: dict[str, str], github: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    # The shell GitHub runs a `shell: bash` step with.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=repo, capture_output=True, text=True, check=False, env=_env(**github, **env),
    )  # fmt: skip


@pytest.fixture
def checkout(tracker: Repo, tmp_path: Path) -> Repo:
    """A pull request's checkout, as actions/checkout with fetch-depth 0 leaves it."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(tracker.path), str(origin)], check=True)
    clone = Repo.clone(origin, tmp_path / "checkout")
    clone.git("checkout", "-q", "-b", "pr")
    clone.write("incidents/good.yaml", GOOD + "comments:\n  - text: Failing over.\n")
    clone.commit("comment")
    return clone


def test_the_actions_steps_check_apply_and_build(checkout: Repo, tmp_path: Path) -> None:
    github = {name: str(tmp_path / name.lower()) for name in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_ENV")}  # fmt: skip
    github["GITHUB_BASE_REF"] = "main"
    steps = action_steps({"apply": "true", "build": "true", "site-dir": "public"})
    assert [step_id for step_id, _, _ in steps] == ["check", "apply", "build"]
    for step_id, script, env in steps:
        result = run_step(checkout.path, script, env, github)
        assert result.returncode == 0, f"{step_id}: {result.stderr}"
    summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## gitops-incidents: `origin/main..HEAD`")
    assert "prefect-cloud.incident.comment.added prefect-cloud.incident.good" in summary
    assert checkout.git("for-each-ref", "refs/gitops-incidents/").strip()  # apply's state
    assert (checkout.path / "public" / "incidents" / "good.html").is_file()
    assert Path(github["GITHUB_OUTPUT"]).read_text() == "site-dir=public\n"


def test_the_actions_check_fails_the_job_on_a_finding(checkout: Repo, tmp_path: Path) -> None:
    checkout.write("incidents/good.yaml", BAD)
    checkout.commit("break it")
    github = {"GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), "GITHUB_BASE_REF": "main"}
    ((step_id, script, env),) = action_steps({})
    assert step_id == "check"
    result = run_step(checkout.path, script, env, github)
    assert result.returncode == 1
    assert result.stdout.startswith("::error file=incidents/good.yaml,line=2,col=11,")
