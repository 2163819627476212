"""Exit statuses from one handler: 1 for what is wrong in the repository, 2 for
usage, 3 for a bug, each said in one line and never a traceback."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from gitops_incidents import cli, gitcmd
from gitops_incidents.errors import UsageError
from tests.conftest import ROOT, Repo


@pytest.mark.parametrize(
    ("raised", "status", "said"),
    [
        (UsageError("--x: bad"), 2, "gitops-incidents: error: --x: bad\n"),
        (gitcmd.GitError("the ledger is damaged"), 1, "gitops-incidents: error: the ledger is damaged\n"),
        (KeyError("oops"), 3, "gitops-incidents: internal error: KeyError: 'oops'\nThis is a bug"),
    ],
)  # fmt: skip
def test_each_kind_of_error_has_its_exit_status_and_one_line(
    repo: Repo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    raised: Exception,
    status: int,
    said: str,
) -> None:
    def fails(args: argparse.Namespace) -> int:
        raise raised

    monkeypatch.setattr(cli.command("status"), "run", fails)
    assert cli.main(["--repo", str(repo.path), "status"]) == status
    err = capsys.readouterr().err
    assert err.startswith(said) and "Traceback" not in err


def test_the_traceback_is_there_when_asked_for(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(args: argparse.Namespace) -> int:
        raise KeyError("oops")

    monkeypatch.setattr(cli.command("status"), "run", fails)
    monkeypatch.setenv("GITOPS_INCIDENTS_TRACEBACK", "1")
    with pytest.raises(KeyError):
        cli.main(["--repo", str(repo.path), "status"])


def test_every_spec_section_the_code_cites_is_in_docs() -> None:
    cited = {
        match
        for path in [*ROOT.glob("gitops_incidents/**/*.py"), *ROOT.glob("tests/*.py")]
        for match in re.findall(r"SPEC (\d+(?:\.\d+)?)", path.read_text(encoding="utf-8"))
    }
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| (\d+(?:\.\d+)?) \| [^|]+ \| \[[^]]+\]\(([^)#]+)", index, re.M))
    assert cited and cited <= {number for number, _ in listed}
    for number, page in listed:  # each on a page of its own, under a heading naming it
        heading = re.compile(rf"^#+ .*\b{re.escape(number)}\b", re.M)
        assert heading.search((ROOT / "docs" / page).read_text(encoding="utf-8")), number


# What a command may not load to start: each costs tens of milliseconds, and `--help` or
# a pre-commit hook's `validate` runs often (issue 15: start-up in a blink).
HEAVY = ("pydantic", "jinja2", "httpx", "markdown", "mkdocs", "ruamel", "sqlite3", "prefect")
_LOADED = """
import sys
from gitops_incidents import cli
status = cli.main(sys.argv[2:])
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1].split(",")))
print(",".join(heavy), file=sys.__stderr__)
sys.exit(status)
"""


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["--help"], set()),
        (["schema", "--help"], set()),
        (["status", "--help"], set()),
        (["validate", "--help"], set()),
        (["validate", "incidents/db-outage.yaml"], {"pydantic", "ruamel"}),
        (["schema", "config"], {"pydantic"}),
    ],
)
def test_a_command_loads_only_what_it_uses(repo: Repo, argv: list[str], allowed: set[str]) -> None:
    repo.write("incidents/db-outage.yaml", "name: Database down\nseverity: SEV-2\n")
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, ",".join(HEAVY), *argv],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(filter(None, done.stderr.rstrip("\n").rpartition("\n")[2].split(",")))
    assert loaded == allowed
