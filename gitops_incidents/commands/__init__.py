"""One module per subcommand, each with `add_parser` and `run`.

A command module imports only what building its parser needs at the top; what
`run` needs is imported in `run`. So `--help` and each command load only their
own code, not pydantic, Jinja or httpx for every command (tests/test_cli.py).
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class Command(Protocol):
    def add_parser(self, subparsers: Any, name: str, common: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def add_commit_flags(parser: argparse.ArgumentParser) -> None:
    """The lifecycle commands' flags (lifecycle.change reads them)."""
    parser.add_argument("--no-commit", action="store_true", help="write the file only")
    parser.add_argument("--push", action="store_true", help="push the branch after committing")
