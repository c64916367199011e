"""The confirming reads (aws.confirm via AWSSource.confirm) against the emulator over HTTP:
NotFound is an answer, any other failure is an error answer, never an exception; the reads use
the scope's role and region."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from discovery.aws.rds_proxy import AWSSource
from discovery.core.confirm import Answer, Check
from discovery.emulator import EmulatorThread
from tests.aws.test_rds_proxy import ACCOUNT, fleet, scope

EAST = "us-east-1"


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


async def ask(check: Check, region: str = EAST, external_id: str = "ext") -> Answer:
    async with AWSSource() as source:
        return await source.confirm(scope(region, external_id), check)


async def listed(region: str = EAST) -> dict[str, Any]:
    async with AWSSource() as source:
        fetched = await source.fetch(scope(region))
    return {p.name: p for p in fetched.proxies}


async def test_a_listed_proxy_exists_and_a_missing_one_is_not_found(
    emulator: EmulatorThread,
) -> None:
    p0 = (await listed())["p0"]
    resource_id = p0.arn.split(":db-proxy:")[1]
    assert await ask(Check(kind="proxy", proxy_name="p0", resource_id=resource_id)) == Answer(
        exists=True
    )
    assert await ask(Check(kind="proxy", proxy_name="gone")) == Answer(exists=False)
    # Same name, another resource id: the proxy the registry knows is gone.
    assert await ask(Check(kind="proxy", proxy_name="p0", resource_id="prx-old")) == Answer(
        exists=False
    )


async def test_endpoints_by_name(emulator: EmulatorThread) -> None:
    assert await ask(Check(kind="endpoint", proxy_name="p0", endpoint_name="p0-ro")) == Answer(
        exists=True
    )
    assert await ask(Check(kind="endpoint", proxy_name="p0", endpoint_name="nope")) == Answer(
        exists=False
    )
    assert await ask(Check(kind="endpoint", proxy_name="gone", endpoint_name="gone-ro")) == Answer(
        exists=False
    )


async def test_tags_come_from_list_tags_for_resource_in_the_scopes_region(
    emulator: EmulatorThread,
) -> None:
    fl = copy.deepcopy(fleet())
    fl["accounts"][0]["regions"]["eu-west-1"]["proxies"][1]["in_tagging_index"] = False
    emulator.set_fleet(fl)
    p1 = (await listed("eu-west-1"))["p1"]
    assert p1.tags == {}  # the listing left its tags out
    emulator.reset_stats()

    answer = await ask(Check(kind="tags", proxy_name="p1", arn=p1.arn), region="eu-west-1")

    assert answer == Answer(tags={"env": "prod", "n": "1"})
    [call] = [c for c in emulator.stats()["calls"] if c["operation"] == "ListTagsForResource"]
    assert (call["account"], call["region"], call["outcome"]) == (ACCOUNT, "eu-west-1", "ok")


@pytest.mark.parametrize(
    ("operation", "check"),
    [
        ("ListTagsForResource", Check(kind="tags", proxy_name="p0", arn="ARN")),
        ("DescribeDBProxies", Check(kind="proxy", proxy_name="gone")),
        ("DescribeDBProxyEndpoints", Check(kind="endpoint", proxy_name="p0", endpoint_name="x")),
    ],
)
async def test_a_denied_read_is_an_error_answer_naming_the_fix(
    emulator: EmulatorThread, operation: str, check: Check
) -> None:
    emulator.set_faults([{"operation": operation, "code": "AccessDenied", "status": 403}])
    answer = await ask(check)
    assert answer.exists is None and answer.tags is None
    assert answer.error.startswith(f"rds:{operation} failed: AccessDenied")
    assert f"grant rds:{operation}" in answer.error


async def test_a_role_that_cannot_be_assumed_is_an_error_answer(emulator: EmulatorThread) -> None:
    answer = await ask(Check(kind="proxy", proxy_name="p0"), external_id="wrong")
    assert answer.exists is None and "sts:AssumeRole" in answer.error


async def test_a_malformed_answer_is_never_read_as_gone(emulator: EmulatorThread) -> None:
    emulator.set_faults([{"operation": "DescribeDBProxies", "code": "Malformed"}])
    answer = await ask(Check(kind="proxy", proxy_name="p0"))
    assert answer.exists is None and "malformed" in answer.error
