"""The fault matrix, AWS side: `discovery scan` (the CLI's main, in-process) against a faulty
emulator.

Each test is one row of docs/RELIABILITY.md: the cycle's result (exit code, failed scopes and
their error), the registry afterwards (`World.cycle` checks the invariants), and recovery on the
next good cycle (`World.recover`: exactly the desired state).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.support import (
    ACCOUNT_A,
    ACCOUNT_B,
    AREAS,
    CALLER,
    EAST,
    EXIT_OK,
    EXIT_SCOPES_FAILED,
    WEST,
    World,
    make_fleet,
)


def fault(operation: str, code: str, **where: Any) -> dict[str, Any]:
    return {"operation": operation, "code": code, **where}


def calls(world: World) -> dict[str, dict[str, int]]:
    return dict(world.emulator.stats()["by_operation"])


# --- AccessDenied on each AWS operation ---------------------------------------------------------


def test_assume_role_denied_freezes_that_accounts_scopes(world: World) -> None:
    world.set_faults([fault("AssumeRole", "AccessDenied", account=ACCOUNT_B)])
    result = world.cycle(code=EXIT_SCOPES_FAILED, frozen={(ACCOUNT_B, EAST), (ACCOUNT_B, WEST)})
    assert all("sts:AssumeRole" in e and "trust policy" in e for e in result.errors())
    world.recover()


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("DescribeDBProxies", "rds:DescribeDBProxies"),
        ("DescribeDBProxyEndpoints", "rds:DescribeDBProxyEndpoints"),
    ],
)
def test_rds_call_denied_freezes_that_scope(world: World, operation: str, action: str) -> None:
    world.set_faults([fault(operation, "AccessDenied", account=ACCOUNT_A, region=WEST)])
    result = world.cycle(code=EXIT_SCOPES_FAILED, frozen={(ACCOUNT_A, WEST)})
    assert [f"grant {action}" in e for e in result.errors()] == [True]
    world.recover()


def test_get_resources_denied_falls_back_to_list_tags(world: World) -> None:
    world.set_faults([fault("GetResources", "AccessDeniedException", status=400)])
    world.emulator.reset_stats()
    world.cycle(code=EXIT_OK, frozen=set())
    stats = calls(world)
    assert stats["GetResources"]["error"] == len(AREAS)
    assert stats["ListTagsForResource"]["ok"] == 3 * len(AREAS)  # one per proxy
    world.recover()


def test_get_resources_and_list_tags_denied_freezes_the_scope(world: World) -> None:
    world.set_faults(
        [
            fault("GetResources", "AccessDeniedException", status=400, account=ACCOUNT_B),
            fault("ListTagsForResource", "AccessDenied", account=ACCOUNT_B, region=EAST),
        ]
    )
    result = world.cycle(code=EXIT_SCOPES_FAILED, frozen={(ACCOUNT_B, EAST)})
    assert ["rds:ListTagsForResource" in e for e in result.errors()] == [True]
    world.recover()


def test_unknown_account_freezes_the_whole_region(world: World) -> None:
    """Base credentials: STS GetCallerIdentity and DescribeDBProxies both denied, so nothing
    says which account the scope is in: every account's resources in that region are frozen."""
    world.set_faults(
        [
            fault("GetCallerIdentity", "AccessDenied"),
            fault("DescribeDBProxies", "AccessDenied", account=CALLER),
        ]
    )
    world.cycle(code=EXIT_SCOPES_FAILED, frozen={("", EAST)})
    world.recover()


def test_known_caller_account_freezes_only_that_account(world: World) -> None:
    """Base credentials whose account STS did tell: only (that account, region) is frozen."""
    world.set_faults([fault("DescribeDBProxyEndpoints", "AccessDenied", account=CALLER)])
    world.cycle(code=EXIT_SCOPES_FAILED, frozen={(CALLER, EAST)})
    world.recover()


# --- throttling storms ---------------------------------------------------------------------------


def test_throttling_storm_within_retries_succeeds(world: World) -> None:
    """Every AWS call is throttled for a while (an AWS-like token bucket of one call per
    service, account and region, refilled at 3/s): botocore's retries get every call through."""
    world.config["aws_client"]["max_attempts"] = 8
    world.write_config()
    world.emulator.set_settings(throttle={"burst": 1, "rate": 3})
    world.emulator.reset_stats()
    world.cycle(code=EXIT_OK, frozen=set())
    throttled = sum(op["throttled"] for op in calls(world).values())
    assert throttled >= len(AREAS), "the storm did not throttle anything"
    world.recover()


def test_every_operation_throttled_twice_succeeds_with_retries(world: World) -> None:
    world.set_faults([fault(op, "Throttling", times=2) for op in OPERATIONS])
    world.emulator.reset_stats()
    world.cycle(code=EXIT_OK, frozen=set())
    assert all(calls(world)[op]["throttled"] == 2 for op in OPERATIONS)
    world.recover()


def test_throttling_beyond_retries_freezes_the_scope(world: World) -> None:
    world.set_faults([fault("DescribeDBProxies", "Throttling", account=ACCOUNT_B, region=EAST)])
    world.emulator.reset_stats()
    result = world.cycle(code=EXIT_SCOPES_FAILED, frozen={(ACCOUNT_B, EAST)})
    assert ["still throttled after retries" in e for e in result.errors()] == [True]
    assert calls(world)["DescribeDBProxies"]["throttled"] == 3  # aws_client.max_attempts
    world.recover()


OPERATIONS = (
    "AssumeRole",
    "GetCallerIdentity",
    "DescribeDBProxies",
    "DescribeDBProxyEndpoints",
    "GetResources",
)


# --- HTTP 5xx ------------------------------------------------------------------------------------


def test_5xx_within_retries_succeeds(world: World) -> None:
    """Each operation answers 500 once and 503 once (fewer than aws_client.max_attempts)."""
    world.set_faults(
        [
            fault(op, code, times=1)
            for code in ("InternalFailure", "ServiceUnavailable")
            for op in OPERATIONS
        ]
    )
    world.emulator.reset_stats()
    world.cycle(code=EXIT_OK, frozen=set())
    assert all(calls(world)[op]["error"] == 2 for op in OPERATIONS)
    world.recover()


@pytest.mark.parametrize(
    ("code", "status"), [("InternalFailure", 500), ("ServiceUnavailable", 503)]
)
def test_5xx_beyond_retries_freezes_the_scope(world: World, code: str, status: int) -> None:
    world.set_faults(
        [fault("DescribeDBProxyEndpoints", code, status=status, account=ACCOUNT_A, region=EAST)]
    )
    result = world.cycle(code=EXIT_SCOPES_FAILED, frozen={(ACCOUNT_A, EAST)})
    assert [code in e for e in result.errors()] == [True]
    world.recover()


# --- latency past the client's read timeout ------------------------------------------------------


def test_one_slow_answer_past_the_read_timeout_is_retried(world: World) -> None:
    world.config["aws_client"]["read_timeout"] = "1s"
    world.write_config()
    world.set_faults(
        [fault("DescribeDBProxies", "Timeout", delay_seconds=4, times=1, account=ACCOUNT_A)]
    )
    world.cycle(code=EXIT_OK, frozen=set())
    world.recover()


def test_answers_always_past_the_read_timeout_freeze_the_scope(world: World) -> None:
    world.config["aws_client"]["read_timeout"] = "1s"
    world.write_config()
    world.set_faults(
        [fault("DescribeDBProxyEndpoints", "Timeout", delay_seconds=4, account=ACCOUNT_B)]
    )
    result = world.cycle(code=EXIT_SCOPES_FAILED, frozen={(ACCOUNT_B, EAST), (ACCOUNT_B, WEST)})
    assert all("rds:DescribeDBProxyEndpoints failed" in e for e in result.errors())
    assert all("timeout" in e.lower() for e in result.errors())
    world.recover()


def test_latency_spike_on_every_call_freezes_every_scope(world: World) -> None:
    """All of AWS slower than the read timeout: every scope fails, nothing is written."""
    world.config["aws_client"].update(read_timeout="1s", max_attempts=2)
    world.write_config()
    world.emulator.set_settings(latency_ms=1500)
    result = world.cycle(code=EXIT_SCOPES_FAILED)
    assert all(s["status"] == "failed" for s in result.scopes)
    # the base-credentials scope could not learn its account: its whole region is frozen
    assert result.frozen == {(ACCOUNT_A, WEST), (ACCOUNT_B, WEST), ("", EAST)} | {
        (ACCOUNT_A, EAST),
        (ACCOUNT_B, EAST),
    }
    world.recover()


# --- malformed and truncated answers -------------------------------------------------------------


@pytest.mark.parametrize(
    "operation", ["AssumeRole", "DescribeDBProxies", "DescribeDBProxyEndpoints", "GetResources"]
)
def test_truncated_answer_freezes_the_scope(world: World, operation: str) -> None:
    """A 200 answer whose body is cut in half (XML for STS and RDS, JSON for tagging)."""
    world.set_faults([fault(operation, "Malformed", account=ACCOUNT_B, region=WEST)])
    expected = {(ACCOUNT_B, WEST)}
    if operation == "AssumeRole":  # AssumeRole is matched on the role's account, region: STS's
        world.set_faults([fault(operation, "Malformed", account=ACCOUNT_B)])
        expected = {(ACCOUNT_B, EAST), (ACCOUNT_B, WEST)}
    result = world.cycle(code=EXIT_SCOPES_FAILED, frozen=expected)
    assert all("malformed response" in e for e in result.errors()), result.errors()
    world.recover()


# --- credentials that expire in the middle of a cycle --------------------------------------------


def test_credentials_expiring_mid_cycle_are_refreshed(world: World) -> None:
    """Assumed-role credentials live 2 s and every call takes 0.7 s: the credentials a scope
    starts with expire before it ends; they are refreshed, never used expired."""
    world.set_fleet({**world.fleet, "credential_duration_seconds": 2})
    world.emulator.set_settings(latency_ms=700)
    world.emulator.reset_stats()
    world.cycle(code=EXIT_OK, frozen=set())
    stats = calls(world)
    assert stats["AssumeRole"]["ok"] > 2, "the credentials were never refreshed"
    assert all(op["error"] == 0 for op in stats.values()), stats
    world.recover()


# --- a region with thousands of proxies ----------------------------------------------------------


def big_fleet(version: int, proxies: int, *, drop: int = 0) -> dict[str, Any]:
    fleet = make_fleet(version)
    account = next(a for a in fleet["accounts"] if a["id"] == ACCOUNT_A)
    account["regions"][WEST]["proxies"] += [
        {
            "name": f"bulk-{i:05d}",
            "engine_family": ("POSTGRESQL", "MYSQL", "SQLSERVER")[i % 3],
            "tags": {"env": "prod", "index": str(i)},
            "endpoints": [{"name": f"bulk-{i:05d}-ro", "target_role": "READ_ONLY"}],
        }
        for i in range(drop, proxies)
    ]
    return fleet


def test_region_with_thousands_of_proxies(world: World) -> None:
    """2,500 proxies (5,000 resources) in one region: all registered; then 500 of them gone
    while that region's tag listing is truncated: frozen, nothing deleted; then recovered."""
    # In a subprocess: in-process, the scan and the emulator (5,000 resources to serialise
    # and parse) would share one interpreter lock instead of two cores, and take twice as long.
    world.set_fleet(big_fleet(1, 2500))
    world.cycle(code=EXIT_OK, frozen=set(), subprocess=True)
    assert len(world.snapshot()) > 5000

    world.set_fleet(big_fleet(1, 2500, drop=500))
    world.set_faults([fault("GetResources", "Malformed", account=ACCOUNT_A, region=WEST)])
    world.cycle(code=EXIT_SCOPES_FAILED, frozen={(ACCOUNT_A, WEST)}, subprocess=True)

    result = world.recover(subprocess=True)
    assert len(result.json()["plan"]["delete"]) == 1000
