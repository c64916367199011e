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
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def _emulator_module() -> Iterator[EmulatorThread]:
    with EmulatorThread(SMALL_FLEET) as emu:
        yield emu


@pytest.fixture
def emulator(_emulator_module: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> EmulatorThread:
    emu = _emulator_module
    emu.set_fleet(SMALL_FLEET)
    emu.set_faults([])
    emu.set_settings(latency_ms=0, throttle=None)
    emu.reset_stats()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.url)
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
