"""`apply [--as-of TIME] [--replay]`: evaluate new commits, run the actions, record them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitops_incidents.engine import Report


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Evaluate the commits since the last run, then the proactive deadlines "
        "at the clock; run each firing's actions once and record them on "
        "refs/gitops-incidents/<branch>. Exit 1 if an action failed.",
    )
    parser.add_argument(
        "--as-of",
        metavar="TIME",
        type=parse_time,
        help=(
            "the clock for proactive deadlines, exactly (ISO 8601; default: now, held "
            "back by how late the events streamed in arrived)"
        ),
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="on the first run, evaluate the whole history instead of starting at HEAD",
    )
    add_format(parser)


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: one object a line on stdout (firings, then outcomes)",
    )


def parse_time(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. {value}Z")
    return moment.timestamp()


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.engine import Engine

    report = Engine(args.repo).apply(as_of=args.as_of, replay=args.replay)
    show(report, args.format)
    return 1 if report.failed else 0


def show(report: Report, form: str) -> None:
    """What fired and what each action did: for people on stderr, or JSON on stdout."""
    from gitops_incidents.triggers import iso

    for finding in report.findings:
        print(f"warning: {finding}", file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    for item in report.skipped:
        event = item.event
        print(
            f"skipped: {event['event']} of {event['resource']['prefect.resource.id']} "
            f"({item.commit[:12]}): {item.reason}",
            file=sys.stderr,
        )
    if form == "json":
        for record in report.fired:
            line = {
                "firing": record.id,
                "automation": record.automation,
                "name": record.name,
                "state": record.state,
                "triggered": iso(record.triggered),
                "labels": record.labels,
                "event": record.event["id"] if record.event else None,
                "invocations": record.invocations,
            }
            sys.stdout.write(json.dumps(line) + "\n")
        for outcome in report.outcomes:
            line = {
                "invocation": outcome.key,
                "type": outcome.type,
                "status": outcome.status,
                "detail": outcome.detail,
            }
            sys.stdout.write(json.dumps(line) + "\n")
        return
    for record in report.fired:
        cause = f" on {record.event['event']}" if record.event else " (deadline passed)"
        labels = "".join(f" {k}={v}" for k, v in record.labels.items())
        state = "" if record.state == "Triggered" else f" ({record.state.lower()})"
        print(f"fired: {record.name}{state}{cause}{labels}", file=sys.stderr)
    for outcome in report.outcomes:
        print(
            f"  {outcome.status}: {outcome.automation}: {outcome.type}: {outcome.detail}",
            file=sys.stderr,
        )
    if report.published:
        print(f"published {report.published} event(s) to Prefect", file=sys.stderr)
    failed = sum(o.status in ("failed", "unknown") for o in report.outcomes)
    print(
        f"{len(report.fired)} firing(s), {len(report.outcomes)} action(s) run"
        + (f", {failed} failed or unknown" if failed else ""),
        file=sys.stderr,
    )
