"""`declare NAME --severity S [--from RESOURCE] ...`: a new incident, committed as you."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gitops_incidents import tracker
from gitops_incidents.commands import add_commit_flags
from gitops_incidents.errors import UsageError


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Write a new incident file with the round-trip writer, check it, and "
        "commit it as the person running the command. With --from, the incident is "
        "declared from a Prefect resource: it is looked up, named, and linked with the "
        "resources related to it.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="default, with --from: proposed")
    parser.add_argument("--severity", required=True, help="from the configured scale")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="RESOURCE",
        help="a Prefect resource: prefect.flow-run.<uuid>, prefect.work-pool.<name or uuid>, "
        "prefect.deployment.<uuid or flow/name>, prefect.block-document.<uuid>",
    )
    parser.add_argument("--summary", default="", help="Markdown")
    parser.add_argument("--tag", action="append", default=[], help="repeat for more")
    parser.add_argument(
        "--resource", action="append", default=[], metavar="ID", help="a resource id to link"
    )
    parser.add_argument("--id", help="the file name (default: from the name)")
    add_commit_flags(parser)


def run(args: argparse.Namespace) -> int:
    from gitops_incidents import incident_writer, lifecycle

    root: Path = args.repo
    config = lifecycle.config(root)
    severity = lifecycle.severity(config, args.severity)
    name, related = args.name, [*args.resource]
    if args.source:
        from gitops_incidents.actions import ActionFailed
        from gitops_incidents.prefect.lookups import resource

        try:
            proposed, linked = resource(args.source)
        except ActionFailed as exc:
            print(f"gitops-incidents: {args.source}: {exc}", file=sys.stderr)
            return 1
        name = name or proposed
        related = [*linked, *related]
    if not name:
        raise UsageError("give the incident a NAME (or --from a Prefect resource)")
    incident_id = args.id or _free_id(root, incident_writer.slug(name))
    relpath = f"{tracker.INCIDENTS}/{incident_id}.yaml"
    if tracker.name_problem(relpath, tracker.Kind.INCIDENT) or (root / relpath).exists():
        problem = tracker.name_problem(relpath, tracker.Kind.INCIDENT) or "it exists already"
        raise UsageError(f"--id {incident_id}: {problem}")
    text = incident_writer.new_incident(
        name=name, severity=severity, summary=args.summary, tags=args.tag, related=related
    )
    status = lifecycle.save(root, relpath, text, f"Declare {incident_id}: {name}", args, config)
    if status == 0:
        print(f"declared {relpath}: {name} ({severity})", file=sys.stderr)
    return status


def _free_id(root: Path, base: str) -> str:
    """`base`, or `base-2`, `base-3`... where that incident file exists already."""
    candidate, number = base, 1
    while (root / tracker.INCIDENTS / f"{candidate}.yaml").exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate
