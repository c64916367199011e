"""STS: AssumeRole (external id rules, durations, visibility) and GetCallerIdentity."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from discovery.emulator import EmulatorThread

AioFactory = Callable[..., AbstractAsyncContextManager[Any]]
ROLE_1 = "arn:aws:iam::111111111111:role/discovery"


def test_caller_identity_of_base_credentials(client: Callable[..., Any]) -> None:
    ident = client("sts").get_caller_identity()
    assert ident["Account"] == "000000000000"
    assert ident["Arn"] == "arn:aws:iam::000000000000:user/emulator"
    assert ident["UserId"].startswith("AIDA")


async def test_assume_role_with_right_external_id(aio_client: AioFactory) -> None:
    async with aio_client("sts") as sts:
        resp = await sts.assume_role(
            RoleArn=ROLE_1, RoleSessionName="discovery", ExternalId="ext-1"
        )
    creds = resp["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert creds["SecretAccessKey"] and creds["SessionToken"]
    remaining = (creds["Expiration"] - datetime.now(UTC)).total_seconds()
    assert 3500 < remaining <= 3600
    user = resp["AssumedRoleUser"]
    assert user["Arn"] == "arn:aws:sts::111111111111:assumed-role/discovery/discovery"
    assert user["AssumedRoleId"].endswith(":discovery")
    async with aio_client("sts", creds=creds) as sts:
        ident = await sts.get_caller_identity()
    assert ident["Account"] == "111111111111"
    assert ident["Arn"] == user["Arn"]
    assert ident["UserId"] == user["AssumedRoleId"]


@pytest.mark.parametrize(
    ("role_arn", "external_id"),
    [
        (ROLE_1, "wrong"),
        (ROLE_1, None),  # the role requires an external id
        ("arn:aws:iam::111111111111:role/open", "unexpected"),  # the role takes none
        ("arn:aws:iam::111111111111:role/missing", "ext-1"),
        ("arn:aws:iam::999999999999:role/discovery", "ext-1"),
    ],
)
async def test_assume_role_denied(
    aio_client: AioFactory, role_arn: str, external_id: str | None
) -> None:
    kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "s1"}
    if external_id is not None:
        kwargs["ExternalId"] = external_id
    async with aio_client("sts") as sts:
        with pytest.raises(ClientError) as ei:
            await sts.assume_role(**kwargs)
    err = ei.value.response["Error"]
    assert err["Code"] == "AccessDenied"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err["Message"] == (
        "User: arn:aws:iam::000000000000:user/emulator is not authorized to perform: "
        f"sts:AssumeRole on resource: {role_arn}"
    )


def test_role_without_external_id(client: Callable[..., Any]) -> None:
    resp = client("sts").assume_role(
        RoleArn="arn:aws:iam::111111111111:role/open", RoleSessionName="s1"
    )
    assert resp["AssumedRoleUser"]["Arn"].endswith(":assumed-role/open/s1")


def test_assume_role_validation(client: Callable[..., Any]) -> None:
    sts = client("sts", parameter_validation=False)
    for kwargs in (
        {"RoleArn": "not-an-arn-but-long-enough", "RoleSessionName": "s1"},
        {"RoleArn": ROLE_1, "RoleSessionName": "s1", "ExternalId": "ext-1", "DurationSeconds": 60},
        {
            "RoleArn": ROLE_1,
            "RoleSessionName": "s1",
            "ExternalId": "ext-1",
            "DurationSeconds": 7200,
        },
    ):
        with pytest.raises(ClientError) as ei:
            sts.assume_role(**kwargs)
        assert ei.value.response["Error"]["Code"] == "ValidationError"


def test_duration_seconds_honoured(client: Callable[..., Any]) -> None:
    creds = client("sts").assume_role(
        RoleArn=ROLE_1, RoleSessionName="s1", ExternalId="ext-1", DurationSeconds=900
    )["Credentials"]
    remaining = (creds["Expiration"] - datetime.now(UTC)).total_seconds()
    assert 800 < remaining <= 900


def test_assumed_credentials_see_only_their_account(client: Callable[..., Any]) -> None:
    def names(creds: Any) -> list[str]:
        return [
            p["DBProxyName"] for p in client("rds", creds=creds).describe_db_proxies()["DBProxies"]
        ]

    sts = client("sts")
    c1 = sts.assume_role(RoleArn=ROLE_1, RoleSessionName="sa", ExternalId="ext-1")["Credentials"]
    c2 = sts.assume_role(
        RoleArn="arn:aws:iam::222222222222:role/discovery", RoleSessionName="sb", ExternalId="ext-2"
    )["Credentials"]
    assert names(c1) == ["mysql-untagged", "pg-main"]
    assert names(c2) == ["other-account-pg"]
    assert names(None) == []  # base caller 000000000000 has no proxies


def test_base_caller_sees_its_own_account(
    emulator: EmulatorThread, client: Callable[..., Any], small_fleet: dict[str, Any]
) -> None:
    emulator.set_fleet({**small_fleet, "caller_account": "222222222222"})
    names = [p["DBProxyName"] for p in client("rds").describe_db_proxies()["DBProxies"]]
    assert names == ["other-account-pg"]


async def test_expired_credentials(
    emulator: EmulatorThread, aio_client: AioFactory, small_fleet: dict[str, Any]
) -> None:
    emulator.set_fleet({**small_fleet, "credential_duration_seconds": 1})
    async with aio_client("sts") as sts:
        creds = (await sts.assume_role(RoleArn=ROLE_1, RoleSessionName="s2", ExternalId="ext-1"))[
            "Credentials"
        ]
    assert (creds["Expiration"] - datetime.now(UTC)).total_seconds() <= 1
    await asyncio.sleep(max(0.0, creds["Expiration"].timestamp() - time.time()) + 0.05)
    calls: list[tuple[str, Callable[[Any], Any]]] = [
        ("rds", lambda c: c.describe_db_proxies()),
        ("sts", lambda c: c.get_caller_identity()),
        ("resourcegroupstaggingapi", lambda c: c.get_resources()),
    ]
    for service, call in calls:
        async with aio_client(service, creds=creds) as c:
            with pytest.raises(ClientError) as ei:
                await call(c)
        assert ei.value.response["Error"]["Code"] == "ExpiredTokenException", service
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    stats = emulator.stats()
    assert stats["by_operation"]["DescribeDBProxies"]["error"] == 1
