"""`init`: a tracker repository from an empty folder, or what an existing one lacks;
never a byte of a person's file overwritten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitops_incidents.cli import main
from gitops_incidents.commands.init import starter_files
from gitops_incidents.schemas import schema_text


def init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["init", *args])
    return status, capsys.readouterr().err


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts[:1]
    }


def test_init_makes_a_valid_tracker_from_an_empty_folder_and_says_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ops"
    status, err = init(capsys, str(root))
    assert status == 0, err
    made = files(root)
    assert made == starter_files()
    assert sorted(made) == [
        ".gitattributes",
        ".github/workflows/incidents-apply.yml",
        ".github/workflows/incidents-check.yml",
        ".github/workflows/incidents-site.yml",
        ".gitignore",
        ".pre-commit-config.yaml",
        "automations/notify-on-severity-change.yaml",
        "automations/pause-work-pools-on-sev1.yaml",
        "automations/resume-work-pools-on-resolve.yaml",
        "automations/stale-incident-reminder.yaml",
        "gitops-incidents.yaml",
        "incidents/.gitkeep",
        "schemas/automation.schema.json",
        "schemas/config.schema.json",
        "schemas/incident.schema.json",
    ]
    assert made["schemas/incident.schema.json"] == schema_text("incident").encode()
    for relpath in made:
        assert f"wrote {relpath}\n" in err
    assert "15 file(s) written, 0 kept" in err
    # Every automation names its schema and starts switched off.
    for relpath, data in made.items():
        if relpath.startswith("automations/"):
            assert data.startswith(b"# yaml-language-server: $schema=../schemas/")
            assert b"\nenabled: false\n" in data
    assert main(["--repo", str(root), "validate"]) == 0
    driver = subprocess.run(
        ["git", "-C", str(root), "config", "merge.gitops-incidents.driver"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert driver == f"{sys.executable} -m gitops_incidents merge-driver %O %A %B %P\n"
    # Again: nothing written, nothing changed.
    status, err = init(capsys, str(root))
    assert status == 0 and "0 file(s) written, 15 kept" in err
    assert files(root) == made


def test_init_in_an_existing_repository_adds_only_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ops"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    own = {
        "gitops-incidents.yaml": b"# ours\nsite: {title: Ours}\n",
        ".gitignore": b"*.pyc",
        ".pre-commit-config.yaml": (
            b"# our hooks\nrepos:\n  - repo: local\n    hooks:\n"
            b"      - {id: ours, name: ours, entry: 'true', language: system}\n"
        ),
    }
    for relpath, data in own.items():
        (root / relpath).write_bytes(data)
    status, err = init(capsys, str(root))
    assert status == 0, err
    assert (root / "gitops-incidents.yaml").read_bytes() == own["gitops-incidents.yaml"]
    assert "kept  gitops-incidents.yaml\n" in err
    assert (root / ".gitignore").read_text() == "*.pyc\nsite/build/\n"
    hooks = (root / ".pre-commit-config.yaml").read_text()
    assert hooks.startswith("# our hooks\nrepos:\n  - repo: local\n")
    assert "{id: ours, name: ours" in hooks and "id: gitops-incidents-validate" in hooks
    assert "added to .gitignore\n" in err and "added to .pre-commit-config.yaml\n" in err
    assert (root / "automations/stale-incident-reminder.yaml").is_file()


def test_init_refuses_a_file_and_a_folder_inside_another_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("x")
    status, err = init(capsys, str(tmp_path / "a-file"))
    assert status == 2 and "is a file, not a folder" in err
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    status, err = init(capsys, str(tmp_path / "repo" / "sub"))
    assert status == 2 and "is inside the git repository" in err
    assert not (tmp_path / "repo" / "sub").exists()


def test_init_never_writes_through_a_symbolic_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, elsewhere = tmp_path / "ops", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "automations").symlink_to(elsewhere)
    (root / "incidents").write_text("a file where the folder goes")
    status, err = init(capsys, str(root))
    assert status == 0
    assert list(elsewhere.iterdir()) == []
    assert "kept  automations/stale-incident-reminder.yaml (not written: a link" in err
    assert "kept  incidents/.gitkeep (not written" in err
