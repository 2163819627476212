"""`comment ID TEXT`: a comment appended to an incident, with its author and time."""

from __future__ import annotations

import argparse
from typing import Any

from gitops_incidents.commands import add_commit_flags
from gitops_incidents.errors import UsageError


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Append a comment (Markdown) to incidents/ID.yaml, with you as its "
        "author and now as its time, and commit it as you.",
    )
    parser.add_argument("id", metavar="ID")
    parser.add_argument("text", metavar="TEXT", help="Markdown; - reads it from standard input")
    parser.add_argument("--author", help="default: the name git commits as")
    parser.add_argument("--at", metavar="TIME", help="default: now")
    add_commit_flags(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from gitops_incidents import incident_writer, lifecycle

    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise UsageError("the comment is empty")
    author = args.author or lifecycle.person(args.repo)
    edit = incident_writer.comment(text, author=author, at=args.at or lifecycle.now())
    return lifecycle.change(args, edit, "Comment on")
