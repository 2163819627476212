"""The `gitops-incidents` command: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from gitops_incidents import __version__, tracker
from gitops_incidents.errors import Error

if TYPE_CHECKING:
    from gitops_incidents.commands import Command

# Each command and what it does: its module (commands/<name>.py) is imported only to
# run it or show its own help, so `--help` and every command start without the others.
COMMANDS = {
    "init": "make a tracker repository, or add what it lacks (overwrites nothing)",
    "validate": "check incident, automation and configuration files",
    "schema": "print the JSON Schema of a file format (for editors)",
    "events": "print the events derived from history, one JSON object a line",
    "plan": "the events of base..head and what the automations would do; changes nothing",
    "check": "a pull request's check: validation, merge-safety rules and the plan, in one report",
    "apply": "process history since the last run: fire triggers, run and record actions",
    "declare": "declare an incident: write incidents/<id>.yaml and commit it as you",
    "update": "change an incident's fields and commit it as you",
    "comment": "append a comment to an incident and commit it as you",
    "resolve": "resolve an incident and commit it as you",
    "reopen": "reopen a resolved incident and commit it as you",
    "ingest": "evaluate external events (Prefect event JSON, one a line)",
    "status": "position in history, armed triggers, actions pending, failed or unknown",
    "build": "build the site (site/mkdocs.yml, or a built-in one) with MkDocs and Material",
    "serve": "preview the site on 127.0.0.1:8000, rebuilt on each commit (live reload)",
    "report": "the retrospective report of one incident (timeline, durations, people)",
    "watch": "run the engine continuously: on each commit, at each deadline",
    "merge-driver": "git's merge driver for incident files: a three-way merge by field",
}

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def command(name: str) -> Command:
    return cast(
        "Command", importlib.import_module(f"gitops_incidents.commands.{name.replace('-', '_')}")
    )


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the `chosen` command (every other command is
    listed with its one line, its module left unloaded)."""
    # --repo is accepted before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--repo",
        type=Path,
        default=argparse.SUPPRESS,
        help="the tracker repository (default: the git repository around the current directory)",
    )
    parser = argparse.ArgumentParser(
        prog="gitops-incidents",
        description="Incident management for workflow platforms, kept as plain files in git.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if name == chosen:
            command(name).add_parser(subparsers, name, common, summary)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    """The command `argv` names, if any: its first word that is not an option's."""
    words = iter(argv)
    for word in words:
        if word == "--repo":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_chosen(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    root = getattr(args, "repo", None)
    args.repo = root.resolve() if root else tracker.find_root(Path.cwd())
    if not args.repo.is_dir():
        return usage_error(f"--repo: no such directory: {root}")
    try:
        return command(args.command).run(args)
    except Error as exc:
        print(f"gitops-incidents: error: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        # The reader went away (`events | head`): stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FINDINGS
    except Exception as exc:
        if os.environ.get("GITOPS_INCIDENTS_TRACEBACK"):
            raise
        # A bug: one line, not a traceback a person has to read.
        print(
            f"gitops-incidents: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in gitops-incidents. Please report it with the command you ran "
            "(CONTRIBUTING.md says where); GITOPS_INCIDENTS_TRACEBACK=1 shows the traceback.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def usage_error(message: str) -> int:
    print(f"gitops-incidents: error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
