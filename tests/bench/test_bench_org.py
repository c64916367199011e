"""The org shape (`python -m bench --shape org`): a tiny organization end to end (structure and
call counts, never timings), and the figures that follow from the shape alone (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.org import (
    ORG_ID,
    OUS,
    OrgShape,
    org_config,
    org_fleet,
    org_listing_calls,
    org_minimum_calls,
    org_resources,
)
from bench.org_run import render_org

ROOT = Path(__file__).resolve().parents[2]
TINY = OrgShape(accounts=6, regions=3, populated=0.34)


def test_the_org_shape_is_17000_scopes_5_percent_populated() -> None:
    org = OrgShape()
    assert org.scopes == 17_000
    layout = org.layout()
    assert len(layout) == 850
    assert set(layout.values()) <= set(range(1, 9)) and len(set(layout.values())) == 8
    assert layout == OrgShape().layout()  # deterministic
    assert org_minimum_calls(org, listings=False) == {
        "AssumeRole": 1000,  # amortized: one per account for all 17 regions
        "DescribeDBProxies": 17_000,  # one page per scope, empty or not
        "DescribeDBProxyEndpoints": 850,
        "GetResources": 850,
    }
    # The organization listing: 334/333/333 accounts in the 3 OUs, 20 a page; none at the root.
    assert org_listing_calls(org) == {
        "DescribeOrganization": 1,
        "ListRoots": 1,
        "ListOrganizationalUnitsForParent": 4,
        "ListAccountsForParent": 1 + 17 + 17 + 17,
        "ListRegions": 1000,
    }
    config = org_config(org, "registry.db")
    assert config["aws"] == [
        {
            "types": ["rdsproxy"],
            "regions": ["*"],
            "organization": {"id": ORG_ID},
            "assume_role_name": "discovery",
        }
    ]
    explicit = org_config(org, "registry.db", explicit=True)
    assert len(explicit["aws"]) == 1000
    assert all(len(m["regions"]) == 17 for m in explicit["aws"])
    fleet = org_fleet(org)
    assert {ou["id"] for ou in fleet["organization"]["ous"]} == set(OUS)
    assert {a["ou"] for a in fleet["accounts"]} == set(OUS)
    assert all(len(a["enabled_regions"]) == 17 for a in fleet["accounts"])
    listed = sum(len(a["regions"]) for a in fleet["accounts"])
    assert listed == 850  # only populated regions are in the fleet; the others answer empty
    proxies = [p for a in fleet["accounts"] for r in a["regions"].values() for p in r["proxies"]]
    assert any(p.get("endpoints") for p in proxies)  # some custom endpoints
    assert org_resources(org) == len(proxies) + sum(len(p.get("endpoints", [])) for p in proxies)


def _run(tmp: Path, shape: str) -> dict[str, object]:
    out = tmp / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--shape",
            shape,
            "--accounts",
            str(TINY.accounts),
            "--regions",
            str(TINY.regions),
            "--populated",
            str(TINY.populated),
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


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return _run(tmp_path_factory.mktemp("bench-org"), "org")


def test_a_tiny_org_is_benchmarked_end_to_end_with_the_minimum_calls(
    report: dict[str, object],
) -> None:
    assert report["complete"] is True
    rows = report["rows"]
    assert isinstance(rows, dict)
    assert set(rows) == {"first", "daemon", "boto3"}
    minimum = org_minimum_calls(TINY)  # the Organizations and ListRegions listings included
    assert minimum["ListAccountsForParent"] == 4 and minimum["ListRegions"] == TINY.accounts
    assert rows["first"]["api_calls"] == sum(minimum.values())
    # The daemon's steady cycle reuses its credentials and its cached listings: no AssumeRole,
    # no Organizations or ListRegions call at all.
    steady = sum(org_minimum_calls(TINY, listings=False).values()) - TINY.accounts
    assert rows["daemon"]["api_calls_per_cycle"] == steady
    assert report["minimum_calls"]["steady_total"] == steady  # type: ignore[index]
    for name in ("first", "daemon"):
        assert rows[name]["throttled"] == 0
    assert rows["first"]["by_operation"] == minimum  # an empty scope: one call
    for name, row in rows.items():
        assert row["resources"] == org_resources(TINY), name
        assert row["failed_scopes"] == 0
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "emulator_cpu_s", "connections", "gc_s"):
            assert isinstance(row[key], int | float) and row[key] >= 0, (name, key)
    # The baseline already skips empty scopes' other calls, but tags each proxy separately; it
    # finds the accounts and regions through the same listings.
    # Ours run with the `discovery` command's collector thresholds: no full collection.
    for name in ("first", "daemon"):
        assert rows[name]["gc_collections"][2] == 0, rows[name]["gc_collections"]
    baseline = rows["boto3"]["by_operation"]
    assert baseline["DescribeDBProxies"] == TINY.scopes
    assert baseline["ListRegions"] == TINY.accounts
    assert baseline["ListAccountsForParent"] == minimum["ListAccountsForParent"]


def test_every_org_target_is_reported(report: dict[str, object]) -> None:
    targets = report["targets"]
    assert isinstance(targets, list)
    names = {t["target"] for t in targets}
    assert {
        "scan wall (s)",
        "scan CPU per scope (ms)",
        "scan peak RSS (MB)",
        "scan calls / minimum",
        "daemon steady wall (s)",
        "daemon peak RSS (MB)",
        "daemon steady calls / minimum",
        "speed-up vs threaded boto3 (x)",
    } <= names
    by_name = {t["target"]: t for t in targets}
    assert by_name["scan calls / minimum"]["met"] is True
    assert by_name["daemon steady calls / minimum"]["met"] is True
    assert "| target | value | limit | met |" in render_org(report)


def test_the_explicit_variant_scans_the_same_scopes_without_listings(tmp_path: Path) -> None:
    report = _run(tmp_path, "org-explicit")
    assert report["complete"] is True and report["listings"] is False
    rows = report["rows"]
    assert isinstance(rows, dict)
    assert rows["first"]["by_operation"] == org_minimum_calls(TINY, listings=False)
    assert rows["first"]["resources"] == org_resources(TINY)
