"""The daemon's Prometheus metrics, on a `CollectorRegistry` of its own (no global state).

Every label is low-cardinality by construction: a result, an action, a reason code, an AWS
operation and outcome, or a scope's (account, region). Never a resource name, never free text.
README.md ("Metrics reference") documents each metric; a test keeps the two in step, and a real
scrape is checked with `promtool check metrics`.

Counters count events (cycles, AWS calls, changes written). Gauges describe the last completed
cycle (resources discovered, withheld, skipped, conflicts): a change withheld for ten cycles is
one withheld change, not ten. A replica that is not the leader of its discovery group runs no
cycles, so it reports those gauges empty (0, no per-scope series): folded across replicas with
`max`, they are the leader's. What a cycle did comes from its one `CycleSummary`: nothing is
counted here.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    Metric,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from discovery import __version__
from discovery.core.plan import (
    REASON_CONFIG_CHANGE,
    REASON_CONFLICT,
    REASON_DUPLICATE,
    REASON_EMPTY_SCOPE,
    REASON_GUARD,
    REASON_NAME_COLLISION,
    REASON_POLICY,
    REASON_SCOPE_FAILED,
    REASON_UNCONFIRMED,
)
from discovery.core.summary import CycleSummary, ScopeSummary

CYCLE_RESULTS = ("ok", "partial", "error", "fenced")
# Results of a cycle that got its plan applied (or found nothing to apply).
SUCCESS_RESULTS = ("ok", "partial")
CHANGE_ACTIONS = ("create", "update", "delete")
WITHHELD_REASONS = (
    REASON_SCOPE_FAILED,
    REASON_CONFLICT,
    REASON_DUPLICATE,
    REASON_POLICY,
    REASON_GUARD,
    REASON_NAME_COLLISION,
    REASON_EMPTY_SCOPE,
    REASON_CONFIG_CHANGE,
    REASON_UNCONFIRMED,
)
AWS_OPERATIONS = (
    "AssumeRole",
    "GetCallerIdentity",
    "DescribeDBProxies",
    "DescribeDBProxyEndpoints",
    "GetResources",
    "ListTagsForResource",
)
AWS_OUTCOMES = ("ok", "error", "denied", "throttled", "not-found")
RELOAD_RESULTS = ("ok", "rejected")
UNKNOWN_ACCOUNT = "unknown"
# From a handful of proxies against a local emulator (~0.1 s) to thousands across dozens of
# accounts behind AWS throttling (minutes).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """All of the daemon's metrics, registered on `self.registry`."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        # The standard process_* (CPU, memory, fds), python_info and python_gc_* series, on our
        # own registry (the global default one is never exposed).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Info(
            "rdsproxy_discovery_build",
            "Version of the discovery service and of Python.",
            registry=r,
        )
        self.build_info.info({"version": __version__, "python": platform.python_version()})

        self.cycles = Counter(
            "rdsproxy_discovery_cycles",
            "Cycles run, by result: ok (every scope answered), partial (some scopes failed and "
            "were left frozen, the rest applied), error (stopped before the apply finished: "
            "registry unreachable, a concurrent writer, a bug; nothing written, or with the "
            "teleport backend, which has no transactions, part of it: see the log), fenced (this "
            "replica lost leadership during the cycle; stopped, nothing written).",
            ["result"],
            registry=r,
        )
        self.cycles_skipped = Counter(
            "rdsproxy_discovery_cycles_skipped",
            "Scheduled cycles skipped because the previous cycle was still running.",
            registry=r,
        )
        self.cycle_duration = Histogram(
            "rdsproxy_discovery_cycle_duration_seconds",
            "Wall time of a cycle, from the first AWS call to the end of the apply.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "rdsproxy_discovery_last_success_timestamp_seconds",
            "Unix time at which the last cycle with result ok or partial finished.",
            registry=r,
        )
        self.poll_interval = Gauge(
            "rdsproxy_discovery_poll_interval_seconds",
            "The configured poll_interval (jitter comes on top).",
            registry=r,
        )
        self.scope_up = Gauge(
            "rdsproxy_discovery_scope_up",
            "1 if every scope of this account and region answered in the last cycle, 0 if one "
            "failed (its resources are left frozen).",
            ["account", "region"],
            registry=r,
        )
        self.scope_last_success = Gauge(
            "rdsproxy_discovery_scope_last_success_timestamp_seconds",
            "Unix time of the last successful fetch of this account and region.",
            ["account", "region"],
            registry=r,
        )
        self.discovered = Gauge(
            "rdsproxy_discovery_resources_discovered",
            "Resources the last cycle discovered in this account and region (after filtering).",
            ["account", "region"],
            registry=r,
        )
        self.owned = Gauge(
            "rdsproxy_discovery_owned_resources",
            "Resources in the registry owned by this discovery group, after the last cycle.",
            registry=r,
        )
        self.changes_applied = Counter(
            "rdsproxy_discovery_changes_applied",
            "Changes written to the registry, by action (create, update, delete).",
            ["action"],
            registry=r,
        )
        self.changes_withheld = Gauge(
            "rdsproxy_discovery_changes_withheld",
            "Changes the last cycle held back, by reason code (scope-failed, conflict, "
            "duplicate, policy, delete-guard, name-collision, empty-scope, unconfirmed).",
            ["reason"],
            registry=r,
        )
        self.skipped = Gauge(
            "rdsproxy_discovery_skipped_items",
            "Proxies, endpoints and tags the last cycle skipped, by reason code.",
            ["reason"],
            registry=r,
        )
        self.conflicts = Gauge(
            "rdsproxy_discovery_conflicts",
            "Discovered names held in the registry by a resource we do not own (last cycle).",
            registry=r,
        )
        self.aws_calls = Counter(
            "rdsproxy_discovery_aws_calls",
            "AWS API calls, by operation and outcome (ok, error, denied, throttled, not-found), "
            "counted once per call after botocore's retries.",
            ["operation", "outcome"],
            registry=r,
        )
        self.aws_retries = Counter(
            "rdsproxy_discovery_aws_retries",
            "Retries botocore made inside AWS calls, by operation.",
            ["operation"],
            registry=r,
        )
        self.aws_throttled = Counter(
            "rdsproxy_discovery_aws_throttled",
            "AWS responses that were throttling errors, by operation; every attempt counts, "
            "including the ones botocore retried successfully.",
            ["operation"],
            registry=r,
        )
        self.registry_up = Gauge(
            "rdsproxy_discovery_registry_up",
            "1 if the last registry read or write succeeded, 0 if the registry was unreachable.",
            registry=r,
        )
        self.leader = Gauge(
            "rdsproxy_discovery_leader",
            "1 if this replica is the leader of its discovery group and runs the cycles, 0 if "
            "it follows (another replica holds the leader lock, or the lock cannot be reached).",
            registry=r,
        )
        self.config_reloads = Counter(
            "rdsproxy_discovery_config_reloads",
            "Config reloads on SIGHUP, by result (ok, rejected).",
            ["result"],
            registry=r,
        )
        # Every known label value starts at 0, so rate() and alerts see a series from the
        # first scrape rather than from the first event.
        for result in CYCLE_RESULTS:
            self.cycles.labels(result)
        for action in CHANGE_ACTIONS:
            self.changes_applied.labels(action)
        for reason in WITHHELD_REASONS:
            self.changes_withheld.labels(reason)
        for operation in AWS_OPERATIONS:
            self.aws_retries.labels(operation)
            self.aws_throttled.labels(operation)
            for outcome in AWS_OUTCOMES:
                self.aws_calls.labels(operation, outcome)
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result)
        self._skip_reasons: set[str] = set()
        self._withheld_reasons: set[str] = set(WITHHELD_REASONS)

    # --- AWS (called from the AWS source) ----------------------------------------------------

    def observe_call(self, operation: str, outcome: str, retries: int) -> None:
        self.aws_calls.labels(operation, outcome).inc()
        if retries > 0:
            self.aws_retries.labels(operation).inc(retries)

    def observe_throttle(self, operation: str) -> None:
        self.aws_throttled.labels(operation).inc()

    # --- cycles ------------------------------------------------------------------------------

    def observe_cycle(self, *, result: str, duration: float, finished_at: float) -> None:
        self.cycles.labels(result).inc()
        self.cycle_duration.observe(duration)
        if result in SUCCESS_RESULTS:
            self.last_success.set(finished_at)

    def observe_summary(self, summary: CycleSummary) -> None:
        """The last cycle's gauges, and the changes it wrote; plan gauges only if it planned."""
        self.observe_scopes(summary.scopes)
        if not summary.planned:
            return
        self.changes_applied.labels("create").inc(summary.created)
        self.changes_applied.labels("update").inc(summary.updated)
        self.changes_applied.labels("delete").inc(summary.deleted)
        self.owned.set(summary.owned)
        withheld = summary.withheld_by_reason
        self._withheld_reasons |= set(withheld)
        for reason in self._withheld_reasons:
            self.changes_withheld.labels(reason).set(withheld.get(reason, 0))
        self.conflicts.set(summary.conflicts)
        skipped = summary.skipped_by_reason
        self._skip_reasons |= set(skipped)
        for reason in self._skip_reasons:  # a reason that went away reads 0, not "no data"
            self.skipped.labels(reason).set(skipped.get(reason, 0))

    def observe_scopes(self, scopes: Sequence[ScopeSummary]) -> None:
        """Replace the per-scope series: scopes removed from the config disappear."""
        merged: dict[tuple[str, str], _ScopeSeries] = {}
        for scope in scopes:
            key = (scope.account_id or UNKNOWN_ACCOUNT, scope.region)
            seen = merged.get(key)
            if seen is None:
                merged[key] = _ScopeSeries(scope.ok, scope.resources, scope.last_success)
            else:  # several matchers on one account and region
                merged[key] = _ScopeSeries(
                    seen.up and scope.ok,
                    seen.resources + scope.resources,
                    _older(seen.last_success, scope.last_success),
                )
        for gauge in (self.scope_up, self.scope_last_success, self.discovered):
            gauge.clear()
        for (account, region), series in sorted(merged.items()):
            self.scope_up.labels(account, region).set(1 if series.up else 0)
            self.discovered.labels(account, region).set(series.resources)
            if series.last_success is not None:
                self.scope_last_success.labels(account, region).set(series.last_success)

    # --- the daemon --------------------------------------------------------------------------

    def observe_leadership(self, *, leading: bool) -> None:
        """The replica's role; a follower's last-cycle gauges read empty, not the stale ones.

        A replica that lost leadership would otherwise go on exporting its last cycle (a
        withheld delete, a scope down) next to the new leader's fresh values, and every
        `max without (instance)` alert would see the stale one.
        """
        self.leader.set(1 if leading else 0)
        if leading:
            return
        for gauge in (self.scope_up, self.scope_last_success, self.discovered):
            gauge.clear()
        self.owned.set(0)
        self.conflicts.set(0)
        for reason in self._withheld_reasons:
            self.changes_withheld.labels(reason).set(0)
        for reason in self._skip_reasons:
            self.skipped.labels(reason).set(0)

    def observe_reload(self, *, ok: bool) -> None:
        self.config_reloads.labels("ok" if ok else "rejected").inc()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape body and its content type, in the format the scraper asked for."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(_WithoutCreated(self.registry)), content_type


class _WithoutCreated(Collector):
    """The registry minus prometheus-client's `_created` samples.

    The text format turns them into a second series for every counter and histogram, holding a
    timestamp no alert or dashboard here reads. prometheus-client's own switch for this is
    process-wide; filtering here keeps it a property of this registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():  # fresh Metric objects on every collect
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class _ScopeSeries(NamedTuple):
    """One (account, region)'s series: several matchers on it are folded into one."""

    up: bool
    resources: int
    last_success: float | None


def _older(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else min(a, b)
