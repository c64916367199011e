"""Fixtures for the emulator tests: one emulator per module, reset before every test.

No test talks to real AWS: the environment always points botocore at the emulator with dummy
credentials, and clients are created with an explicit endpoint_url as well.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config

from discovery.emulator import EmulatorThread
from tests.harness.emulator import reset_emulator, running_emulator
from tests.harness.env import patch_aws_env

SMALL_FLEET: dict[str, Any] = {
    "caller_account": "000000000000",
    "accounts": [
        {
            "id": "111111111111",
            "roles": [{"name": "discovery", "external_id": "ext-1"}, {"name": "open"}],
            "regions": {
                "us-east-1": {
                    "proxies": [
                        {
                            "name": "pg-main",
                            "engine_family": "POSTGRESQL",
                            "tags": {"env": "prod", "bad key!": "x"},
                            "endpoints": [
                                {"name": "ro", "target_role": "READ_ONLY"},
                                {"name": "rw", "target_role": "READ_WRITE", "status": "creating"},
                            ],
                        },
                        {"name": "mysql-untagged", "engine_family": "MYSQL"},
                    ]
                },
                "eu-west-1": {
                    "proxies": [{"name": "eu-pg", "tags": {"env": "dev"}}],
                },
            },
        },
        {
            "id": "222222222222",
            "roles": [{"name": "discovery", "external_id": "ext-2"}],
            "regions": {
                "us-east-1": {"proxies": [{"name": "other-account-pg", "tags": {"a": "b"}}]}
            },
        },
    ],
}


@pytest.fixture
def small_fleet() -> dict[str, Any]:
    """A fresh copy of the fleet every test starts with."""
    return copy.deepcopy(SMALL_FLEET)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Belt and braces: even a client created without endpoint_url never reaches real AWS.
    patch_aws_env(monkeypatch)


@pytest.fixture(scope="module")
def _emulator_module() -> Iterator[EmulatorThread]:
    with running_emulator(SMALL_FLEET) as emu:
        yield emu


@pytest.fixture
def emulator(_emulator_module: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> EmulatorThread:
    emu = reset_emulator(_emulator_module, fleet=SMALL_FLEET, stats=True)
    patch_aws_env(monkeypatch, emu.url)
    return emu


Creds = dict[str, str] | None


@pytest.fixture
def client(emulator: EmulatorThread) -> Callable[..., Any]:
    """A boto3 client factory: client(service, region=..., creds=..., attempts=1)."""

    def make(
        service: str,
        region: str = "us-east-1",
        creds: Creds = None,
        attempts: int = 1,
        **config: Any,
    ) -> Any:
        c = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=emulator.url,
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c.get("SessionToken"),
            config=Config(retries={"mode": "standard", "total_max_attempts": attempts}, **config),
        )

    return make


@pytest.fixture
def aio_client(
    emulator: EmulatorThread,
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """An aiobotocore client factory (async context manager), retries off by default."""

    @asynccontextmanager
    async def make(
        service: str,
        region: str = "us-east-1",
        creds: Creds = None,
        attempts: int = 1,
        **config: Any,
    ) -> AsyncIterator[Any]:
        c = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
        session = get_session()
        async with session.create_client(
            service,
            region_name=region,
            endpoint_url=emulator.url,
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c.get("SessionToken"),
            config=AioConfig(
                retries={"mode": "standard", "total_max_attempts": attempts}, **config
            ),
        ) as cl:
            yield cl

    return make
