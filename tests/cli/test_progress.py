"""The scope counter shows on a terminal only."""

from __future__ import annotations

import io

from discovery.core.model import Scope, ScopeResult
from discovery.output.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def result(ok: bool) -> ScopeResult:
    return ScopeResult(scope=Scope(matcher_index=0, region="us-east-1"), ok=ok)


def test_progress_counts_scopes_on_a_terminal() -> None:
    stream = Terminal()
    progress = Progress(3, stream)
    for ok in (True, False, True):
        progress(result(ok))
    text = stream.getvalue()
    assert "\rscanning: 1/3 scopes" in text
    assert "\rscanning: 2/3 scopes, 1 failed" in text
    assert text.endswith("\rscanning: 3/3 scopes, 1 failed\n")


def test_progress_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(3, stream)
    progress(result(True))
    assert stream.getvalue() == ""
