"""`plan [--base REV] [--head REV]`: what the automations would do; changes nothing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gitops_incidents import gitcmd
from gitops_incidents.commands import UsageError
from gitops_incidents.repository import branch_ref, config_at


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help="the events of base..head and what the automations would do; changes nothing",
        description="For a pull request: the events its commits would emit and, per "
        "automation, what would fire and which actions would run, from the state at "
        "base. Nothing is written: no ref, no file, no cache. Exit 1 if a file in the "
        "range is invalid.",
    )
    parser.add_argument("--base", metavar="REV", help="default: the configured branch")
    parser.add_argument("--head", metavar="REV", default="HEAD", help="default: HEAD")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.engine import plan  # the engine loads when used

    try:
        base = args.base or branch_ref(args.repo, config_at(args.repo, args.head))
        result = plan(
            args.repo, gitcmd.resolve(args.repo, base), gitcmd.resolve(args.repo, args.head)
        )
    except gitcmd.GitError as exc:
        raise UsageError(str(exc)) from None
    for finding in result.findings:
        print(finding, file=sys.stderr)
    if args.format == "json":
        data = {
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
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        print(f"{len(result.events)} event(s) in {base}..{args.head}", file=sys.stderr)
        for event in result.events:
            resource = event["resource"]["prefect.resource.id"]
            print(f"  {event['occurred']} {event['event']} {resource}", file=sys.stderr)
        by_name: dict[str, list[Any]] = {}
        for p in result.planned:
            by_name.setdefault(p.automation, []).append(p)
        print(f"{len(result.planned)} firing(s) would follow", file=sys.stderr)
        for name, planned in by_name.items():
            print(f"{name}:", file=sys.stderr)
            for p in planned:
                cause = f"on {p.event['event']}" if p.event else "at a deadline"
                print(
                    f"  fires {cause}" + ("" if p.state == "Triggered" else " (resolved)"),
                    file=sys.stderr,
                )
                for kind, what in p.actions:
                    print(f"    {kind}: {what}", file=sys.stderr)
    return 1 if result.findings else 0
