"""The call wrapper and paging on their own: fake SDK methods, no network.

The emulator cannot repeat a page token or drop a result key, so these guards are checked
here with methods that answer exactly that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from discovery.aws.calls import Caller, ErrorKind, FetchError, error_kind, explain
from discovery.aws.rds_calls import tags_of


def answers(*pages: dict[str, Any]) -> tuple[Callable[..., Awaitable[Any]], list[dict[str, Any]]]:
    """A fake SDK method returning `pages` in turn (the last one again and again)."""
    asked: list[dict[str, Any]] = []

    async def method(**params: Any) -> dict[str, Any]:
        asked.append(params)
        return pages[min(len(asked), len(pages)) - 1]

    return method, asked


def fails(exc: BaseException) -> Callable[..., Awaitable[Any]]:
    async def method(**params: Any) -> Any:
        raise exc

    return method


def client_error(code: str, operation: str = "DescribeDBProxies") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, operation)


async def test_pages_follows_the_token_until_there_is_none() -> None:
    method, asked = answers(
        {"Items": [1], "Marker": "a"}, {"Items": [2], "Marker": "b"}, {"Items": [3]}
    )
    items = await Caller(max_concurrency=1).pages(
        "rds:DescribeDBProxies", method, "Items", "Marker", "Marker", MaxRecords=100
    )
    assert items == [1, 2, 3]
    assert asked == [
        {"MaxRecords": 100},
        {"MaxRecords": 100, "Marker": "a"},
        {"MaxRecords": 100, "Marker": "b"},
    ]


async def test_a_repeated_token_fails_instead_of_looping() -> None:
    method, asked = answers({"Items": [1], "Marker": "a"}, {"Items": [2], "Marker": "a"})
    with pytest.raises(FetchError) as err:
        await Caller(max_concurrency=1).pages(
            "rds:DescribeDBProxies", method, "Items", "Marker", "Marker"
        )
    assert str(err.value) == "rds:DescribeDBProxies: AWS returned the same page token twice ('a')"
    assert (err.value.action, err.value.code, err.value.kind) == (
        "rds:DescribeDBProxies",
        "",
        ErrorKind.MALFORMED,
    )
    assert len(asked) == 2


async def test_a_page_without_its_result_key_is_not_read_as_the_end() -> None:
    method, _ = answers({"Items": [1], "Marker": "a"}, {})
    with pytest.raises(FetchError, match=r"malformed response \(no Items\)") as err:
        await Caller(max_concurrency=1).pages(
            "tag:GetResources", method, "Items", "Marker", "Marker"
        )
    assert err.value.kind is ErrorKind.MALFORMED


@pytest.mark.parametrize(
    ("code", "kind", "outcome", "fix"),
    [
        ("AccessDenied", ErrorKind.DENIED, "denied", "grant rds:DescribeDBProxies to the identity"),
        ("Throttling", ErrorKind.THROTTLED, "throttled", "lower concurrency"),
        ("ExpiredToken", ErrorKind.CREDENTIALS_REJECTED, "error", "refresh them"),
        ("InternalFailure", ErrorKind.ERROR, "error", ""),
        # A confirming read's answer that the proxy is gone: counted apart from errors.
        ("DBProxyNotFoundFault", ErrorKind.NOT_FOUND, "not-found", ""),
    ],
)
async def test_an_aws_error_keeps_its_action_code_kind_and_cause(
    code: str, kind: ErrorKind, outcome: str, fix: str
) -> None:
    seen: list[tuple[str, str, int]] = []
    cause = client_error(code)
    with pytest.raises(FetchError) as err:
        await Caller(max_concurrency=1, on_call=lambda *a: seen.append(a)).call(
            "rds:DescribeDBProxies", fails(cause)
        )
    assert (err.value.action, err.value.code, err.value.kind) == (
        "rds:DescribeDBProxies",
        code,
        kind,
    )
    assert err.value.__cause__ is cause
    assert str(err.value).startswith(f"rds:DescribeDBProxies failed: {code}: no")
    assert fix in str(err.value)
    assert seen == [("DescribeDBProxies", outcome, 0)]


async def test_an_unreachable_endpoint_is_its_own_kind() -> None:
    cause = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(FetchError) as err:
        await Caller(max_concurrency=1).call("rds:DescribeDBProxies", fails(cause))
    assert err.value.kind is ErrorKind.UNREACHABLE
    assert err.value.__cause__ is cause


def test_assume_role_denied_names_the_trust_policy() -> None:
    text = explain("sts:AssumeRole", "AccessDenied", "not authorized")
    assert "trust policy" in text and "external_id" in text
    assert error_kind("SignatureDoesNotMatch") is ErrorKind.CREDENTIALS_REJECTED
    assert error_kind("NoSuchThing") is ErrorKind.ERROR


async def test_a_tags_answer_without_its_tag_list_fails_instead_of_reading_as_untagged() -> None:
    empty, _ = answers({})  # what botocore makes of a truncated JSON body
    rds = SimpleNamespace(list_tags_for_resource=empty)
    with pytest.raises(FetchError, match="no TagList") as raised:
        await tags_of(Caller(max_concurrency=1), rds, "arn:aws:rds:us-east-1:1:db-proxy:prx-a")
    assert raised.value.kind is ErrorKind.MALFORMED
    tagged, _ = answers({"TagList": [{"Key": "env", "Value": "prod"}, {"Key": "bare"}]})
    rds = SimpleNamespace(list_tags_for_resource=tagged)
    assert await tags_of(Caller(max_concurrency=1), rds, "arn") == {"env": "prod", "bare": ""}
