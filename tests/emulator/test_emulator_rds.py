"""RDS: DescribeDBProxies, DescribeDBProxyEndpoints, ListTagsForResource with real clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from discovery.emulator import EmulatorThread, generate_fleet


def _big(n: int, endpoints: int = 2) -> Any:
    return generate_fleet(
        regions=["us-east-1"],
        proxies_per_region=n,
        endpoints_per_proxy=endpoints,
        caller_account="111111111111",
    )


@pytest.mark.parametrize("page_size", [20, 100])
def test_describe_db_proxies_pages_everything_exactly_once(
    emulator: EmulatorThread, client: Callable[..., Any], page_size: int
) -> None:
    emulator.set_fleet(_big(257))
    rds = client("rds")
    names: list[str] = []
    pages = 0
    marker = None
    while True:
        kwargs: dict[str, Any] = {"MaxRecords": page_size}
        if marker:
            kwargs["Marker"] = marker
        resp = rds.describe_db_proxies(**kwargs)
        pages += 1
        assert len(resp["DBProxies"]) <= page_size
        names += [p["DBProxyName"] for p in resp["DBProxies"]]
        marker = resp.get("Marker")
        if not marker:
            break
    assert len(names) == 257 == len(set(names))
    assert names == sorted(names)
    assert pages == -(-257 // page_size)


def test_paginator_endpoints_everything_exactly_once(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    emulator.set_fleet(_big(120, endpoints=2))
    rds = client("rds")
    seen = [
        (e["DBProxyName"], e["DBProxyEndpointName"])
        for page in rds.get_paginator("describe_db_proxy_endpoints").paginate(
            PaginationConfig={"PageSize": 20}
        )
        for e in page["DBProxyEndpoints"]
    ]
    assert len(seen) == 120 * 3 == len(set(seen))  # default + 2 custom per proxy
    defaults = [s for s in seen if s[1] == "default"]
    assert len(defaults) == 120


@pytest.mark.parametrize("bad", [19, 101, 0])
def test_max_records_out_of_range(client: Callable[..., Any], bad: int) -> None:
    with pytest.raises(ClientError) as ei:
        client("rds", parameter_validation=False).describe_db_proxies(MaxRecords=bad)
    assert ei.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_invalid_marker(client: Callable[..., Any]) -> None:
    with pytest.raises(ClientError) as ei:
        client("rds").describe_db_proxies(Marker="!!not-a-marker!!")
    assert ei.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_proxy_fields(emulator: EmulatorThread, client: Callable[..., Any]) -> None:
    proxies = client("rds").describe_db_proxies()["DBProxies"]
    assert [p["DBProxyName"] for p in proxies] == []  # the base caller's account has none
    emulator.set_fleet(
        {
            "caller_account": "111111111111",
            "accounts": [
                {
                    "id": "111111111111",
                    "regions": {
                        "us-east-1": {
                            "proxies": [
                                {
                                    "name": "pg-main",
                                    "engine_family": "WEIRD-ENGINE",
                                    "status": "strange",
                                    "require_tls": False,
                                    "vpc_id": "vpc-1",
                                    "resource_id": "prx-0123abcd",
                                    "endpoint": "custom.example.com",
                                    "extra": {"DebugLogging": True, "IdleClientTimeout": None},
                                },
                                {"name": "b-proxy"},
                            ]
                        }
                    },
                }
            ],
        }
    )
    proxies = client("rds").describe_db_proxies()["DBProxies"]
    assert [p["DBProxyName"] for p in proxies] == ["b-proxy", "pg-main"]
    b, p = proxies
    assert p["DBProxyArn"] == "arn:aws:rds:us-east-1:111111111111:db-proxy:prx-0123abcd"
    assert p["EngineFamily"] == "WEIRD-ENGINE"
    assert p["Status"] == "strange"
    assert p["RequireTLS"] is False
    assert p["VpcId"] == "vpc-1"
    assert p["Endpoint"] == "custom.example.com"
    assert p["DebugLogging"] is True
    assert "IdleClientTimeout" not in p
    # One secret-based auth entry; IAM authentication REQUIRED unless the fleet says otherwise.
    assert p["Auth"] == [
        {
            "AuthScheme": "SECRETS",
            "SecretArn": "arn:aws:secretsmanager:us-east-1:111111111111:secret:pg-main",
            "IAMAuth": "REQUIRED",
        }
    ]
    for key in ("VpcSecurityGroupIds", "VpcSubnetIds", "RoleArn", "CreatedDate", "UpdatedDate"):
        assert key in b
    assert b["RequireTLS"] is True
    assert b["Status"] == "available"
    assert b["EngineFamily"] == "POSTGRESQL"
    assert b["IdleClientTimeout"] == 1800
    assert b["DBProxyArn"].startswith("arn:aws:rds:us-east-1:111111111111:db-proxy:prx-")
    assert b["Endpoint"].startswith("b-proxy.proxy-")
    assert b["Endpoint"].endswith(".us-east-1.rds.amazonaws.com")
    # Deterministic across calls and fleet reloads.
    emulator.set_fleet(emulator.emulator.fleet.model_dump())
    assert client("rds").describe_db_proxies()["DBProxies"] == proxies


def test_filter_by_name_and_not_found(emulator: EmulatorThread, client: Callable[..., Any]) -> None:
    emulator.set_fleet(_big(30))
    rds = client("rds")
    got = rds.describe_db_proxies(DBProxyName="proxy-00007")["DBProxies"]
    assert [p["DBProxyName"] for p in got] == ["proxy-00007"]
    with pytest.raises(ClientError) as ei:
        rds.describe_db_proxies(DBProxyName="nope")
    assert ei.value.response["Error"]["Code"] == "DBProxyNotFoundFault"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_endpoints_filters(emulator: EmulatorThread, client: Callable[..., Any]) -> None:
    rds = client("rds")
    assert rds.describe_db_proxy_endpoints()["DBProxyEndpoints"] == []
    creds = _assume(client, "111111111111", "discovery", "ext-1")
    rds = client("rds", creds=creds)
    eps = rds.describe_db_proxy_endpoints(DBProxyName="pg-main")["DBProxyEndpoints"]
    assert [(e["DBProxyEndpointName"], e["IsDefault"]) for e in eps] == [
        ("default", True),
        ("ro", False),
        ("rw", False),
    ]
    default, ro, rw = eps
    proxy = rds.describe_db_proxies(DBProxyName="pg-main")["DBProxies"][0]
    assert default["Endpoint"] == proxy["Endpoint"]
    assert default["TargetRole"] == "READ_WRITE"
    assert ro["TargetRole"] == "READ_ONLY"
    assert rw["Status"] == "creating"
    assert ro["Endpoint"].startswith("ro.endpoint.proxy-")
    assert ro["DBProxyEndpointArn"].startswith(
        "arn:aws:rds:us-east-1:111111111111:db-proxy-endpoint:prx-endpoint-"
    )
    for key in ("VpcId", "VpcSubnetIds", "VpcSecurityGroupIds", "CreatedDate", "DBProxyName"):
        assert key in ro
    all_eps = rds.describe_db_proxy_endpoints()["DBProxyEndpoints"]
    assert {e["DBProxyName"] for e in all_eps} == {"pg-main", "mysql-untagged"}
    only = rds.describe_db_proxy_endpoints(DBProxyEndpointName="ro")["DBProxyEndpoints"]
    assert [e["DBProxyEndpointName"] for e in only] == ["ro"]
    with pytest.raises(ClientError) as ei:
        rds.describe_db_proxy_endpoints(DBProxyName="missing")
    assert ei.value.response["Error"]["Code"] == "DBProxyNotFoundFault"
    with pytest.raises(ClientError) as ei:
        rds.describe_db_proxy_endpoints(DBProxyEndpointName="missing")
    assert ei.value.response["Error"]["Code"] == "DBProxyEndpointNotFoundFault"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_region_without_entry_is_empty(client: Callable[..., Any]) -> None:
    creds = _assume(client, "111111111111", "discovery", "ext-1")
    rds = client("rds", region="ap-southeast-2", creds=creds)
    assert rds.describe_db_proxies()["DBProxies"] == []
    assert rds.describe_db_proxy_endpoints()["DBProxyEndpoints"] == []
    eu = client("rds", region="eu-west-1", creds=creds)
    assert [p["DBProxyName"] for p in eu.describe_db_proxies()["DBProxies"]] == ["eu-pg"]


def test_list_tags_for_resource(client: Callable[..., Any]) -> None:
    creds = _assume(client, "111111111111", "discovery", "ext-1")
    rds = client("rds", creds=creds)
    proxies = {p["DBProxyName"]: p for p in rds.describe_db_proxies()["DBProxies"]}
    tags = rds.list_tags_for_resource(ResourceName=proxies["pg-main"]["DBProxyArn"])["TagList"]
    assert tags == [{"Key": "env", "Value": "prod"}, {"Key": "bad key!", "Value": "x"}]
    arn = proxies["mysql-untagged"]["DBProxyArn"]
    assert rds.list_tags_for_resource(ResourceName=arn)["TagList"] == []
    for bad in ("arn:aws:rds:us-east-1:111111111111:db-proxy:prx-missing", "garbage"):
        with pytest.raises(ClientError) as ei:
            rds.list_tags_for_resource(ResourceName=bad)
        assert ei.value.response["Error"]["Code"] == "DBProxyNotFoundFault"
    # Another region, or another account's credentials, do not see the proxy.
    with pytest.raises(ClientError):
        client("rds", region="eu-west-1", creds=creds).list_tags_for_resource(
            ResourceName=proxies["pg-main"]["DBProxyArn"]
        )
    with pytest.raises(ClientError):
        client("rds").list_tags_for_resource(ResourceName=proxies["pg-main"]["DBProxyArn"])


def _assume(client: Callable[..., Any], account: str, role: str, ext: str | None) -> Any:
    kwargs: dict[str, Any] = {
        "RoleArn": f"arn:aws:iam::{account}:role/{role}",
        "RoleSessionName": "test",
    }
    if ext is not None:
        kwargs["ExternalId"] = ext
    return client("sts").assume_role(**kwargs)["Credentials"]


def test_answers_follow_fleet_changes_and_warm_cache(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    emulator.set_fleet(_big(130, endpoints=1))
    rds = client("rds")

    def listing() -> list[Any]:
        return [
            p
            for page in rds.get_paginator("describe_db_proxies").paginate(
                PaginationConfig={"PageSize": 100}
            )
            for p in page["DBProxies"]
        ]

    cold = listing()
    # Pages: 2 + 3 (260 endpoints) + 2 (GetResources) for the only account-region.
    assert emulator.warm() == 7
    assert listing() == cold == listing()
    fleet = _big(130, endpoints=1)
    fleet.accounts[0].regions["us-east-1"].proxies[0].status = "deleting"
    emulator.set_fleet(fleet)
    assert listing()[0]["Status"] == "deleting"
    assert [p["DBProxyName"] for p in listing()] == [p["DBProxyName"] for p in cold]


def test_a_not_found_answer_is_counted_apart_from_errors(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    """A named read of a missing proxy is an answer (`not-found`); an injected fault with the
    same code stays an `error`, so tests can tell a confirming read from a failure."""
    rds = client("rds")
    emulator.reset_stats()
    with pytest.raises(ClientError):
        rds.describe_db_proxies(DBProxyName="nope")
    emulator.set_faults([{"operation": "DescribeDBProxies", "code": "DBProxyNotFoundFault"}])
    with pytest.raises(ClientError):
        rds.describe_db_proxies()
    by_op = emulator.stats()["by_operation"]["DescribeDBProxies"]
    assert by_op == {"ok": 0, "error": 1, "throttled": 0, "not-found": 1}
