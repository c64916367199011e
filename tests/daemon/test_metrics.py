"""The metrics: documented in the README, valid for promtool, low-cardinality, honest gauges."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from discovery.core.model import AWSInfo, Resource, Skipped, StoredResource
from discovery.core.plan import Plan, Withheld
from discovery.core.summary import CycleReport, CycleSummary, ScopeSummary, summarize
from discovery.output.metrics import Metrics
from tests.tools import ROOT, promtool


def resource(name: str) -> Resource:
    return Resource(
        name=name,
        description="",
        labels={},
        protocol="postgres",
        uri="h:5432",
        aws=AWSInfo(
            region="us-east-1",
            account_id="111111111111",
            rdsproxy_name=name,
            rdsproxy_resource_id="",
        ),
    )


def a_plan(**overrides: object) -> Plan:
    values: dict[str, object] = {
        "create": (resource("new"),),
        "update": (),
        "delete": (StoredResource(resource=resource("old"), revision=3),),
        "unchanged": 5,
        "withheld": (
            Withheld(name="x", action="create", reason="held by someone else", code="conflict"),
            Withheld(name="y", action="delete", reason="guard", code="delete-guard"),
            Withheld(name="z", action="delete", reason="guard", code="delete-guard"),
        ),
        "owned": 10,
        "guard_tripped": True,
    }
    values.update(overrides)
    return Plan(**values)  # type: ignore[arg-type]


def a_scope(
    account: str,
    region: str,
    *,
    up: bool,
    resources: int,
    last_success: float | None,
    skipped_codes: tuple[str, ...] = (),
) -> ScopeSummary:
    return ScopeSummary(
        matcher=0,
        region=region,
        account_id=account,
        assume_role_arn="",
        ok=up,
        error="",
        resources=resources,
        skipped=tuple(
            Skipped(name=f"s{i}", reason="", code=c) for i, c in enumerate(skipped_codes)
        ),
        last_success=last_success,
    )


def a_cycle(plan: Plan, *, applied: bool, scopes: list[ScopeSummary]) -> CycleSummary:
    report = CycleReport(
        discovery_group="unit", dry_run=False, plan=plan, scopes=(), applied=applied
    )
    return replace(summarize(report), scopes=tuple(scopes))


def populated() -> Metrics:
    metrics = Metrics()
    metrics.observe_call("DescribeDBProxies", "ok", 2)
    metrics.observe_call("AssumeRole", "denied", 0)
    metrics.observe_throttle("DescribeDBProxies")
    metrics.observe_cycle(result="partial", duration=1.5, finished_at=1_700_000_000.0)
    metrics.cycles_skipped.inc()
    metrics.observe_reload(ok=False)
    metrics.registry_up.set(1)
    scopes = [
        a_scope(
            "111111111111",
            "us-east-1",
            up=True,
            resources=4,
            last_success=1.0,
            skipped_codes=("tls-disabled", "tls-disabled"),
        ),
        a_scope("", "eu-west-1", up=False, resources=0, last_success=None),
    ]
    # Applied: 10 owned before, one created and one deleted, 10 after.
    metrics.observe_summary(a_cycle(a_plan(), applied=True, scopes=scopes))
    return metrics


def exposition(metrics: Metrics) -> str:
    body, content_type = metrics.exposition(None)
    assert content_type.startswith("text/plain")
    return body.decode()


def test_every_metric_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    parts = readme.split("\n## Metrics reference\n", 1)
    assert len(parts) == 2, "README.md has no '## Metrics reference' section"
    section = parts[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(rdsproxy_discovery_[a-z_]+)` \|", section, re.MULTILINE))
    names = {  # our names a scrape shows: counters with their _total
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in text_string_to_metric_families(exposition(Metrics()))
        if family.name.startswith("rdsproxy_discovery_")
    }
    assert len(names) > 10
    missing = sorted(n for n in names if n not in documented)
    assert not missing, f"not documented in README.md's Metrics reference: {missing}"
    stale = sorted(n for n in documented if n not in names)
    assert not stale, f"documented but not exposed: {stale}"


def test_our_names_have_the_project_prefix_and_the_standard_collectors_are_there() -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition(Metrics()))}
    ours = [n for n in families if not n.startswith(("process_", "python_"))]
    assert ours and all(n.startswith("rdsproxy_discovery_") for n in ours), ours
    for standard in ("process_resident_memory_bytes", "process_open_fds", "python_info"):
        assert standard in families, standard
    assert "python_gc_objects_collected" in families
    assert "`process_*`" in (ROOT / "README.md").read_text()


def test_exposition_passes_promtool_with_every_series_populated() -> None:
    text = exposition(populated())
    checked = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""


def test_the_last_cycle_sets_the_gauges() -> None:
    metrics = populated()
    value = metrics.registry.get_sample_value
    assert value("rdsproxy_discovery_changes_applied_total", {"action": "create"}) == 1
    assert value("rdsproxy_discovery_changes_applied_total", {"action": "delete"}) == 1
    assert value("rdsproxy_discovery_changes_withheld", {"reason": "delete-guard"}) == 2
    assert value("rdsproxy_discovery_changes_withheld", {"reason": "scope-failed"}) == 0
    assert value("rdsproxy_discovery_conflicts") == 1
    assert value("rdsproxy_discovery_owned_resources") == 10
    assert value("rdsproxy_discovery_skipped_items", {"reason": "tls-disabled"}) == 2
    assert value("rdsproxy_discovery_last_success_timestamp_seconds") == 1_700_000_000.0
    assert value("rdsproxy_discovery_scope_up", {"account": "unknown", "region": "eu-west-1"}) == 0
    assert value("rdsproxy_discovery_aws_retries_total", {"operation": "DescribeDBProxies"}) == 2

    # The next cycle: nothing withheld, the skipped reason is gone (0, not missing), an error
    # cycle does not move the last-success time.
    quiet = a_plan(withheld=(), create=(), delete=())
    metrics.observe_summary(a_cycle(quiet, applied=False, scopes=[]))
    metrics.observe_cycle(result="error", duration=0.1, finished_at=1_800_000_000.0)
    assert value("rdsproxy_discovery_changes_withheld", {"reason": "delete-guard"}) == 0
    assert value("rdsproxy_discovery_skipped_items", {"reason": "tls-disabled"}) == 0
    assert value("rdsproxy_discovery_last_success_timestamp_seconds") == 1_700_000_000.0
    assert value("rdsproxy_discovery_changes_applied_total", {"action": "create"}) == 1


def test_a_follower_exports_no_last_cycle_values_and_keeps_its_counters() -> None:
    metrics = populated()  # the leader's last cycle: a withheld delete, a scope down, ...
    metrics.observe_leadership(leading=True)
    value = metrics.registry.get_sample_value
    assert value("rdsproxy_discovery_leader") == 1
    assert value("rdsproxy_discovery_changes_withheld", {"reason": "delete-guard"}) == 2

    metrics.observe_leadership(leading=False)  # lost the leadership: another replica leads
    assert value("rdsproxy_discovery_leader") == 0
    for reason in ("delete-guard", "conflict", "scope-failed"):
        assert value("rdsproxy_discovery_changes_withheld", {"reason": reason}) == 0
    assert value("rdsproxy_discovery_skipped_items", {"reason": "tls-disabled"}) == 0
    assert value("rdsproxy_discovery_owned_resources") == 0
    assert value("rdsproxy_discovery_conflicts") == 0
    assert (
        value("rdsproxy_discovery_scope_up", {"account": "unknown", "region": "eu-west-1"}) is None
    )
    assert (
        value(
            "rdsproxy_discovery_resources_discovered",
            {"account": "111111111111", "region": "us-east-1"},
        )
        is None
    )
    # What happened stays counted, and when the last success was stays known.
    assert value("rdsproxy_discovery_changes_applied_total", {"action": "create"}) == 1
    assert value("rdsproxy_discovery_cycles_total", {"result": "partial"}) == 1
    assert value("rdsproxy_discovery_last_success_timestamp_seconds") == 1_700_000_000.0

    # A fenced cycle counts, but is no success.
    metrics.observe_cycle(result="fenced", duration=0.2, finished_at=1_900_000_000.0)
    assert value("rdsproxy_discovery_cycles_total", {"result": "fenced"}) == 1
    assert value("rdsproxy_discovery_last_success_timestamp_seconds") == 1_700_000_000.0


def test_scope_series_follow_the_config_and_merge_matchers() -> None:
    metrics = Metrics()
    metrics.observe_scopes(
        [
            a_scope("1", "r1", up=True, resources=2, last_success=10.0),
            a_scope("1", "r1", up=False, resources=3, last_success=5.0),
            a_scope("1", "r2", up=True, resources=1, last_success=10.0),
        ]
    )
    value = metrics.registry.get_sample_value
    assert value("rdsproxy_discovery_scope_up", {"account": "1", "region": "r1"}) == 0
    assert value("rdsproxy_discovery_resources_discovered", {"account": "1", "region": "r1"}) == 5
    assert (
        value(
            "rdsproxy_discovery_scope_last_success_timestamp_seconds",
            {"account": "1", "region": "r1"},
        )
        == 5.0
    )
    # r2 removed from the config: its series go away rather than freeze at their last value.
    metrics.observe_scopes([a_scope("1", "r1", up=True, resources=2, last_success=20.0)])
    assert value("rdsproxy_discovery_scope_up", {"account": "1", "region": "r2"}) is None
    assert value("rdsproxy_discovery_scope_up", {"account": "1", "region": "r1"}) == 1


def test_openmetrics_on_request() -> None:
    body, content_type = Metrics().exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")


def test_metrics_are_per_instance() -> None:
    one, two = Metrics(), Metrics()
    one.cycles_skipped.inc()
    assert two.registry.get_sample_value("rdsproxy_discovery_cycles_skipped_total") == 0
