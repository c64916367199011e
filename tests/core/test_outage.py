"""The global-failure rule (core/outage.py): every scope failed, one kind, a setup kind."""

from __future__ import annotations

import pytest

from discovery.core.model import Scope, ScopeResult
from discovery.core.outage import GLOBAL_FIXES, global_failure


def failed(kind: str, region: str = "us-east-1") -> ScopeResult:
    scope = Scope(matcher_index=0, region=region)
    return ScopeResult(scope=scope, ok=False, error=f"{kind} error", error_kind=kind)


def ok(region: str = "us-east-1") -> ScopeResult:
    return ScopeResult(scope=Scope(matcher_index=0, region=region), ok=True)


@pytest.mark.parametrize(
    ("results", "kind"),
    [
        pytest.param([failed("no-credentials")], "no-credentials", id="one-scope-no-creds"),
        pytest.param(
            [failed("unreachable"), failed("unreachable", "eu-west-1")],
            "unreachable",
            id="all-unreachable",
        ),
        pytest.param(
            [failed("no-profile"), failed("no-profile", "eu-west-1")], "no-profile", id="profile"
        ),
        pytest.param([], "", id="no-scopes"),
        pytest.param([failed("unreachable"), ok("eu-west-1")], "", id="one-scope-ok"),
        pytest.param(
            [failed("unreachable"), failed("no-credentials", "eu-west-1")], "", id="mixed-kinds"
        ),
        pytest.param(
            [failed("denied"), failed("denied", "eu-west-1")], "", id="all-denied-is-per-scope"
        ),
        pytest.param([failed("throttled")], "", id="throttled-is-per-scope"),
    ],
)
def test_global_failure(results: list[ScopeResult], kind: str) -> None:
    line = global_failure(results)
    if not kind:
        assert line == ""
    else:
        assert line == f"{GLOBAL_FIXES[kind]} (first error: {kind} error)"
