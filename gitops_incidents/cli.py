"""The `gitops-incidents` command: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gitops_incidents import __version__, tracker
from gitops_incidents.commands import (
    Command,
    apply,
    build,
    check,
    comment,
    declare,
    events,
    ingest,
    init,
    merge_driver,
    plan,
    reopen,
    report,
    resolve,
    schema,
    serve,
    status,
    update,
    validate,
    watch,
)
from gitops_incidents.errors import Error

COMMANDS: dict[str, Command] = {
    "init": init,
    "validate": validate,
    "schema": schema,
    "events": events,
    "plan": plan,
    "check": check,
    "apply": apply,
    "declare": declare,
    "update": update,
    "comment": comment,
    "resolve": resolve,
    "reopen": reopen,
    "ingest": ingest,
    "status": status,
    "build": build,
    "serve": serve,
    "report": report,
    "watch": watch,
    "merge-driver": merge_driver,
}

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
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
    for name, module in COMMANDS.items():
        module.add_parser(subparsers, name, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    root = getattr(args, "repo", None)
    args.repo = root.resolve() if root else tracker.find_root(Path.cwd())
    if not args.repo.is_dir():
        return usage_error(f"--repo: no such directory: {root}")
    try:
        return COMMANDS[args.command].run(args)
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
