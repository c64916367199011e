"""A one-line scope counter for a person watching a scan (`discovery scan`, the demo).

It is only shown on a terminal: a scan run from cron or captured by a test prints its result
and nothing else.
"""

from __future__ import annotations

from typing import TextIO

from discovery.core.model import ScopeResult

__all__ = ["Progress"]


class Progress:
    """A one-line scope counter on `stream`, only when it is a terminal and there are 2+ scopes."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.stream = stream
        self.enabled = stream.isatty() and total > 1

    def __call__(self, result: ScopeResult) -> None:
        self.done += 1
        self.failed += 0 if result.ok else 1
        if self.enabled:
            failed = f", {self.failed} failed" if self.failed else ""
            self.stream.write(f"\rscanning: {self.done}/{self.total} scopes{failed}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
