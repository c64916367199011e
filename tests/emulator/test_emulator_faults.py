"""Fault injection, latency, throttling and counters, seen through real clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.parsers import ResponseParserError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from discovery.emulator import EmulatorThread

AioFactory = Callable[..., AbstractAsyncContextManager[Any]]
ROLE_1 = "arn:aws:iam::111111111111:role/discovery"

CALLS: dict[str, Callable[[Any], Any]] = {
    "rds": lambda c: c.describe_db_proxies(),
    "sts": lambda c: c.get_caller_identity(),
    "resourcegroupstaggingapi": lambda c: c.get_resources(ResourceTypeFilters=["rds:db-proxy"]),
}
OPERATIONS = {
    "rds": "DescribeDBProxies",
    "sts": "GetCallerIdentity",
    "resourcegroupstaggingapi": "GetResources",
}


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),
        ("AccessDeniedException", 403),
        ("Throttling", 400),
        ("DBProxyNotFoundFault", 404),
        ("InternalFailure", 500),
        ("ExpiredTokenException", 400),
    ],
)
async def test_error_codes_parse_in_aiobotocore(
    emulator: EmulatorThread, aio_client: AioFactory, service: str, code: str, status: int
) -> None:
    emulator.set_faults([{"code": code, "status": status, "message": "boom"}])
    async with aio_client(service) as c:
        with pytest.raises(ClientError) as ei:
            await CALLS[service](c)
    assert ei.value.response["Error"]["Code"] == code
    assert ei.value.response["Error"]["Message"] == "boom"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert ei.value.operation_name == OPERATIONS[service]


async def test_default_status_and_message(emulator: EmulatorThread, aio_client: AioFactory) -> None:
    emulator.set_faults([{"code": "AccessDenied"}])
    async with aio_client("rds") as c:
        with pytest.raises(ClientError) as ei:
            await c.describe_db_proxies()
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert ei.value.response["Error"]["Message"].startswith(
        "User: arn:aws:iam::000000000000:user/emulator is not authorized to perform: "
        "rds:DescribeDBProxies on resource: arn:aws:rds:us-east-1:000000000000:db-proxy:*"
    )


def test_access_denied_per_region_and_operation(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    emulator.set_faults(
        [
            {
                "account": "111111111111",
                "region": "eu-west-1",
                "operation": "DescribeDBProxyEndpoints",
                "code": "AccessDenied",
            },
            {"operation": "GetResources", "region": "us-east-1", "code": "AccessDeniedException"},
        ]
    )
    creds = client("sts").assume_role(RoleArn=ROLE_1, RoleSessionName="faults", ExternalId="ext-1")[
        "Credentials"
    ]
    us, eu = client("rds", creds=creds), client("rds", region="eu-west-1", creds=creds)
    us.describe_db_proxy_endpoints()
    eu.describe_db_proxies()
    with pytest.raises(ClientError) as ei:
        eu.describe_db_proxy_endpoints()
    assert ei.value.response["Error"]["Code"] == "AccessDenied"
    # Other account, same region and operation: unaffected.
    creds2 = client("sts").assume_role(
        RoleArn="arn:aws:iam::222222222222:role/discovery", RoleSessionName="f2", ExternalId="ext-2"
    )["Credentials"]
    client("rds", region="eu-west-1", creds=creds2).describe_db_proxy_endpoints()
    with pytest.raises(ClientError):
        client("resourcegroupstaggingapi", creds=creds).get_resources()
    client("resourcegroupstaggingapi", region="eu-west-1", creds=creds).get_resources()
    # ListTagsForResource is the fallback when GetResources is denied.
    arn = us.describe_db_proxies(DBProxyName="pg-main")["DBProxies"][0]["DBProxyArn"]
    assert us.list_tags_for_resource(ResourceName=arn)["TagList"]


def test_assume_role_fault_matches_target_account(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    emulator.set_faults(
        [{"account": "222222222222", "operation": "AssumeRole", "code": "AccessDenied"}]
    )
    sts = client("sts")
    sts.assume_role(RoleArn=ROLE_1, RoleSessionName="ok", ExternalId="ext-1")
    with pytest.raises(ClientError) as ei:
        sts.assume_role(
            RoleArn="arn:aws:iam::222222222222:role/discovery",
            RoleSessionName="no",
            ExternalId="ext-2",
        )
    assert ei.value.response["Error"]["Code"] == "AccessDenied"


def test_fault_times(emulator: EmulatorThread, client: Callable[..., Any]) -> None:
    emulator.set_faults([{"operation": "DescribeDBProxies", "code": "InternalFailure", "times": 2}])
    rds = client("rds")
    for _ in range(2):
        with pytest.raises(ClientError) as ei:
            rds.describe_db_proxies()
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    rds.describe_db_proxies()
    rds.describe_db_proxies()
    by_op = emulator.stats()["by_operation"]["DescribeDBProxies"]
    assert by_op == {"ok": 2, "error": 2, "throttled": 0}


def test_fault_retried_by_standard_mode(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    emulator.set_faults([{"operation": "DescribeDBProxies", "code": "Throttling", "times": 1}])
    resp = client("rds", attempts=3).describe_db_proxies()
    assert resp["ResponseMetadata"]["RetryAttempts"] == 1


async def test_timeout_fault_is_a_latency_spike(
    emulator: EmulatorThread, aio_client: AioFactory
) -> None:
    emulator.set_faults(
        [{"operation": "DescribeDBProxies", "code": "Timeout", "delay_seconds": 0.6, "times": 2}]
    )
    async with aio_client("rds", read_timeout=0.2) as c:
        with pytest.raises(ReadTimeoutError):
            await c.describe_db_proxies()
    async with aio_client("rds") as c:
        t0 = time.perf_counter()
        await c.describe_db_proxies()  # answered normally, late
        assert time.perf_counter() - t0 >= 0.55
        t0 = time.perf_counter()
        await c.describe_db_proxies()
        assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("service", ["rds", "sts"])
async def test_malformed_query_response(
    emulator: EmulatorThread, aio_client: AioFactory, service: str
) -> None:
    emulator.set_faults([{"code": "Malformed", "times": 1}])
    async with aio_client(service) as c:
        with pytest.raises(ResponseParserError):
            await CALLS[service](c)
        await CALLS[service](c)


async def test_malformed_json_response_is_silently_empty_in_botocore(
    emulator: EmulatorThread, aio_client: AioFactory
) -> None:
    """botocore does not raise on a truncated JSON body: the page just lacks its keys.

    Consumers must treat a GetResources answer without ResourceTagMappingList as an error.
    """
    emulator.set_faults([{"code": "Malformed", "times": 1}])
    async with aio_client("resourcegroupstaggingapi") as c:
        resp = await c.get_resources(ResourceTypeFilters=["rds:db-proxy"])
    assert "ResourceTagMappingList" not in resp
    assert emulator.stats()["by_operation"]["GetResources"]["error"] == 1


async def test_latency_overlaps(emulator: EmulatorThread, aio_client: AioFactory) -> None:
    emulator.set_settings(latency_ms=300)
    async with aio_client("rds") as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(c.describe_db_proxies() for _ in range(8)))
        elapsed = time.perf_counter() - t0
    assert 0.3 <= elapsed < 1.5


@pytest.mark.parametrize(
    ("service", "code"),
    [
        ("rds", "Throttling"),
        ("resourcegroupstaggingapi", "ThrottledException"),
        ("sts", "Throttling"),
    ],
)
async def test_throttling_is_classified_by_botocore(
    emulator: EmulatorThread, aio_client: AioFactory, service: str, code: str
) -> None:
    emulator.set_settings(throttle={"burst": 3, "rate": 0})
    async with aio_client(service) as c:
        for _ in range(3):
            await CALLS[service](c)
        with pytest.raises(ClientError) as ei:
            await CALLS[service](c)
    resp = ei.value.response
    assert resp["Error"]["Code"] == code
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    ctx = RetryContext(attempt_number=1, parsed_response=resp)
    assert ThrottledRetryableChecker().is_retryable(ctx)
    stats = emulator.stats()["by_operation"][OPERATIONS[service]]
    assert stats == {"ok": 3, "error": 0, "throttled": 1}


async def test_throttle_buckets_are_per_account_and_region(
    emulator: EmulatorThread, aio_client: AioFactory, client: Callable[..., Any]
) -> None:
    creds = client("sts").assume_role(RoleArn=ROLE_1, RoleSessionName="bucket", ExternalId="ext-1")[
        "Credentials"
    ]
    emulator.set_settings(throttle=(2, 0))
    async with (
        aio_client("rds") as base,
        aio_client("rds", creds=creds) as acct1,
        aio_client("rds", region="eu-west-1", creds=creds) as acct1_eu,
    ):
        for c in (base, acct1, acct1_eu):
            await c.describe_db_proxies()
            await c.describe_db_proxy_endpoints()
            with pytest.raises(ClientError):
                await c.describe_db_proxies()


async def test_throttle_refills(emulator: EmulatorThread, aio_client: AioFactory) -> None:
    emulator.set_settings(throttle={"burst": 1, "rate": 20})
    async with aio_client("rds") as c:
        await c.describe_db_proxies()
        with pytest.raises(ClientError):
            await c.describe_db_proxies()
        await asyncio.sleep(0.1)
        await c.describe_db_proxies()


def test_stats_by_account_and_region(emulator: EmulatorThread, client: Callable[..., Any]) -> None:
    client("rds").describe_db_proxies()
    client("rds", region="eu-west-1").describe_db_proxies()
    calls = emulator.stats()["calls"]
    assert {
        (c["operation"], c["account"], c["region"], c["outcome"], c["count"]) for c in calls
    } == {
        ("DescribeDBProxies", "000000000000", "us-east-1", "ok", 1),
        ("DescribeDBProxies", "000000000000", "eu-west-1", "ok", 1),
    }
    emulator.reset_stats()
    assert emulator.stats()["total"] == 0
