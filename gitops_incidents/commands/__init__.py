"""One module per subcommand, each with `add_parser` and `run`."""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class Command(Protocol):
    def add_parser(self, subparsers: Any, name: str, common: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...
