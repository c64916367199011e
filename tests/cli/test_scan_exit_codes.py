"""`scan`'s exit code from its report: 4 whenever a change waits for review, 3 still wins."""

from __future__ import annotations

import pytest

from discovery.cli.scan import exit_code_for
from discovery.core.model import Scope, ScopeResult
from discovery.core.plan import Plan, Withheld
from discovery.core.summary import CycleReport


def report(codes: tuple[str, ...], *, failed: bool = False, tripped: bool = False) -> CycleReport:
    plan = Plan(
        create=(),
        update=(),
        delete=(),
        unchanged=0,
        withheld=tuple(Withheld(name=c, action="delete", reason=c, code=c) for c in codes),
        owned=0,
        guard_tripped=tripped,
    )
    scope = ScopeResult(scope=Scope(matcher_index=0, region="us-east-1"), ok=not failed)
    return CycleReport(discovery_group="g", dry_run=True, plan=plan, scopes=(scope,), applied=False)


@pytest.mark.parametrize(
    ("codes", "failed", "tripped", "code"),
    [
        pytest.param((), False, False, 0, id="nothing-withheld"),
        pytest.param(("policy", "conflict", "duplicate"), False, False, 0, id="by-design"),
        pytest.param(("delete-guard",), False, True, 4, id="guard"),
        pytest.param(("name-collision",), False, False, 4, id="name-collision"),
        pytest.param(("empty-scope",), False, False, 4, id="empty-scope"),
        pytest.param(("empty-scope", "scope-failed"), True, False, 3, id="3-wins"),
    ],
)
def test_exit_code(codes: tuple[str, ...], failed: bool, tripped: bool, code: int) -> None:
    assert exit_code_for(report(codes, failed=failed, tripped=tripped)) == code
