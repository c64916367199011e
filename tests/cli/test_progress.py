"""The progress display shows on a terminal only: counts, elapsed time, the slowest scopes."""

from __future__ import annotations

import io
import re

from rich.console import Console

from discovery.core.model import Scope, ScopeResult
from discovery.output.progress import Progress, progress_text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def scopes() -> list[Scope]:
    return [
        Scope(matcher_index=0, region=region, assume_role_arn=f"arn:aws:iam::{n}:role/d")
        for n, region in (
            ("111111111111", "us-east-1"),
            ("111111111111", "eu-west-1"),
            ("222222222222", "us-east-1"),
        )
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_counts_scopes_failures_elapsed_and_names_the_slowest_running() -> None:
    clock = Clock()
    all_scopes = scopes()
    progress = Progress(all_scopes, Terminal(), clock=clock)
    clock.now += 1.5
    progress(ScopeResult(scope=all_scopes[1], ok=False))
    text = progress.render().plain
    assert text == (
        "scanning: 1/3 scopes, 1 failed, 1.5s — slowest running: "
        "111111111111/us-east-1 1.5s, 222222222222/us-east-1 1.5s"
    )


def test_on_a_terminal_the_live_line_ends_as_one_plain_summary_line() -> None:
    stream = Terminal()
    console = Console(file=stream, force_terminal=True, width=100, color_system=None)
    all_scopes = scopes()
    with Progress(all_scopes, stream, console=console) as progress:
        for scope, ok in zip(all_scopes, (True, False, True), strict=True):
            progress(ScopeResult(scope=scope, ok=ok))
    # What stays on screen once the terminal has applied the cursor moves and line erases.
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue().rstrip("\n").splitlines()[-1])
    assert last.startswith("scanning: 3/3 scopes, 1 failed, ")
    assert "slowest running" not in last


def test_a_scope_expanded_during_the_scan_counts_towards_an_open_total() -> None:
    progress = Progress((), Terminal(), open_ended=True)
    progress(ScopeResult(scope=scopes()[0], ok=True))
    assert progress.enabled
    assert progress.render().plain.startswith("scanning: 1/? scopes")


def test_progress_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    all_scopes = scopes()
    with Progress(all_scopes, stream) as progress:
        progress(ScopeResult(scope=all_scopes[0], ok=True))
    assert stream.getvalue() == ""


def test_progress_text_without_failures_or_running_scopes() -> None:
    text = progress_text(done=3, total=3, failed=0, elapsed=2.0, running=())
    assert text.plain == "scanning: 3/3 scopes, 2.0s"
