"""The emulator's pure parts, without HTTP: operation handlers, the reply cache, fault answers.

The HTTP suites cover these through botocore; here each module is checked on its own, so a
failure names the module and not the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from discovery.emulator.cache import ReplyCache, cache_key
from discovery.emulator.faults import injected_error
from discovery.emulator.fleet import Fault, parse_fleet
from discovery.emulator.operations import HANDLERS
from discovery.emulator.state import CredentialStore, FleetIndex, Identity
from discovery.emulator.wire import ApiError, Reply


@dataclass
class _World:
    index: FleetIndex
    credentials: CredentialStore = field(default_factory=CredentialStore)


@pytest.fixture
def world(small_fleet: dict[str, Any]) -> _World:
    return _World(FleetIndex(parse_fleet(small_fleet)))


def _caller(world: _World, account: str = "111111111111") -> Identity:
    return world.credentials.base_identity("AKIDCALLER", account)


def _call(world: _World, operation: str, params: dict[str, Any], region: str = "us-east-1") -> Any:
    return HANDLERS[operation](world, params, _caller(world), "111111111111", region)


def test_the_table_has_exactly_the_emulated_operations() -> None:
    assert sorted(HANDLERS) == [
        "AssumeRole",
        "DescribeDBProxies",
        "DescribeDBProxyEndpoints",
        "DescribeOrganization",
        "GetCallerIdentity",
        "GetResources",
        "ListAccountsForParent",
        "ListChildren",
        "ListOrganizationalUnitsForParent",
        "ListRegions",
        "ListRoots",
        "ListTagsForResource",
    ]


def test_rds_listing_pages_cover_every_endpoint_once(world: _World) -> None:
    seen: list[tuple[str, str]] = []
    params: dict[str, Any] = {"MaxRecords": "20"}
    while True:
        out = _call(world, "DescribeDBProxyEndpoints", params)
        seen += [(e["DBProxyName"], e["DBProxyEndpointName"]) for e in out["DBProxyEndpoints"]]
        if "Marker" not in out:
            break
        params = {"MaxRecords": "20", "Marker": out["Marker"]}
    assert seen == [
        ("mysql-untagged", "default"),
        ("pg-main", "default"),
        ("pg-main", "ro"),
        ("pg-main", "rw"),
    ]


@pytest.mark.parametrize(
    ("operation", "params", "code", "status"),
    [
        ("DescribeDBProxies", {"MaxRecords": "19"}, "InvalidParameterValue", 400),
        ("DescribeDBProxies", {"Marker": "not-a-token!"}, "InvalidParameterValue", 400),
        ("DescribeDBProxies", {"DBProxyName": "nope"}, "DBProxyNotFoundFault", 404),
        (
            "DescribeDBProxyEndpoints",
            {"DBProxyEndpointName": "nope"},
            "DBProxyEndpointNotFoundFault",
            404,
        ),
        ("ListTagsForResource", {"ResourceName": "arn:aws:rds:x"}, "DBProxyNotFoundFault", 404),
        ("GetResources", {"ResourcesPerPage": 0}, "InvalidParameterException", 400),
        ("GetResources", {"ResourcesPerPage": True}, "InvalidParameterException", 400),
        ("GetResources", {"TagFilters": [{"Values": ["x"]}]}, "InvalidParameterException", 400),
        (
            "AssumeRole",
            {"RoleArn": "arn:aws:iam::111111111111:role/discovery", "RoleSessionName": "s"},
            "ValidationError",
            400,
        ),
        (
            "AssumeRole",
            {
                "RoleArn": "arn:aws:iam::111111111111:role/discovery",
                "RoleSessionName": "sess",
                "ExternalId": "wrong",
            },
            "AccessDenied",
            403,
        ),
    ],
)
def test_handlers_refuse_bad_requests_like_aws(
    world: _World, operation: str, params: dict[str, Any], code: str, status: int
) -> None:
    with pytest.raises(ApiError) as ei:
        _call(world, operation, params)
    assert (ei.value.code, ei.value.status) == (code, status)


def test_get_resources_lists_only_tagged_proxies_of_the_region(world: _World) -> None:
    out = _call(world, "GetResources", {"ResourceTypeFilters": ["rds:db-proxy"]})
    arns = [m["ResourceARN"] for m in out["ResourceTagMappingList"]]
    assert arns == [world.index.region("111111111111", "us-east-1").by_name["pg-main"].arn]
    assert out["PaginationToken"] == ""


def test_assume_role_issues_credentials_the_store_knows(world: _World) -> None:
    out = _call(
        world,
        "AssumeRole",
        {
            "RoleArn": "arn:aws:iam::111111111111:role/discovery",
            "RoleSessionName": "sess",
            "ExternalId": "ext-1",
        },
    )
    issued = world.credentials.lookup(out["Credentials"]["AccessKeyId"])
    assert issued is not None and issued.account == "111111111111"
    assert out["AssumedRoleUser"]["Arn"] == issued.arn


def test_cache_key_normalises_defaults_and_skips_uncached_operations() -> None:
    assert cache_key("DescribeDBProxies", {}) == cache_key(
        "DescribeDBProxies", {"MaxRecords": "100", "Marker": ""}
    )
    assert cache_key("DescribeDBProxies", {"MaxRecords": "20"}) != cache_key(
        "DescribeDBProxies", {}
    )
    assert cache_key("GetResources", {"TagFilters": [], "ResourcesPerPage": 50}) == cache_key(
        "GetResources", {}
    )
    assert cache_key("AssumeRole", {"RoleArn": "x"}) is None
    assert cache_key("GetCallerIdentity", {}) is None


def test_reply_cache_evicts_the_least_recently_used_beyond_its_bytes() -> None:
    cache = ReplyCache(max_bytes=10)
    cache.put("a", Reply(200, {}, "xxxx"))
    cache.put("b", Reply(200, {}, "xxxx"))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", Reply(200, {}, "xxxx"))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    cache.clear()
    assert cache.get("a") is None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 403),
        ("InvalidClientTokenId", 403),
        ("DBProxyNotFoundFault", 404),
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
        ("Throttling", 400),
    ],
)
def test_injected_error_status_follows_the_code(code: str, status: int) -> None:
    ident = Identity("AKID", "111111111111", "arn:aws:iam::111111111111:user/u", "AIDA")
    err = injected_error(Fault(code=code), "rds", "DescribeDBProxies", ident, "111", "eu-west-1")
    assert err.status == status


def test_injected_error_messages() -> None:
    ident = Identity("AKID", "111111111111", "arn:aws:iam::111111111111:user/u", "AIDA")
    denied = injected_error(
        Fault(code="AccessDenied"), "tagging", "GetResources", ident, "111111111111", "us-east-1"
    )
    assert denied.message.startswith(f"User: {ident.arn} is not authorized to perform: ")
    assert "tag:GetResources on resource: *" in denied.message
    assert injected_error(Fault(code="Throttling"), "rds", "X", ident, "1", "r").message == (
        "Rate exceeded"
    )
    own = injected_error(
        Fault(code="Boom", message="mine", status=418), "sts", "AssumeRole", ident, "1", "r"
    )
    assert (own.code, own.message, own.status) == ("Boom", "mine", 418)
