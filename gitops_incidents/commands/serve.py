"""`serve [--dev-addr HOST:PORT]`: preview the site, rebuilt on each commit."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gitops_incidents.commands.build import log_to_stderr, project


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
    )
    parser.add_argument("--dev-addr", default="127.0.0.1:8000", metavar="HOST:PORT", type=address)


def address(value: str) -> str:
    """HOST:PORT, checked before MkDocs sees it (it would fail with a traceback)."""
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 127.0.0.1:8000, not {value!r}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    from mkdocs.commands.serve import serve  # imported when used: slow

    log_to_stderr()
    with project(args.repo) as (mkdocs_file, options):
        print(f"serving the site on http://{args.dev_addr}/ (Ctrl-C stops)", file=sys.stderr)
        serve(config_file=str(mkdocs_file), dev_addr=args.dev_addr, livereload=True, **options)
    return 0
