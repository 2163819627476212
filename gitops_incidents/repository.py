"""The tracker repository as committed: its branch and its configuration there.

What every reader of history needs first (the engine, the site, `events`,
`report`), kept apart from them so that each imports only this.
"""

from __future__ import annotations

from pathlib import Path

from gitops_incidents import gitcmd, tracker
from gitops_incidents.models import Config, Context
from gitops_incidents.validation import parse_file


def read_config(root: Path, rev: str) -> tuple[Config, str | None]:
    """The configuration committed at `rev`, and why it cannot be read if it cannot:
    then the defaults (`validate` reports it; the engine acts on nothing under it)."""
    data = gitcmd.read_blob(root, rev, tracker.CONFIG_FILE)
    if data is None:
        return Config(), None
    config, findings = parse_file(tracker.CONFIG_FILE, data, Config, Context())
    return (config, None) if config is not None else (Config(), f"{rev[:12]}: {findings[0]}")


def config_at(root: Path, rev: str) -> Config:
    """The configuration committed at `rev`; the defaults if it has none or it is invalid."""
    return read_config(root, rev)[0]


def config_problem_at(root: Path, rev: str) -> str | None:
    """Why the configuration committed at `rev` cannot be read, or None."""
    return read_config(root, rev)[1]


def branch_ref(root: Path, config: Config) -> str:
    """The configured branch if it exists, else the branch checked out."""
    ref = f"refs/heads/{config.branch}"
    if gitcmd.ref_value(root, ref) is not None:
        return ref
    try:
        return gitcmd.run(root, "symbolic-ref", "-q", "HEAD").strip()
    except gitcmd.GitError:
        raise gitcmd.GitError(
            f"no branch {config.branch!r} here, and HEAD is detached: "
            "set `branch:` in gitops-incidents.yaml or check the branch out"
        ) from None


def default_until(root: Path) -> str:
    """What to read history up to: the configured branch, or HEAD where there is no
    branch to read (a CI checkout of a detached commit)."""
    try:
        return branch_ref(root, config_at(root, "HEAD"))
    except gitcmd.GitError:
        return "HEAD"
