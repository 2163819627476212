"""`watch [--remote NAME] [--prefect-events] [--build] [--interval S] [--health ADDR]
[--log-format text|json]`: the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gitops_incidents.commands.build import DEFAULT_OUT, check_out
from gitops_incidents.errors import UsageError


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Run apply's engine whenever the branch moves (watched with watchdog, "
        "backed by a poll) and when a proactive deadline falls due, until SIGTERM or "
        "SIGINT, which let the run in flight finish (exit 0). SIGHUP reads the "
        "configuration again. One log line per thing done, on stderr.",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between polls of the branch, the back-up of the watcher (default: 2)",
    )
    parser.add_argument(
        "--health",
        metavar="ADDR",
        help="serve /healthz and /metrics (Prometheus) on [HOST:]PORT (default host: 127.0.0.1)",
    )
    parser.add_argument(
        "--remote",
        metavar="NAME",
        help="keep the branch and the engine's state in sync with this git remote: fetched "
        "each interval, every ledger write and bot commit pushed there first, atomically "
        "with a lease, so that daemons on several hosts run each action once",
    )
    parser.add_argument(
        "--prefect-events",
        action="store_true",
        help="also evaluate Prefect's events (PREFECT_API_URL or the Prefect profile): "
        "caught up from the engine's cursor, then its live stream, a batch at most every "
        "0.25 s",
    )
    parser.add_argument(
        "--build",
        nargs="?",
        const="",
        metavar="DIR",
        help=f"rebuild the site after the branch moves, into DIR (default: {DEFAULT_OUT}), "
        "MkDocs kept loaded between builds",
    )
    parser.add_argument("--log-format", choices=["text", "json"], default="text")


def health_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--health {value}: give [HOST:]PORT, e.g. 127.0.0.1:9108")
    return host or "127.0.0.1", int(port)


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.daemon import Daemon, Log, serve_health

    if args.interval <= 0:
        raise UsageError("--interval must be above 0")
    address = health_address(args.health) if args.health else None
    site = None
    if args.build is not None:
        site = (Path(args.build) if args.build else args.repo / DEFAULT_OUT).resolve()
        check_out(args.repo, site, force=False)
    if args.prefect_events:
        from gitops_incidents.actions import ActionFailed
        from gitops_incidents.prefect.client import configured

        try:
            configured()
        except ActionFailed as exc:
            raise UsageError(f"--prefect-events: {exc}") from None
    daemon = Daemon(
        args.repo,
        interval=args.interval,
        log=Log(args.log_format),
        remote=args.remote,
        prefect_events=args.prefect_events,
        site=site,
    )
    if address is not None:
        try:
            serve_health(daemon.status, *address)
        except OSError as exc:
            raise UsageError(f"--health {args.health}: {exc.strerror}") from None
        daemon.log("info", "serving /healthz and /metrics", address=f"{address[0]}:{address[1]}")
    return daemon.run()
