"""Organizations (JSON 1.1) and account:ListRegions (REST-JSON) through real boto3 clients:
the tree, paging, statuses, who may list, the region filter, and faults per operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from discovery.emulator import EmulatorThread

ORG_FLEET: dict[str, Any] = {
    "caller_account": "000000000000",
    "organization": {
        "id": "o-exampleorg01",
        "root_id": "r-root",
        "page_size": 2,
        "ous": [
            {"id": "ou-root-prod0001", "name": "prod", "parent": "r-root"},
            {"id": "ou-root-team0001", "name": "team", "parent": "ou-root-prod0001"},
        ],
    },
    "accounts": [
        {"id": "111111111111", "ou": "r-root", "regions": {"us-east-1": {}}},
        {"id": "222222222222", "ou": "ou-root-prod0001", "status": "SUSPENDED"},
        {"id": "333333333333", "ou": "ou-root-prod0001"},
        {"id": "444444444444", "ou": "ou-root-prod0001"},
        {
            "id": "555555555555",
            "ou": "ou-root-team0001",
            "enabled_regions": ["eu-west-1", "us-east-1", "us-west-2"],
            "disabled_regions": ["ap-east-1"],
        },
        {"id": "666666666666"},  # not a member
    ],
}


@pytest.fixture
def org(emulator: EmulatorThread) -> EmulatorThread:
    emulator.set_fleet(ORG_FLEET)
    return emulator


def _all(client: Any, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    return [
        item for page in client.get_paginator(operation).paginate(**params) for item in page[key]
    ]


def test_describe_organization_and_root(org: EmulatorThread, client: Callable[..., Any]) -> None:
    orgs = client("organizations")
    described = orgs.describe_organization()["Organization"]
    assert described["Id"] == "o-exampleorg01"
    assert described["MasterAccountId"] == "000000000000"
    roots = orgs.list_roots()["Roots"]
    assert [r["Id"] for r in roots] == ["r-root"]


def test_tree_is_listed_page_by_page(org: EmulatorThread, client: Callable[..., Any]) -> None:
    orgs = client("organizations")
    first = orgs.list_accounts_for_parent(ParentId="ou-root-prod0001")
    assert len(first["Accounts"]) == 2 and first["NextToken"]  # page_size 2: a second page
    accounts = _all(orgs, "list_accounts_for_parent", "Accounts", ParentId="ou-root-prod0001")
    assert [(a["Id"], a["Status"]) for a in accounts] == [
        ("222222222222", "SUSPENDED"),
        ("333333333333", "ACTIVE"),
        ("444444444444", "ACTIVE"),
    ]
    units = _all(
        orgs, "list_organizational_units_for_parent", "OrganizationalUnits", ParentId="r-root"
    )
    assert [u["Id"] for u in units] == ["ou-root-prod0001"]
    children = _all(
        orgs,
        "list_children",
        "Children",
        ParentId="ou-root-prod0001",
        ChildType="ORGANIZATIONAL_UNIT",
    )
    assert children == [{"Id": "ou-root-team0001", "Type": "ORGANIZATIONAL_UNIT"}]
    with pytest.raises(ClientError) as err:
        orgs.list_accounts_for_parent(ParentId="ou-root-nope0001")
    assert err.value.response["Error"]["Code"] == "ParentNotFoundException"


def test_only_the_management_account_may_list(
    org: EmulatorThread, client: Callable[..., Any]
) -> None:
    org.set_fleet(
        {
            **ORG_FLEET,
            "organization": {**ORG_FLEET["organization"], "management_account": "999999999999"},
        }
    )
    with pytest.raises(ClientError) as err:
        client("organizations").list_roots()
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"


def test_list_regions_filters_by_opt_status(
    org: EmulatorThread, client: Callable[..., Any]
) -> None:
    account = client("account")
    enabled = _all(
        account,
        "list_regions",
        "Regions",
        AccountId="555555555555",
        RegionOptStatusContains=["ENABLED", "ENABLED_BY_DEFAULT"],
        PaginationConfig={"PageSize": 2},
    )
    assert [r["RegionName"] for r in enabled] == ["eu-west-1", "us-east-1", "us-west-2"]
    everything = account.list_regions(AccountId="555555555555")["Regions"]
    assert {"RegionName": "ap-east-1", "RegionOptStatus": "DISABLED"} in everything
    # Without AccountId: the caller's own account (the base caller has no regions here).
    assert account.list_regions()["Regions"] == []


def test_faults_hit_one_operation(org: EmulatorThread, client: Callable[..., Any]) -> None:
    org.set_faults([{"operation": "ListAccountsForParent", "code": "AccessDeniedException"}])
    orgs = client("organizations")
    assert orgs.list_roots()["Roots"]
    with pytest.raises(ClientError) as err:
        orgs.list_accounts_for_parent(ParentId="r-root")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    org.set_faults(
        [
            {
                "operation": "ListRegions",
                "account": "000000000000",
                "code": "InternalServerException",
                "status": 500,
            }
        ]
    )
    with pytest.raises(ClientError) as err:
        client("account").list_regions()
    assert err.value.response["Error"]["Code"] == "InternalServerException"
