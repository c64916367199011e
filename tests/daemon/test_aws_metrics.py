"""The AWS source's metric hooks against the emulator: calls by outcome, throttles per attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from discovery.aws.calls import FetchError
from discovery.aws.rds_proxy import AWSSource
from discovery.core.model import Scope
from discovery.emulator import EmulatorThread
from discovery.output.metrics import Metrics
from tests.daemon.conftest import ACCOUNT_A, EXTERNAL_ID_A, base_fleet

ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/discovery"


@pytest.fixture
def aws_env(emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    emulator.set_fleet(base_fleet())
    emulator.set_faults([])
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    yield
    emulator.set_faults([])


def fetch(metrics: Metrics, scope: Scope) -> None:
    async def run() -> None:
        async with AWSSource(
            on_call=metrics.observe_call, on_throttle=metrics.observe_throttle
        ) as source:
            await source.fetch(scope)

    asyncio.run(run())


def test_a_throttled_attempt_is_counted_even_when_the_retry_succeeds(
    emulator: EmulatorThread, aws_env: None
) -> None:
    emulator.set_faults(
        [{"account": ACCOUNT_A, "operation": "DescribeDBProxies", "code": "Throttling", "times": 1}]
    )
    metrics = Metrics()
    fetch(
        metrics,
        Scope(
            matcher_index=0, region="us-east-1", assume_role_arn=ROLE_A, external_id=EXTERNAL_ID_A
        ),
    )
    value = metrics.registry.get_sample_value
    assert value("rdsproxy_discovery_aws_throttled_total", {"operation": "DescribeDBProxies"}) == 1
    assert value("rdsproxy_discovery_aws_retries_total", {"operation": "DescribeDBProxies"}) == 1
    ok = {"operation": "DescribeDBProxies", "outcome": "ok"}
    assert value("rdsproxy_discovery_aws_calls_total", ok) == 1
    assert (
        value("rdsproxy_discovery_aws_throttled_total", {"operation": "DescribeDBProxyEndpoints"})
        == 0
    )
    assert (
        value("rdsproxy_discovery_aws_calls_total", {"operation": "AssumeRole", "outcome": "ok"})
        == 1
    )


def test_a_denied_call_is_counted_as_denied(emulator: EmulatorThread, aws_env: None) -> None:
    emulator.set_faults([{"account": ACCOUNT_A, "operation": "AssumeRole", "code": "AccessDenied"}])
    metrics = Metrics()
    with pytest.raises(FetchError):
        fetch(
            metrics,
            Scope(
                matcher_index=0,
                region="us-east-1",
                assume_role_arn=ROLE_A,
                external_id=EXTERNAL_ID_A,
            ),
        )
    value = metrics.registry.get_sample_value
    assert (
        value(
            "rdsproxy_discovery_aws_calls_total", {"operation": "AssumeRole", "outcome": "denied"}
        )
        == 1
    )
    assert value("rdsproxy_discovery_aws_throttled_total", {"operation": "AssumeRole"}) == 0
