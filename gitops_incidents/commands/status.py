"""`status`: the engine's position, armed windows and open or doubtful actions."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from gitops_incidents import gitcmd

if TYPE_CHECKING:
    from gitops_incidents.ledger import State


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--acknowledge",
        action="store_true",
        help="clear the list of events skipped (after reading it): the one thing status writes",
    )


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.engine import Engine, restored_windows
    from gitops_incidents.repository import config_problem_at
    from gitops_incidents.triggers import iso

    engine = Engine(args.repo)
    if args.acknowledge:
        engine.ledger.update(_acknowledge, "acknowledge the skipped events")
    _, state = engine.ledger.read()
    head = engine.head()
    problems = [
        f"{problem}: the engine acts on nothing until the configuration is valid"
        for problem in [config_problem_at(args.repo, head)]
        if problem
    ]
    replaced = gitcmd.replacements(args.repo)
    if replaced:
        problems.append(
            f"{len(replaced)} commit(s) replaced with git replace: ignored, history "
            "is read as committed"
        )
    windows = restored_windows(engine, state)
    behind = (
        int(gitcmd.run(args.repo, "rev-list", "--count", f"{state.position}..{head}"))
        if state.position
        else None
    )
    attention = [
        i
        for i in state.invocations.values()
        if i.status in ("pending", "running", "unknown", "failed")
    ]
    if args.format == "json":
        data = {
            "ref": engine.ledger.ref,
            "position": state.position,
            "commits_behind": behind,
            "windows": [
                {
                    "automation": w.automation,
                    "trigger": w.trigger,
                    "key": list(w.key),
                    "posture": w.posture,
                    "start": iso(w.start),
                    "deadline": iso(w.end),
                    "count": w.count,
                    "threshold": w.threshold,
                }
                for w in windows
            ],
            "actions": [
                {"invocation": i.key, "type": i.type, "status": i.status, "detail": i.detail}
                for i in attention
            ],
            "skipped": state.skipped,
            "problems": problems,
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 1 if state.skipped or problems else 0
    if state.position is None:
        print(f"not started: the first apply starts at {head[:12]}", file=sys.stderr)
    else:
        lag = "up to date" if not behind else f"{behind} commit(s) behind {engine.branch_ref}"
        print(f"position: {state.position[:12]} ({lag})", file=sys.stderr)
    print(f"armed windows: {len(windows)}", file=sys.stderr)
    for w in windows:
        key = f" [{', '.join(w.key)}]" if any(w.key) else ""
        print(
            f"  {w.automation} {w.trigger}{key}: {w.posture}, {w.count}/{w.threshold} "
            f"since {iso(w.start)}, deadline {iso(w.end)}",
            file=sys.stderr,
        )
    print(f"actions needing attention: {len(attention)}", file=sys.stderr)
    for i in attention:
        print(f"  {i.status}: {i.key} ({i.type}) {i.detail}".rstrip(), file=sys.stderr)
    if state.skipped:
        print(
            f"events not acted on: {len(state.skipped)} (status --acknowledge clears the list)",
            file=sys.stderr,
        )
    for item in state.skipped:
        print(
            f"  {item['name']} of {item['incident']} ({item['commit'][:12]}): {item['reason']}",
            file=sys.stderr,
        )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if state.skipped or problems else 0


def _acknowledge(state: State) -> None:
    state.skipped = []
