"""`ingest [FILE|-]`: evaluate external Prefect events, one JSON object a line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from gitops_incidents import gitcmd
from gitops_incidents.commands import UsageError
from gitops_incidents.commands.apply import add_format, show

MAX_LINE = 1 << 20  # as for files: a 1 MiB event is a mistake or an attack


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help="evaluate external events (Prefect event JSON, one a line)",
        description="Evaluate Prefect events with the same engine and ledger as apply; "
        "an event id seen before is ignored. Lines that are not events are reported as "
        "path:line:column and skipped (exit 1).",
    )
    parser.add_argument("file", nargs="?", default="-", metavar="FILE", help="default: stdin")
    parser.add_argument(
        "--from-prefect",
        action="store_true",
        help="read Prefect's own events (PREFECT_API_URL or the Prefect profile): from the "
        "cursor in the engine's state, then follow them until stopped",
    )
    parser.add_argument("--once", action="store_true", help="with --from-prefect: catch up, exit")
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="with --from-prefect: seconds between reads while following (default: 2)",
    )
    add_format(parser)


def run(args: argparse.Namespace) -> int:
    if args.from_prefect:
        if args.file != "-":
            raise UsageError("--from-prefect reads from Prefect: give no FILE")
        return _from_prefect(args)
    if args.once:
        raise UsageError("--once goes with --from-prefect")
    name = "<stdin>" if args.file == "-" else args.file
    try:
        stream = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror}") from None
    events, problems = [], []
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            event, problem = parse_event(line)
            if problem:
                problems.append(f"{name}:{number}:1: {problem}")
            else:
                events.append(event)
    for problem in problems:
        print(problem, file=sys.stderr)
    from gitops_incidents.engine import Engine  # loaded when used

    try:
        report = Engine(args.repo).ingest(events)
    except gitcmd.GitError as exc:
        raise UsageError(str(exc)) from None
    show(report, args.format)
    return 1 if report.failed or problems else 0


def parse_event(line: bytes) -> tuple[dict[str, Any], str | None]:
    """One line as a Prefect event, or the reason it is not one."""
    if len(line) > MAX_LINE:
        return {}, f"the line is over {MAX_LINE} bytes"
    try:
        event = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return {}, f"not JSON: {exc}"
    if not isinstance(event, dict):
        return {}, "expected a JSON object (a Prefect event)"
    try:
        json.dumps(event, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # "\ud800": JSON can spell it, no text can hold it
        return {}, "the event holds a lone surrogate (a \\uD800-\\uDFFF escape), which is not text"
    for key in ("id", "event", "occurred"):
        if not isinstance(event.get(key), str) or not event[key]:
            return {}, f"the event has no {key!r} string"
    resource = event.get("resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("prefect.resource.id"), str):
        return {}, "the event has no resource with a 'prefect.resource.id'"
    related = event.setdefault("related", [])
    if not isinstance(related, list) or not all(isinstance(r, dict) for r in related):
        return {}, "'related' must be a list of resources"
    for labels in (resource, *related):
        if not all(isinstance(value, str) for value in labels.values()):
            return {}, "resource labels must be strings"
    try:
        moment = datetime.fromisoformat(event["occurred"])
    except ValueError:
        return {}, f"'occurred' is not an ISO 8601 time: {event['occurred']!r}"
    if moment.tzinfo is None:
        return {}, "'occurred' has no time zone"
    event.setdefault("payload", {})
    return event, None


def _from_prefect(args: argparse.Namespace) -> int:
    from gitops_incidents.actions import ActionFailed
    from gitops_incidents.engine import Engine, Report

    engine = Engine(args.repo)
    failed = False
    try:
        while True:
            report = Report()
            try:
                read = engine.ingest_from_prefect(report)
            except gitcmd.GitError as exc:
                raise UsageError(str(exc)) from None
            except ActionFailed as exc:  # Prefect unreachable, say: tried again next time
                report.say([f"reading Prefect's events: {exc}"])
                read = 0
            if read or report.problems or args.once:
                print(f"read {read} event(s) from Prefect", file=sys.stderr)
                show(report, args.format)
            failed = failed or report.failed
            if args.once:
                return 1 if failed else 0
            time.sleep(args.interval)
    except KeyboardInterrupt:  # Ctrl-C while following: a clean stop
        return 1 if failed else 0
