"""`resolve ID [--at TIME] [--impact TEXT]`: an incident resolved."""

from __future__ import annotations

import argparse
from typing import Any

from gitops_incidents.commands import add_commit_flags


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Set status: resolved in incidents/ID.yaml (end_time: the commit's "
        "time unless --at) and commit it as you.",
    )
    parser.add_argument("id", metavar="ID")
    parser.add_argument("--at", metavar="TIME", help="the end time (default: the commit's time)")
    parser.add_argument("--impact", metavar="TEXT", help="the impact assessment, Markdown")
    add_commit_flags(parser)


def run(args: argparse.Namespace) -> int:
    from gitops_incidents import incident_writer, lifecycle

    edit = incident_writer.resolve(at=args.at, impact=args.impact, strict=True)
    return lifecycle.change(args, edit, "Resolve")
