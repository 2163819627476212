from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webhook_server import Receiver, serve

ROOT = Path(__file__).resolve().parent.parent

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.invalid",
    # Tests never read the machine's git configuration.
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class Repo:
    """A real git repository in a temporary folder, written to as a user would."""

    def __init__(self, path: Path, *, init: bool = True) -> None:
        self.path = path
        if init:
            path.mkdir(parents=True)
            self.git("init", "-q", "-b", "main")

    @classmethod
    def clone(cls, source: Path, path: Path) -> Repo:
        subprocess.run(["git", "clone", "-q", str(source), str(path)], check=True)
        return cls(path, init=False)

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **(env or {})},
        )
        return result.stdout

    def write(self, relpath: str, content: str | bytes) -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        return target

    def commit(
        self,
        message: str,
        author: tuple[str, str] | None = None,
        when: int | None = None,
        committed: int | None = None,
    ) -> str:
        """Commit everything, as `author` (name, email) at `when` (seconds since 1970, UTC)."""
        self.git("add", "-A")
        self.git(
            "commit", "-q", "--allow-empty", "-m", message, env=self._env(author, when, committed)
        )
        return self.head()

    def merge(self, branch: str, message: str, author: tuple[str, str], when: int) -> str:
        self.git("merge", "-q", "--no-ff", "-m", message, branch, env=self._env(author, when, when))
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    @staticmethod
    def _env(
        author: tuple[str, str] | None, when: int | None, committed: int | None
    ) -> dict[str, str]:
        env: dict[str, str] = {}
        if author:
            env |= {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]}
            env |= {"GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1]}
        if when is not None:
            env["GIT_AUTHOR_DATE"] = f"@{when} +0000"
            env["GIT_COMMITTER_DATE"] = f"@{committed if committed is not None else when} +0000"
        return env


def tallies(repo: Repo) -> dict[str, tuple[int, str | None]]:
    """The engine's tallies of main (events evaluated, digest), per incident."""
    from gitops_incidents.ledger import Ledger, Tallies

    commit, state = Ledger(repo.path, "main").read()
    return {
        incident_id: (tally.events, tally.digest)
        for incident_id, tally in Tallies(repo.path, commit, state).read_all().items()
    }


def initialized(path: Path, files: dict[str, str]) -> Repo:
    """A repository `init` made at `path`, with `files` committed."""
    from gitops_incidents.cli import main

    assert main(["init", str(path)]) == 0
    repo = Repo(path, init=False)
    for relpath, text in files.items():
        repo.write(relpath, text)
    repo.commit("start")
    return repo


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    yield Repo(tmp_path / "tracker")


# -- a tracker whose notifiers and webhooks reach a real HTTP server on 127.0.0.1 --------

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z

CONFIG = """\
bot: {name: gitops-incidents, email: bot@example.invalid}
notifiers:
  hook: {kind: webhook, url_env: HOOK_URL}
  slack: {kind: slack, url_env: SLACK_URL}
  teams: {kind: teams, url_env: TEAMS_URL}
  apprise: {kind: apprise, url_env: APPRISE_URL}
webhooks:
  pager: {url_env: PAGER_URL}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def tracker(repo: Repo, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A tracker repository whose notifiers and webhooks point at the local server."""
    for name in ("HOOK", "SLACK", "TEAMS", "PAGER"):
        monkeypatch.setenv(f"{name}_URL", receiver.url(f"/{name.lower()}"))
    monkeypatch.setenv("APPRISE_URL", receiver.url("/apprise").replace("http://", "json://"))
    monkeypatch.setenv("GITOPS_INCIDENTS_RETRY_DELAY", "0.01")
    monkeypatch.delenv("GITOPS_INCIDENTS_CRASH", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    repo.write("gitops-incidents.yaml", CONFIG)
    repo.write("incidents/old.yaml", "name: Before the engine\nseverity: SEV-2\n")
    repo.commit("start", when=T0)
    return repo


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--streams",
        default="2000",
        help="how many random streams the differential test runs through both evaluators",
    )
    parser.addoption("--stream-seed", default="12", help="the seed of those streams")
