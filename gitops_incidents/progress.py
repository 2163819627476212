"""Progress on stderr for long work, only when a person is watching (a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, what: str, stream: TextIO | None = None, every: float = 0.2) -> None:
        self.what, self.stream, self.every = what, stream or sys.stderr, every
        self.live = self.stream.isatty()
        self.count = 0
        self.started = self.shown = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.count += count
        if self.live and (now := time.monotonic()) - self.shown >= self.every:
            self.shown = now
            rate = self.count / max(now - self.started, 1e-9)
            self.stream.write(f"\r{self.what}: {self.count} commits ({rate:,.0f}/s)\x1b[K")
            self.stream.flush()

    def note(self, line: str) -> None:
        """A line for the reader, printed above the progress line."""
        self.stream.write(f"\r\x1b[K{line}\n" if self.live else f"{line}\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live and self.count:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
