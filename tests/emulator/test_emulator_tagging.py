"""Resource Groups Tagging API: GetResources for rds:db-proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from discovery.emulator import EmulatorThread, generate_fleet


def test_get_resources_pages_everything_exactly_once(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    emulator.set_fleet(
        generate_fleet(proxies_per_region=230, endpoints_per_proxy=0, caller_account="111111111111")
    )
    tagging = client("resourcegroupstaggingapi")
    pages = list(
        tagging.get_paginator("get_resources").paginate(
            ResourceTypeFilters=["rds:db-proxy"], ResourcesPerPage=100
        )
    )
    assert [len(p["ResourceTagMappingList"]) for p in pages] == [100, 100, 30]
    assert pages[-1]["PaginationToken"] == ""
    arns = [m["ResourceARN"] for p in pages for m in p["ResourceTagMappingList"]]
    assert len(arns) == 230 == len(set(arns))
    proxies = {
        p["DBProxyArn"]: p["DBProxyName"]
        for page in client("rds").get_paginator("describe_db_proxies").paginate()
        for p in page["DBProxies"]
    }
    assert set(arns) == set(proxies)
    first = pages[0]["ResourceTagMappingList"][0]
    assert first["Tags"] == [
        {"Key": "env", "Value": "bench"},
        {"Key": "team", "Value": "platform"},
        {"Key": "index", "Value": "0"},
    ]
    # The default page size is 50.
    assert len(tagging.get_resources()["ResourceTagMappingList"]) == 50


def test_only_tagged_proxies_and_only_proxy_type(client: Callable[..., Any]) -> None:
    sts = client("sts")
    creds = sts.assume_role(
        RoleArn="arn:aws:iam::111111111111:role/discovery",
        RoleSessionName="tags",
        ExternalId="ext-1",
    )["Credentials"]
    tagging = client("resourcegroupstaggingapi", creds=creds)
    got = tagging.get_resources(ResourceTypeFilters=["rds:db-proxy"])
    mappings = got["ResourceTagMappingList"]
    assert len(mappings) == 1  # mysql-untagged has no tags and is not listed
    assert mappings[0]["ResourceARN"].startswith("arn:aws:rds:us-east-1:111111111111:db-proxy:prx-")
    assert mappings[0]["Tags"] == [
        {"Key": "env", "Value": "prod"},
        {"Key": "bad key!", "Value": "x"},
    ]
    assert got["PaginationToken"] == ""
    assert (
        tagging.get_resources(ResourceTypeFilters=["ec2:instance"])["ResourceTagMappingList"] == []
    )
    assert len(tagging.get_resources()["ResourceTagMappingList"]) == 1
    filtered = tagging.get_resources(TagFilters=[{"Key": "env", "Values": ["dev"]}])
    assert filtered["ResourceTagMappingList"] == []
    eu = client("resourcegroupstaggingapi", region="eu-west-1", creds=creds)
    eu_map = eu.get_resources(ResourceTypeFilters=["rds:db-proxy"])["ResourceTagMappingList"]
    assert [m["Tags"] for m in eu_map] == [[{"Key": "env", "Value": "dev"}]]
    # The base caller's account (000000000000) has no proxies.
    base = client("resourcegroupstaggingapi").get_resources(ResourceTypeFilters=["rds:db-proxy"])
    assert base["ResourceTagMappingList"] == []


@pytest.mark.parametrize("bad", [0, 101])
def test_resources_per_page_out_of_range(client: Callable[..., Any], bad: int) -> None:
    tagging = client("resourcegroupstaggingapi", parameter_validation=False)
    with pytest.raises(ClientError) as ei:
        tagging.get_resources(ResourcesPerPage=bad)
    assert ei.value.response["Error"]["Code"] == "InvalidParameterException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_invalid_pagination_token(client: Callable[..., Any]) -> None:
    with pytest.raises(ClientError) as ei:
        client("resourcegroupstaggingapi").get_resources(PaginationToken="%%%")
    assert ei.value.response["Error"]["Code"] == "InvalidParameterException"


def test_a_proxy_out_of_the_tagging_index_is_left_out_of_get_resources_only(
    emulator: EmulatorThread, client: Callable[..., Any]
) -> None:
    """`in_tagging_index: false` makes GetResources omit a tagged proxy (a lagging index),
    while RDS still lists it and ListTagsForResource still gives its tags."""
    fleet = {
        "caller_account": "111111111111",
        "accounts": [
            {
                "id": "111111111111",
                "regions": {
                    "us-east-1": {
                        "proxies": [
                            {"name": "seen", "tags": {"env": "prod"}},
                            {"name": "lagging", "tags": {"env": "prod"}, "in_tagging_index": False},
                        ]
                    }
                },
            }
        ],
    }
    emulator.set_fleet(fleet)
    tagging = client("resourcegroupstaggingapi")
    mappings = tagging.get_resources(ResourceTypeFilters=["rds:db-proxy"])["ResourceTagMappingList"]
    rds = client("rds")
    arns = {p["DBProxyName"]: p["DBProxyArn"] for p in rds.describe_db_proxies()["DBProxies"]}
    assert set(arns) == {"seen", "lagging"}
    assert [m["ResourceARN"] for m in mappings] == [arns["seen"]]
    tags = rds.list_tags_for_resource(ResourceName=arns["lagging"])["TagList"]
    assert tags == [{"Key": "env", "Value": "prod"}]
