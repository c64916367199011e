"""The progress display of a scan, for a person watching it (`discovery scan`, the demo).

It is only shown on a terminal: a scan run from cron or captured by a test prints its result
and nothing else. On a terminal it is one live line (rich), redrawn a few times a second and
removed when the scan ends: scopes done of the total, failures, elapsed time, and the scopes
that have been running longest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from discovery.core.model import Scope, ScopeResult

__all__ = ["Progress", "progress_text"]

SHOWN_RUNNING = 3


def _label(scope: Scope) -> str:
    return f"{scope.role_account_id or 'default'}/{scope.region}"


def progress_text(
    *,
    done: int,
    total: int | None,
    failed: int,
    elapsed: float,
    running: Sequence[tuple[str, float]],
) -> Text:
    """`scanning: 12/48 scopes, 1 failed, 3.2s — slowest running: 1111…/us-east-1 3.1s, …`.

    `total` None: the scopes are expanded from AWS's listings during the scan (`N/?`)."""
    text = Text(f"scanning: {done}/{'?' if total is None else total} scopes")
    if failed:
        text.append(f", {failed} failed", style="bold red")
    text.append(f", {elapsed:.1f}s")
    if running:
        slowest = ", ".join(f"{label} {seconds:.1f}s" for label, seconds in running)
        text.append(f" — slowest running: {slowest}", style="dim")
    return text


class Progress:
    """Counts finished scopes; a live line on `stream` only when it is a terminal (2+ scopes).

    Use it as a context manager around the scan, and as the cycle's `on_scope` callback.
    """

    def __init__(
        self,
        scopes: Sequence[Scope],
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        console: Console | None = None,
        open_ended: bool = False,
    ) -> None:
        self.total = len(scopes)
        self.open_ended = open_ended
        self.done = 0
        self.failed = 0
        self._clock = clock
        self._started = clock()
        # Every scope starts when the cycle does (they run side by side), so the ones still
        # pending are the ones running longest.
        self._pending: dict[Scope, float] = dict.fromkeys(scopes, self._started)
        self.enabled = stream.isatty() and (open_ended or self.total > 1)
        self._console = console or Console(file=stream, stderr=False)
        self._live: Live | None = None

    def render(self) -> Text:
        now = self._clock()
        running = [
            (_label(scope), now - since)
            for scope, since in list(self._pending.items())[:SHOWN_RUNNING]
        ]
        return progress_text(
            done=self.done,
            total=None if self.open_ended else self.total,
            failed=self.failed,
            elapsed=now - self._started,
            running=running,
        )

    def __enter__(self) -> Progress:
        self._started = self._clock()
        self._pending = dict.fromkeys(self._pending, self._started)
        if self.enabled:
            self._live = Live(
                get_renderable=self.render,
                console=self._console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self.enabled and self.done:
            # What the live line said last stays on screen as one plain line.
            self._console.print(self.render().plain.split(" — ")[0])

    def __call__(self, result: ScopeResult) -> None:
        if self._pending.pop(result.scope, None) is None:
            self.total += 1  # a scope expanded from a listing during the cycle
        self.done += 1
        self.failed += 0 if result.ok else 1
