"""`events [--since REV] [--until REV] [--incident ID]`: the derived event stream."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Events of the main line, oldest first, one Prefect event (JSON) a line "
        "on stdout. Invalid file versions emit nothing and are reported on stderr.",
    )
    parser.add_argument("--since", metavar="REV", help="only the commits after REV")
    parser.add_argument(
        "--until", metavar="REV", help="the last commit (default: the configured branch, or HEAD)"
    )
    parser.add_argument("--incident", metavar="ID", help="only this incident's events")


def run(args: argparse.Namespace) -> int:
    from gitops_incidents import gitcmd
    from gitops_incidents.history import History
    from gitops_incidents.ledger import engine_ref
    from gitops_incidents.progress import Progress
    from gitops_incidents.repository import default_until

    branch = default_until(args.repo)
    until = args.until or branch
    # From where the engine stands, its snapshot saves the walk before (a fresh clone).
    seed = gitcmd.ref_value(args.repo, engine_ref(branch)) if args.since else None
    write = sys.stdout.write
    with History(args.repo, seed=seed) as history, Progress("reading history") as progress:
        suffix = f".incident.{args.incident}" if args.incident else None
        for step in history.walk(until, since=args.since):
            progress.advance()
            for finding in step.findings:
                progress.note(f"warning: {step.commit.sha[:12]}: {finding}")
            for event in step.events:
                if suffix and not event["resource"]["prefect.resource.id"].endswith(suffix):
                    continue
                write(json.dumps(event, ensure_ascii=False))
                write("\n")
    return 0
