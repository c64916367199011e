"""The new withheld codes (name-collision, empty-scope) reach the one `CycleSummary` by reason,
and so the daemon's log line, metrics and /status, which all render it."""

from __future__ import annotations

from discovery.core.plan import make_plan
from discovery.core.summary import CycleReport, summarize
from discovery.output.metrics import Metrics
from tests.core.test_plan import A1, A2, GROUP, R1, from_source, make_resource, ok_scope, stored

# Enough in A1 that 4 deletes stay under the guard's fraction.
STEADY = [make_resource(f"steady-{i:02d}") for i in range(20)]


def review_report() -> CycleReport:
    incumbent = from_source("taken", resource_id="prx-taken")
    newcomer = from_source("taken", account=A2, resource_id="prx-newcomer")
    empty_area = [stored(make_resource(f"gone-{i}", account=A2)) for i in range(4)]
    scopes = (ok_scope(R1, A1, [incumbent, *STEADY]), ok_scope(R1, A2, [newcomer]))
    current = [stored(incumbent), *map(stored, STEADY), *empty_area]
    plan = make_plan(scopes=scopes, current=current, discovery_group=GROUP)
    return CycleReport(discovery_group=GROUP, dry_run=True, plan=plan, scopes=scopes, applied=False)


def test_summary_counts_collisions_and_empty_scopes_by_reason() -> None:
    report = review_report()

    summary = summarize(report)

    assert report.plan.needs_review and not report.plan.guard_tripped
    assert summary.withheld_by_reason == {"name-collision": 1}
    assert summary.to_delete == 4  # A2 is not empty: the newcomer was found there


def test_an_empty_scope_and_a_collision_are_both_counted_in_the_metrics() -> None:
    incumbent = from_source("taken", resource_id="prx-taken")
    newcomer = from_source("taken", account=A1, resource_id="prx-newcomer")
    empty_area = [stored(make_resource(f"gone-{i}", account=A2)) for i in range(4)]
    scopes = (ok_scope(R1, A1, [incumbent, newcomer, *STEADY]), ok_scope(R1, A2, []))
    plan = make_plan(
        scopes=scopes,
        current=[stored(incumbent), *map(stored, STEADY), *empty_area],
        discovery_group=GROUP,
    )
    report = CycleReport(
        discovery_group=GROUP, dry_run=False, plan=plan, scopes=scopes, applied=False
    )
    metrics = Metrics()

    metrics.observe_summary(summarize(report))

    def withheld(reason: str) -> float | None:
        return metrics.registry.get_sample_value(
            "rdsproxy_discovery_changes_withheld", {"reason": reason}
        )

    assert withheld("name-collision") == 1
    assert withheld("empty-scope") == 4
    assert withheld("delete-guard") == 0
