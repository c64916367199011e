"""`discovery scan` at scale, end to end: what an empty scope costs, and a slow scope's deadline.

The CLI in a subprocess, the emulator over HTTP (its own call and connection counters), real
SQLite (issue 14, "cost per scope that stays flat").
"""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.cli.conftest import ACCOUNT_A, ACCOUNT_B, REGIONS, Harness, base_config, proxy

EXIT_OK, EXIT_SCOPES_FAILED = 0, 3
EMPTY_REGIONS = ("ap-south-1", "sa-east-1", "eu-north-1")


def by_region(harness: Harness) -> dict[str, dict[str, int]]:
    """Calls the emulator answered, by region then operation."""
    out: dict[str, dict[str, int]] = {}
    for row in harness.emulator.stats()["calls"]:
        ops = out.setdefault(row["region"], {})
        ops[row["operation"]] = ops.get(row["operation"], 0) + row["count"]
    return out


def every_region(config: dict[str, Any]) -> dict[str, Any]:
    for matcher in config["aws"]:
        matcher["regions"] = [*REGIONS, *EMPTY_REGIONS]
    return config


def test_an_empty_scope_costs_one_request(harness: Harness) -> None:
    config = harness.write_config(every_region(base_config()))
    harness.emulator.reset_stats()

    result = harness.scan(config)

    assert result.code == EXIT_OK, result.stderr
    assert len(harness.registry(config)) == 16
    calls = by_region(harness)
    for region in EMPTY_REGIONS:  # two accounts each: one DescribeDBProxies page per scope
        assert calls[region] == {"DescribeDBProxies": 2}, region
    assert calls["us-east-1"].pop("AssumeRole") == 2  # STS is asked in the home region
    for region in REGIONS:  # the scopes that hold proxies read everything, as before
        assert calls[region] == {
            "DescribeDBProxies": 2,
            "DescribeDBProxyEndpoints": 2,
            "GetResources": 2,
        }, region
    stats = harness.emulator.stats()
    assert stats["by_operation"]["AssumeRole"]["ok"] == 2  # one per role, all regions
    assert stats["total"] == 2 + 5 * 2 + 2 * 2 * 2  # roles, every scope, full scopes


def test_connections_are_reused_across_accounts(harness: Harness) -> None:
    fleet = copy.deepcopy(harness.fleet)
    accounts = fleet["accounts"]
    template = accounts[0]
    matchers = []
    for n in range(12):  # 12 more accounts, 2 regions each, one proxy per region
        account = f"{333333333300 + n:012d}"
        regions = {r: {"proxies": [proxy(f"p{n}-{r}")]} for r in REGIONS}
        accounts.append({**copy.deepcopy(template), "id": account, "regions": regions})
        matchers.append(
            {
                "types": ["rdsproxy"],
                "regions": list(REGIONS),
                "assume_role_arn": f"arn:aws:iam::{account}:role/discovery",
            }
        )
    harness.update_fleet(fleet)
    config = base_config()
    config["aws"] += matchers
    config["aws_client"] = {"max_concurrency": 4, "max_concurrency_per_account_region": 2}
    path = harness.write_config(config)
    harness.emulator.reset_stats()

    result = harness.scan(path)

    assert result.code == EXIT_OK, result.stderr
    stats = harness.emulator.stats()
    assert stats["total"] == 14 + 28 * 3  # AssumeRole per account, 3 calls per scope
    # One keep-alive pool per (service, region), at most 4 calls in flight: a client per
    # (account, region, service) would have opened one connection per client, 14 x 2 x 2 + 1.
    assert stats["connections"] <= 4 * 5, stats["connections"]


def test_a_slow_scope_is_failed_at_the_deadline_and_the_others_apply(harness: Harness) -> None:
    config = base_config()
    config["aws_client"] = {"scope_deadline": "1s"}
    path = harness.write_config(config)
    assert harness.scan(path).code == EXIT_OK
    before = harness.registry(path)
    fleet = copy.deepcopy(harness.fleet)
    new = proxy("b-east-new", endpoints=[])
    fleet["accounts"][1]["regions"]["us-east-1"]["proxies"].append(new)
    fleet["accounts"][0]["regions"]["eu-west-1"]["proxies"] = []  # would be deletes...
    harness.update_fleet(fleet)
    harness.emulator.set_faults(  # ...but A's eu-west-1 answers too late
        [
            {
                "account": ACCOUNT_A,
                "region": "eu-west-1",
                "operation": "DescribeDBProxies",
                "code": "Timeout",
                "delay_seconds": 12,
            }
        ]
    )

    started = time.monotonic()
    result = harness.scan(path)
    took = time.monotonic() - started

    assert result.code == EXIT_SCOPES_FAILED, result.stderr
    doc = result.json()
    failed = [s for s in doc["scopes"] if s["status"] != "ok"]
    assert [(s["account_id"], s["region"]) for s in failed] == [(ACCOUNT_A, "eu-west-1")]
    assert "aws_client.scope_deadline (1s)" in failed[0]["error"]
    assert [r["metadata"]["name"] for r in doc["plan"]["create"]] == [
        f"b-east-new-rdsproxy-us-east-1-{ACCOUNT_B}"
    ]
    assert doc["plan"]["delete"] == []
    assert took < 12  # the scan did not wait for the 12 s answer
    after = harness.registry(path)
    assert set(after) == set(before) | {f"b-east-new-rdsproxy-us-east-1-{ACCOUNT_B}"}
