"""`merge-driver %O %A %B %P`: git's merge driver for incident files (SPEC 8).

git runs it for the paths .gitattributes gives `merge=gitops-incidents` (`init`
configures it): the merged file goes to %A, exit 0 when clean, 1 when a field
changed differently on both sides (the file then has git's conflict markers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Merge an incident file by field: comments added on both sides are "
        "kept in time order, a field changed on one side is taken, a field changed "
        "differently on both is a conflict with git's markers (exit 1). Configured by init.",
    )
    parser.add_argument("base", type=Path, metavar="%O")
    parser.add_argument("ours", type=Path, metavar="%A", help="the result is written here")
    parser.add_argument("theirs", type=Path, metavar="%B")
    parser.add_argument("path", nargs="?", default="", metavar="%P")


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.merge import merge

    base, ours, theirs = (
        p.read_bytes().decode("utf-8", errors="surrogateescape")
        for p in (args.base, args.ours, args.theirs)
    )
    merged = merge(base, ours, theirs, args.path or str(args.ours))
    args.ours.write_bytes(merged.text.encode("utf-8", errors="surrogateescape"))
    if merged.conflicts:
        fields = ", ".join(merged.conflicts)
        print(f"gitops-incidents: {args.path}: changed on both sides: {fields}", file=sys.stderr)
        return 1
    return 0
