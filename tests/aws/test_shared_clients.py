"""Shared clients over HTTP: one botocore client per (service, region) signs for every role.

What must not change when the clients are shared (issue 14): each scope sees its own account
(the signing credentials follow the calling task), assumed-role credentials still refresh,
botocore still retries throttling; and what must: the clients and connections made, and the
per-scope state kept, no longer grow with the number of accounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from discovery.aws.calls import Caller, ErrorKind, FetchError
from discovery.aws.clients import AWSClients, AWSSettings
from discovery.aws.rds_proxy import AWSSource
from discovery.core.model import Scope
from discovery.emulator import EmulatorThread

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
ACCOUNTS = tuple(f"{444444444400 + n:012d}" for n in range(8))


def role(account: str) -> str:
    return f"arn:aws:iam::{account}:role/discovery"


def fleet(duration: int | None = None, *, empty: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "caller_account": "000000000000",
        "accounts": [
            {
                "id": account,
                "roles": [{"name": "discovery"}],
                "regions": {
                    region: {
                        "proxies": []
                        if empty
                        else [
                            {
                                "name": f"p-{account}-{region}",
                                "engine_family": "POSTGRESQL",
                                "tags": {"account": account},
                            }
                        ]
                    }
                    for region in REGIONS
                },
            }
            for account in ACCOUNTS
        ],
    }
    if duration is not None:
        doc["credential_duration_seconds"] = duration
    return doc


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorThread]:
    with EmulatorThread(fleet()) as emu:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            monkeypatch.delenv(key, raising=False)
        for key, value in emu.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        yield emu


def scopes() -> list[Scope]:
    return [
        Scope(matcher_index=i, region=r, assume_role_arn=role(a))
        for i, a in enumerate(ACCOUNTS)
        for r in REGIONS
    ]


def calls(emu: EmulatorThread) -> dict[str, int]:
    stats = emu.stats()["by_operation"]
    return {op: sum(outcomes.values()) for op, outcomes in stats.items()}


async def test_concurrent_scopes_of_many_accounts_each_see_their_own(
    emulator: EmulatorThread,
) -> None:
    emulator.set_settings(latency_ms=20)  # calls of every account overlap on the shared clients
    emulator.reset_stats()
    async with AWSSource(settings=AWSSettings(max_concurrency=2)) as source:
        results = await asyncio.gather(*(source.fetch(s) for s in scopes()))
        made = source._clients.clients_created
    for scope, fetched in zip(scopes(), results, strict=True):
        account = scope.role_account_id
        assert fetched.account_id == account
        assert [p.name for p in fetched.proxies] == [f"p-{account}-{scope.region}"]
        assert fetched.proxies[0].arn.split(":")[4] == account
        assert fetched.proxies[0].tags == {"account": account}
    # sts + (rds, tagging) x 3 regions, not (rds, tagging) x 24 scopes + sts
    assert made == 1 + 2 * len(REGIONS)
    assert calls(emulator)["AssumeRole"] == len(ACCOUNTS)
    # At most 2 calls in flight, in 7 keep-alive pools (one per shared client): a client per
    # (account, region, service) would have opened at least one connection per client, 49.
    assert emulator.stats()["connections"] <= 2 * made


async def test_empty_scopes_make_one_call_each_and_no_tagging_client(
    emulator: EmulatorThread,
) -> None:
    emulator.set_fleet(fleet(empty=True))
    emulator.reset_stats()
    async with AWSSource() as source:
        results = await asyncio.gather(*(source.fetch(s) for s in scopes()))
        made = source._clients.clients_created
    assert all(r.proxies == () for r in results)
    assert [r.account_id for r in results] == [s.role_account_id for s in scopes()]
    assert calls(emulator) == {"AssumeRole": len(ACCOUNTS), "DescribeDBProxies": 24}
    assert made == 1 + len(REGIONS)  # sts and rds per region; tagging never needed


async def test_assumed_roles_refresh_on_shared_clients(emulator: EmulatorThread) -> None:
    # Credentials that live 3 s are always inside botocore's refresh window: every call signs
    # with freshly assumed credentials of its own role, through the shared clients.
    emulator.set_fleet(fleet(duration=3))
    emulator.reset_stats()
    async with AWSSource() as source:
        results = await asyncio.gather(*(source.fetch(s) for s in scopes()))
    assert [r.account_id for r in results] == [s.role_account_id for s in scopes()]
    assert all(len(r.proxies) == 1 for r in results)
    assert calls(emulator)["AssumeRole"] > len(ACCOUNTS)  # refreshed, not only assumed


async def test_throttling_is_retried_and_slows_that_account_region(
    emulator: EmulatorThread,
) -> None:
    emulator.set_settings(throttle={"burst": 1, "rate": 1})  # 2nd rds call waits
    throttled: list[str] = []
    async with AWSSource(
        settings=AWSSettings(max_attempts=10), on_throttle=throttled.append
    ) as source:
        results = await asyncio.gather(*(source.fetch(s) for s in scopes()))
        caller = source._caller
    assert all(len(r.proxies) == 1 for r in results)
    assert throttled  # botocore retried throttled attempts, and every scope still succeeded
    by_operation = emulator.stats()["by_operation"]
    assert sum(outcomes["throttled"] for outcomes in by_operation.values()) > 0
    assert caller.tracked_keys <= len(ACCOUNTS) * len(REGIONS)


async def test_assumed_roles_are_kept_in_a_bounded_cache(emulator: EmulatorThread) -> None:
    emulator.reset_stats()
    caller = Caller(max_concurrency=8)
    async with AWSClients(caller=caller, max_cached_roles=3) as clients:
        for account in ACCOUNTS:
            await clients.client(role(account), "", "rds", "us-east-1")
        assert clients.cached_roles == 3
        rds = await clients.client(role(ACCOUNTS[0]), "", "rds", "us-east-1")  # evicted
        page = await caller.call("rds:DescribeDBProxies", rds.describe_db_proxies)
    assert page["DBProxies"][0]["DBProxyArn"].split(":")[4] == ACCOUNTS[0]
    assert calls(emulator)["AssumeRole"] == len(ACCOUNTS) + 1  # assumed again, still right
    assert caller.tracked_keys == 0  # nothing in flight: no per-key state left


async def test_no_base_credentials_is_still_a_one_line_scope_failure(
    emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no IMDS lookup off this machine
    async with AWSSource() as source:
        with pytest.raises(FetchError) as err:
            await source.fetch(Scope(matcher_index=0, region="us-east-1"))
    assert err.value.kind is ErrorKind.NO_CREDENTIALS
    assert "no AWS credentials found" in str(err.value)


async def test_only_api_operations_are_scoped(emulator: EmulatorThread) -> None:
    async with AWSClients(caller=Caller(max_concurrency=2)) as clients:
        rds = await clients.client(role(ACCOUNTS[0]), "", "rds", "us-east-1")
        assert rds.describe_db_proxies.limit_key == (ACCOUNTS[0], "us-east-1")
        assert rds.meta.region_name == "us-east-1"
        assert rds.can_paginate("describe_db_proxies") is True  # botocore's own, unwrapped
