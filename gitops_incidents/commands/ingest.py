"""`ingest [FILE|-]`: evaluate external Prefect events, one JSON object a line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_incidents.commands.apply import add_format, show
from gitops_incidents.errors import UsageError

if TYPE_CHECKING:
    from gitops_incidents.engine import Engine, Report

MAX_LINE = 1 << 20  # as for files: a 1 MiB event is a mistake or an attack


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
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
        help="with --from-prefect: seconds to wait after the live stream is lost, before "
        "catching up and following again (default: 2)",
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
    from gitops_incidents.engine import Engine

    report = Engine(args.repo).ingest(events)
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
    """Catch up from the cursor; then (without --once) follow Prefect's live stream,
    catching up again after the stream is lost, until SIGINT or SIGTERM."""
    from gitops_incidents.actions import ActionFailed
    from gitops_incidents.engine import Engine, Report

    engine = Engine(args.repo)
    failed = False

    def handled(step: Callable[[Report], int], what: str) -> None:
        nonlocal failed
        report = Report()
        try:
            taken = step(report)
        except ActionFailed as exc:  # Prefect unreachable, say: tried again later
            report.say([f"reading Prefect's events: {exc}"])
            taken = 0
        if taken or report.problems or args.once:
            print(f"{what}: {taken} event(s) from Prefect", file=sys.stderr)
            show(report, args.format)
        failed = failed or report.failed

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C
    try:
        while True:
            handled(engine.ingest_from_prefect, "caught up")
            if args.once:
                return 1 if failed else 0
            print("following Prefect's events (Ctrl-C stops)", file=sys.stderr)
            handled(_following(engine, args.format), "followed")
            time.sleep(args.interval)  # the stream was lost: catch up, then follow again
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 1 if failed else 0


def _following(engine: Engine, form: str) -> Callable[[Report], int]:
    """A step that follows Prefect's live stream until it is lost, each batch evaluated
    and shown as it comes."""
    from gitops_incidents.engine import Report
    from gitops_incidents.prefect import events as bridge

    def step(report: Report) -> int:
        taken = 0

        def take(events: list[dict[str, Any]]) -> None:
            nonlocal taken
            batch = Report()
            taken += engine.take_from_prefect(events, batch)
            if batch.fired or batch.outcomes or batch.problems:
                show(batch, form)
            report.merge(batch)

        bridge.follow(take)
        return taken

    return step
