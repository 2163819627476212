"""`update ID [--name] [--severity] [--tag/--untag] [--resource] [--commander] ...`."""

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
        description="Change fields of incidents/ID.yaml (comments and layout kept), check "
        "the result, and commit it as you.",
    )
    parser.add_argument("id", metavar="ID")
    parser.add_argument("--name")
    parser.add_argument("--severity", help="from the configured scale")
    parser.add_argument("--summary", help="Markdown")
    parser.add_argument("--impact", help="Markdown")
    parser.add_argument("--start-time", metavar="TIME")
    parser.add_argument("--tag", action="append", default=[], help="add a tag; repeat for more")
    parser.add_argument("--untag", action="append", default=[], metavar="TAG", help="remove one")
    parser.add_argument(
        "--resource", action="append", default=[], metavar="ID", help="link a resource id"
    )
    parser.add_argument("--commander", metavar="NAME", help="short for --role commander=NAME")
    parser.add_argument(
        "--role", action="append", default=[], metavar="ROLE=NAME", help="scribe=bob, ..."
    )
    add_commit_flags(parser)


def run(args: argparse.Namespace) -> int:
    from gitops_incidents import incident_writer, lifecycle

    roles = {}
    for item in args.role:
        role, equals, holder = item.partition("=")
        if not (equals and role.strip() and holder.strip()):
            raise UsageError(f"--role {item!r}: give it as ROLE=NAME")
        roles[role.strip()] = holder.strip()
    if args.commander:
        roles["commander"] = args.commander
    fields = {
        key: incident_writer.text_value(value)
        for key, value in [("name", args.name), ("summary", args.summary), ("impact", args.impact)]
        if value is not None
    }
    if args.start_time is not None:
        fields["start_time"] = incident_writer.time_value(args.start_time)
    if args.severity is not None:
        fields["severity"] = lifecycle.severity(lifecycle.config(args.repo), args.severity)
    if not (fields or args.tag or args.untag or args.resource or roles):
        raise UsageError("nothing to update: give at least one of the options")
    edit = incident_writer.update(
        fields=fields, tag=args.tag, untag=args.untag, resources=args.resource, roles=roles
    )
    return lifecycle.change(args, edit, "Update")
