"""The benchmark itself: a tiny fleet end to end (structure and call counts, never timings),
and the figures that follow from the fleet's shape alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import render_markdown
from bench.shape import (
    Shape,
    critical_path_calls,
    minimum_calls,
    peers_bound_calls,
    peers_calls,
    throttle_bound_s,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = Shape(accounts=2, regions=2, proxies=5, endpoints=1)
MEDIUM = Shape(accounts=10, regions=10, proxies=100, endpoints=1)


def test_the_medium_fleet_needs_410_calls_and_a_three_call_critical_path() -> None:
    assert MEDIUM.resources == 20_000
    assert minimum_calls(MEDIUM) == {
        "AssumeRole": 10,
        "DescribeDBProxies": 100,
        "DescribeDBProxyEndpoints": 200,  # 100 default + 100 custom endpoints: two pages
        "GetResources": 100,
    }
    # AssumeRole, the proxy page (an empty scope stops there), then two endpoint pages
    assert critical_path_calls(MEDIUM) == 4
    # peers: 20 rounds of 5 fetchers, each 1 + 100 + 2 calls in a row
    assert peers_bound_calls(MEDIUM) == 1 + 20 * 103
    assert peers_calls(MEDIUM)["ListTagsForResource"] == 10_000


def test_the_peers_pattern_caps_pages_at_ten() -> None:
    big = Shape(accounts=1, regions=1, proxies=1500, endpoints=0)
    assert minimum_calls(big)["DescribeDBProxies"] == 15
    assert peers_calls(big)["DescribeDBProxies"] == 10
    assert peers_calls(big)["ListTagsForResource"] == 1000  # what lies beyond is never seen


def test_the_token_buckets_bound_the_tag_fallback_of_a_big_region() -> None:
    assert throttle_bound_s(MEDIUM, burst=300, rate=12) == 0  # 4 calls per bucket
    big = Shape(accounts=1, regions=1, proxies=1000, endpoints=0)
    assert minimum_calls(big, tags_fallback=True)["ListTagsForResource"] == 1000
    # 10 proxy pages + 10 endpoint pages + 1000 tag calls in one bucket: 720 past the burst
    assert throttle_bound_s(big, burst=300, rate=12, tags_fallback=True) == 60.0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("bench") / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--accounts",
            str(TINY.accounts),
            "--regions",
            str(TINY.regions),
            "--proxies",
            str(TINY.proxies),
            "--endpoints",
            str(TINY.endpoints),
            "--latency-ms",
            "5",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| target | value | limit | met |" in done.stdout
    return dict(json.loads(out.read_text()))


def test_a_tiny_fleet_is_benchmarked_end_to_end(report: dict[str, object]) -> None:
    assert report["complete"] is True
    assert report["targets_apply"] is False  # they are set for the medium fleet
    assert report["fleet"] == {
        "shape": "2x2x5x1",
        "accounts": 2,
        "regions": 2,
        "proxies_per_region": 5,
        "endpoints_per_proxy": 1,
        "scopes": 4,
        "resources": 40,
    }
    cycles = report["cycles"]
    assert isinstance(cycles, dict)
    assert set(cycles) == {"first", "steady", "peers"}
    for figures in cycles.values():
        for key in ("wall_s", "cpu_s", "process_cpu_s", "peak_rss_mb", "emulator_cpu_s"):
            assert isinstance(figures[key], int | float) and figures[key] >= 0, key
        assert figures["resources"] == TINY.resources
        assert figures["failed_scopes"] == 0
        assert figures["throttled"] == 0


def test_our_cycles_make_exactly_the_minimum_calls(report: dict[str, object]) -> None:
    cycles = report["cycles"]
    assert isinstance(cycles, dict)
    for name in ("first", "steady"):
        assert cycles[name]["calls_by_operation"] == minimum_calls(TINY), name
        assert cycles[name]["requests"] == sum(minimum_calls(TINY).values())
        assert cycles[name]["call_ratio"] == 1.0
    assert cycles["peers"]["calls_by_operation"] == peers_calls(TINY)


def test_the_first_cycle_writes_everything_and_the_steady_one_nothing(
    report: dict[str, object],
) -> None:
    cycles = report["cycles"]
    assert isinstance(cycles, dict)
    assert cycles["first"]["registry_writes"] == TINY.resources
    assert cycles["first"]["plan"]["create"] == TINY.resources
    assert cycles["steady"]["registry_writes"] == 0
    assert cycles["steady"]["plan"]["unchanged"] == TINY.resources


def test_every_target_is_reported_with_a_verdict(report: dict[str, object]) -> None:
    targets = report["targets"]
    assert isinstance(targets, list)
    names = {t["target"] for t in targets}
    for cycle in ("first", "steady"):
        assert f"{cycle}: wall time (s)" in names
        assert f"{cycle}: API calls / minimum" in names
        assert f"{cycle}: peak RSS (MB)" in names
    assert "steady: registry writes" in names
    for target in targets:
        assert isinstance(target["met"], bool)
        assert target["met"] or target["miss"]  # a miss always says by how much
    by_name = {t["target"]: t for t in targets}
    assert by_name["steady: registry writes"]["met"] is True
    assert by_name["first: API calls / minimum"]["met"] is True
    markdown = render_markdown(report)
    assert "ours: first cycle" in markdown and "peers' pattern" in markdown
