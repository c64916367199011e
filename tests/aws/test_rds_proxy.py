"""AWSSource against the emulator over HTTP: sessions cached, refreshed, calls per scope."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from discovery.aws.calls import FetchError
from discovery.aws.clients import AWSSettings
from discovery.aws.rds_proxy import AWSSource
from discovery.core.model import Scope
from discovery.emulator import EmulatorThread

ACCOUNT = "111111111111"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/discovery"


def fleet(duration: int | None = None, proxies: int = 3) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "caller_account": "000000000000",
        "accounts": [
            {
                "id": ACCOUNT,
                "roles": [{"name": "discovery", "external_id": "ext"}],
                "regions": {
                    region: {
                        "proxies": [
                            {
                                "name": f"p{i}",
                                "engine_family": "POSTGRESQL",
                                "tags": {"env": "prod", "n": str(i)},
                                "endpoints": [{"name": f"p{i}-ro", "target_role": "READ_ONLY"}],
                            }
                            for i in range(proxies)
                        ]
                    }
                    for region in ("us-east-1", "eu-west-1", "ap-southeast-2")
                },
            }
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


def calls(emu: EmulatorThread) -> dict[str, int]:
    stats = emu.stats()["by_operation"]
    return {op: sum(outcomes.values()) for op, outcomes in stats.items()}


def scope(region: str, external_id: str = "ext") -> Scope:
    return Scope(matcher_index=0, region=region, assume_role_arn=ROLE, external_id=external_id)


async def test_one_assume_role_for_all_regions_and_one_call_per_listing(
    emulator: EmulatorThread,
) -> None:
    emulator.reset_stats()
    async with AWSSource() as source:
        results = await asyncio.gather(
            *(source.fetch(scope(r)) for r in ("us-east-1", "eu-west-1", "ap-southeast-2"))
        )
        again = await source.fetch(scope("us-east-1"))
    assert [len(r.proxies) for r in results] == [3, 3, 3]
    assert all(r.account_id == ACCOUNT for r in results)
    assert results[0].proxies[0].tags == {"env": "prod", "n": "0"}
    assert [e.name for e in results[0].proxies[0].endpoints] == ["default", "p0-ro"]
    assert again == results[0]
    assert calls(emulator) == {
        "AssumeRole": 1,  # cached per (role, external id), shared by regions and fetches
        "DescribeDBProxies": 4,
        "DescribeDBProxyEndpoints": 4,  # one sweep per scope, not one per proxy
        "GetResources": 4,
    }


async def test_every_page_is_read(emulator: EmulatorThread) -> None:
    emulator.set_fleet(fleet(proxies=250))
    emulator.reset_stats()
    async with AWSSource() as source:
        fetched = await source.fetch(scope("eu-west-1"))
    assert len(fetched.proxies) == 250
    assert sum(len(p.endpoints) for p in fetched.proxies) == 500
    assert all(p.tags["env"] == "prod" for p in fetched.proxies)
    assert calls(emulator) == {
        "AssumeRole": 1,
        "DescribeDBProxies": 3,
        "DescribeDBProxyEndpoints": 5,
        "GetResources": 3,
    }


async def test_expiring_credentials_are_refreshed(emulator: EmulatorThread) -> None:
    emulator.set_fleet(fleet(duration=2))
    emulator.reset_stats()
    async with AWSSource() as source:
        await source.fetch(scope("us-east-1"))
        await asyncio.sleep(2.5)  # the first credentials have now expired at the emulator
        fetched = await source.fetch(scope("us-east-1"))
    assert len(fetched.proxies) == 3
    assert calls(emulator)["AssumeRole"] >= 2


async def test_denied_assume_role_names_trust_and_external_id(emulator: EmulatorThread) -> None:
    async with AWSSource() as source:
        with pytest.raises(FetchError) as err:
            await source.fetch(scope("us-east-1", external_id="wrong"))
    assert "sts:AssumeRole" in str(err.value)
    assert "trust policy" in str(err.value) and "external_id" in str(err.value)


async def test_denied_get_resources_falls_back_per_proxy(emulator: EmulatorThread) -> None:
    emulator.set_faults(
        [{"operation": "GetResources", "code": "AccessDeniedException", "status": 400}]
    )
    emulator.reset_stats()
    async with AWSSource() as source:
        fetched = await source.fetch(scope("us-east-1"))
    assert [p.tags["n"] for p in fetched.proxies] == ["0", "1", "2"]
    assert calls(emulator)["ListTagsForResource"] == 3


async def test_throttling_is_retried(emulator: EmulatorThread) -> None:
    emulator.set_faults(
        [{"operation": "DescribeDBProxies", "code": "Throttling", "status": 400, "times": 2}]
    )
    seen: list[tuple[str, str, int]] = []
    async with AWSSource(on_call=lambda *a: seen.append(a)) as source:
        fetched = await source.fetch(scope("us-east-1"))
    assert len(fetched.proxies) == 3
    assert ("DescribeDBProxies", "ok", 2) in seen


async def test_persistent_error_fails_after_bounded_retries(emulator: EmulatorThread) -> None:
    emulator.set_faults(
        [{"operation": "DescribeDBProxyEndpoints", "code": "InternalFailure", "status": 500}]
    )
    emulator.reset_stats()
    async with AWSSource(settings=AWSSettings(max_attempts=3)) as source:
        with pytest.raises(FetchError, match="rds:DescribeDBProxyEndpoints"):
            await source.fetch(scope("us-east-1"))
    assert calls(emulator)["DescribeDBProxyEndpoints"] == 3
