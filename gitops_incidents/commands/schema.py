"""`schema [incident|automation|config]`: print a file format's JSON Schema."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gitops_incidents.schemas import SCHEMAS


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(name, parents=[common], help=summary)
    parser.add_argument("kind", nargs="?", choices=sorted(SCHEMAS), default="incident")


def run(args: argparse.Namespace) -> int:
    from gitops_incidents.schemas import schema_text

    sys.stdout.write(schema_text(args.kind))
    return 0
