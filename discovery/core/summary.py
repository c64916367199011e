"""What one cycle did, counted once: the `CycleReport` and the `CycleSummary` derived from it.

Every output of a cycle (scan's text, JSON and YAML, the daemon's log line, its metrics and
`/status`) renders the same `CycleSummary`, so that no two of them count the same thing their
own way and drift apart. Pure: no clock, no logging; the daemon passes in what it remembers
across cycles (accounts learnt, last successful fetch per scope) as plain mappings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from discovery.core.model import Scope, ScopeResult, Skipped
from discovery.core.plan import Plan

SCOPE_OK = "ok"
SCOPE_FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class CycleReport:
    """A cycle that got as far as its plan: the plan, whether it was applied, every scope."""

    discovery_group: str
    dry_run: bool
    plan: Plan
    scopes: tuple[ScopeResult, ...]
    applied: bool
    # Changes withheld because their confirming read failed or disagreed (core.confirm).
    unconfirmed: int = 0

    @property
    def failed_scopes(self) -> int:
        return sum(1 for s in self.scopes if not s.ok)


@dataclass(frozen=True, kw_only=True)
class ScopeSummary:
    """One scope as every output shows it (DESIGN §7's scope object, plus its last success)."""

    matcher: int
    region: str
    account_id: str  # "" when neither the role ARN nor AWS has told it yet
    assume_role_arn: str
    ok: bool
    error: str
    resources: int
    skipped: tuple[Skipped, ...]
    last_success: float | None  # when this scope was last fetched successfully, if known

    @property
    def status(self) -> str:
        return SCOPE_OK if self.ok else SCOPE_FAILED

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return count_codes(s.code for s in self.skipped)


@dataclass(frozen=True, kw_only=True)
class CycleSummary:
    """The counts of one cycle. `planned` is False when the cycle stopped before its plan:
    then only the scopes that answered are known, and every plan count reads 0."""

    scopes: tuple[ScopeSummary, ...]
    planned: bool
    dry_run: bool = False
    applied: bool = False
    # What the plan asked for, and what of it was written (0 unless applied).
    to_create: int = 0
    to_update: int = 0
    to_delete: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    withheld: int = 0
    conflicts: int = 0
    owned: int = 0  # owned by the discovery group after the cycle
    guard_tripped: bool = False
    withheld_by_reason: Mapping[str, int] = field(default_factory=dict)

    @property
    def scope_count(self) -> int:
        return len(self.scopes)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.scopes if not s.ok)

    @property
    def discovered(self) -> int:
        return sum(s.resources for s in self.scopes)

    @property
    def skipped(self) -> int:
        return sum(len(s.skipped) for s in self.scopes)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return count_codes(k.code for s in self.scopes for k in s.skipped)


def count_codes(codes: Iterable[str]) -> dict[str, int]:
    """How many times each reason code occurs, sorted by code."""
    counts: dict[str, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items()))


def summarize(
    report: CycleReport,
    *,
    accounts: Mapping[Scope, str] | None = None,
    last_success: Mapping[Scope, float] | None = None,
) -> CycleSummary:
    """The summary of a cycle that made its plan.

    `accounts`: the account of a scope when its result does not say it (learnt earlier);
    `last_success`: when each scope last answered.
    """
    plan = report.plan
    applied = report.applied
    return CycleSummary(
        scopes=summarize_scopes(report.scopes, accounts=accounts, last_success=last_success),
        planned=True,
        dry_run=report.dry_run,
        applied=applied,
        to_create=len(plan.create),
        to_update=len(plan.update),
        to_delete=len(plan.delete),
        created=len(plan.create) if applied else 0,
        updated=len(plan.update) if applied else 0,
        deleted=len(plan.delete) if applied else 0,
        unchanged=plan.unchanged,
        withheld=len(plan.withheld),
        conflicts=plan.conflicts,
        owned=plan.owned + len(plan.create) - len(plan.delete) if applied else plan.owned,
        guard_tripped=plan.guard_tripped,
        withheld_by_reason=count_codes(w.code for w in plan.withheld),
    )


def summarize_unfinished(
    results: Iterable[ScopeResult],
    *,
    order: Sequence[Scope],
    accounts: Mapping[Scope, str] | None = None,
    last_success: Mapping[Scope, float] | None = None,
) -> CycleSummary:
    """The summary of a cycle that stopped before its plan: the scopes that answered, in
    config order (`order`), and no plan counts."""
    rank = {scope: i for i, scope in enumerate(order)}
    ordered = sorted(results, key=lambda r: rank.get(r.scope, len(rank)))
    return CycleSummary(
        scopes=summarize_scopes(ordered, accounts=accounts, last_success=last_success),
        planned=False,
    )


def summarize_scopes(
    results: Iterable[ScopeResult],
    *,
    accounts: Mapping[Scope, str] | None = None,
    last_success: Mapping[Scope, float] | None = None,
) -> tuple[ScopeSummary, ...]:
    known = accounts or {}
    success = last_success or {}
    return tuple(
        ScopeSummary(
            matcher=r.scope.matcher_index,
            region=r.scope.region,
            account_id=r.account_id or known.get(r.scope, ""),
            assume_role_arn=r.scope.assume_role_arn,
            ok=r.ok,
            error=r.error,
            resources=len(r.resources),
            skipped=r.skipped,
            last_success=success.get(r.scope),
        )
        for r in results
    )
