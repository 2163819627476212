"""`report ID [--format md|json]`: the retrospective report of one incident."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gitops_incidents.errors import UsageError


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="The report of one incident, fit for a compliance review: its "
        "timeline from history, durations, who took part, what automations did.",
    )
    parser.add_argument("id", metavar="ID", help="the incident's id (its file name)")
    parser.add_argument("--format", choices=("md", "json"), default="md")


def run(args: argparse.Namespace) -> int:
    from gitops_incidents import site
    from gitops_incidents.repository import default_until
    from gitops_incidents.timeline import report, report_json, report_markdown

    until = default_until(args.repo)
    _, items = site.read(args.repo, until)
    found = next((item for item in items if item.id == args.id), None)
    if found is None:
        raise UsageError(f"no incident {args.id!r} in the history of {until}")
    data = report(found)
    sys.stdout.write(report_json(data) if args.format == "json" else report_markdown(found, data))
    return 0
