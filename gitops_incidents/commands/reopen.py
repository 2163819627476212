"""`reopen ID`: a resolved incident active again."""

from __future__ import annotations

import argparse
from typing import Any

from gitops_incidents.commands import add_commit_flags


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Set status: active in incidents/ID.yaml (its end_time removed) and "
        "commit it as you.",
    )
    parser.add_argument("id", metavar="ID")
    add_commit_flags(parser)


def run(args: argparse.Namespace) -> int:
    from gitops_incidents import incident_writer, lifecycle

    return lifecycle.change(args, incident_writer.reopen(strict=True), "Reopen")
