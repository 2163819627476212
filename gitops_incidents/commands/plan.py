"""`plan [--base REV] [--head REV]`: what the automations would do; changes nothing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from gitops_incidents import gitcmd

if TYPE_CHECKING:
    from gitops_incidents.engine import Plan


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="For a pull request: the events its commits would emit and, per "
        "automation, what would fire and which actions would run, from the state at "
        "base. Nothing is written: no ref, no file, no cache. Exit 1 if a file in the "
        "range is invalid.",
    )
    parser.add_argument("--base", metavar="REV", help="default: the configured branch")
    parser.add_argument("--head", metavar="REV", default="HEAD", help="default: HEAD")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.engine import plan
    from gitops_incidents.repository import branch_ref, config_at

    base = args.base or branch_ref(args.repo, config_at(args.repo, args.head))
    result = plan(args.repo, gitcmd.resolve(args.repo, base), gitcmd.resolve(args.repo, args.head))
    for finding in result.findings:
        print(finding, file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(json.dumps(as_json(result), ensure_ascii=False) + "\n")
    else:
        for line in describe(result, f"{base}..{args.head}"):
            print(line, file=sys.stderr)
    return 1 if result.findings else 0


def as_json(result: Plan) -> dict[str, Any]:
    return {
        "events": result.events,
        "firings": [
            {
                "automation": p.automation,
                "state": p.state,
                "event": p.event["id"] if p.event else None,
                "actions": [{"type": t, "would": what} for t, what in p.actions],
            }
            for p in result.planned
        ],
    }


def describe(result: Plan, span: str) -> list[str]:
    """The plan as a reviewer reads it: the events, then per automation what fires."""
    lines = [f"{len(result.events)} event(s) in {span}"]
    for event in result.events:
        resource = event["resource"]["prefect.resource.id"]
        lines.append(f"  {event['occurred']} {event['event']} {resource}")
    by_name: dict[str, list[Any]] = {}
    for p in result.planned:
        by_name.setdefault(p.automation, []).append(p)
    lines.append(f"{len(result.planned)} firing(s) would follow")
    for name, planned in by_name.items():
        lines.append(f"{name}:")
        for p in planned:
            cause = f"on {p.event['event']}" if p.event else "at a deadline"
            lines.append(f"  fires {cause}" + ("" if p.state == "Triggered" else " (resolved)"))
            lines.extend(f"    {kind}: {what}" for kind, what in p.actions)
    return lines
