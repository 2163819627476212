"""One module per subcommand, each with `add_parser` and `run`.

`cli` lists the commands with their one line and imports only the module of the
one that runs. A module imports at the top only what building its parser needs,
and what `run` needs in `run`: `--help` of a command loads no pydantic, Jinja or
httpx it would not use (tests/test_cli.py).
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class Command(Protocol):
    def add_parser(
        self, subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str
    ) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def add_commit_flags(parser: argparse.ArgumentParser) -> None:
    """The lifecycle commands' flags (lifecycle.change reads them)."""
    parser.add_argument("--no-commit", action="store_true", help="write the file only")
    parser.add_argument("--push", action="store_true", help="push the branch after committing")
