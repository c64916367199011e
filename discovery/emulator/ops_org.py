"""AWS Organizations (JSON 1.1, `AWSOrganizationsV20161128.*`): the organization, its root,
OUs and member accounts, for the management account and delegated administrators only.

ListRoots / ListChildren / ListOrganizationalUnitsForParent / ListAccountsForParent page with
NextToken (`organization.page_size` items per page, or MaxResults when smaller).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .fleet import Account, OrganizationSpec
from .ops_base import Handler, World, page
from .state import Identity
from .wire import ApiError

__all__ = ["HANDLERS"]

_JOINED = datetime(2020, 1, 1, tzinfo=UTC)


def _org(world: World, identity: Identity) -> OrganizationSpec:
    fleet = world.index.fleet
    org = fleet.organization
    if org is None:
        raise ApiError(
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
        )
    allowed = {org.management_account or fleet.caller_account, *org.delegated_admins}
    if identity.account not in allowed:
        raise ApiError(
            "AccessDeniedException",
            "You don't have permissions to access this resource.",
        )
    return org


def _arn(org: OrganizationSpec, manager: str, kind: str, node: str) -> str:
    return f"arn:aws:organizations::{manager}:{kind}/{org.id}/{node}"


def _parent(world: World, org: OrganizationSpec, params: dict[str, Any]) -> str:
    parent = str(params.get("ParentId", ""))
    if parent != org.root_id and parent not in {ou.id for ou in org.ous}:
        raise ApiError(
            "ParentNotFoundException",
            "We can't find a root or OU with the ParentId that you specified.",
        )
    return parent


def _paged(
    items: list[Any], params: dict[str, Any], org: OrganizationSpec
) -> tuple[list[Any], str]:
    size = org.page_size
    requested = params.get("MaxResults")
    if isinstance(requested, int) and not isinstance(requested, bool):
        if not 1 <= requested <= 20:
            raise ApiError("InvalidInputException", "MaxResults must be between 1 and 20")
        size = min(size, requested)

    def bad() -> ApiError:
        return ApiError("InvalidInputException", "The NextToken is not valid")

    keys = [(i,) for i in range(len(items))]
    start, end, token = page(keys, params.get("NextToken"), size, bad)
    return items[start:end], token or ""


def _manager(world: World, org: OrganizationSpec) -> str:
    return org.management_account or world.index.fleet.caller_account


def _account_item(world: World, org: OrganizationSpec, account: Account) -> dict[str, Any]:
    manager = _manager(world, org)
    return {
        "Id": account.id,
        "Arn": f"arn:aws:organizations::{manager}:account/{org.id}/{account.id}",
        "Email": f"aws+{account.id}@example.com",
        "Name": f"account-{account.id}",
        "Status": account.status,
        "JoinedMethod": "CREATED",
        "JoinedTimestamp": _JOINED,
    }


def describe_organization(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    org = _org(world, identity)
    manager = _manager(world, org)
    return {
        "Organization": {
            "Id": org.id,
            "Arn": f"arn:aws:organizations::{manager}:organization/{org.id}",
            "FeatureSet": "ALL",
            "MasterAccountArn": f"arn:aws:organizations::{manager}:account/{org.id}/{manager}",
            "MasterAccountId": manager,
            "MasterAccountEmail": f"aws+{manager}@example.com",
        }
    }


def list_roots(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    org = _org(world, identity)
    root = {
        "Id": org.root_id,
        "Arn": _arn(org, _manager(world, org), "root", org.root_id),
        "Name": "Root",
        "PolicyTypes": [],
    }
    items, token = _paged([root], params, org)
    return {"Roots": items, "NextToken": token}


def list_organizational_units_for_parent(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    org = _org(world, identity)
    parent = _parent(world, org, params)
    manager = _manager(world, org)
    units = [
        {"Id": ou.id, "Arn": _arn(org, manager, "ou", ou.id), "Name": ou.name or ou.id}
        for ou in org.ous
        if ou.parent == parent
    ]
    items, token = _paged(units, params, org)
    return {"OrganizationalUnits": items, "NextToken": token}


def list_accounts_for_parent(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    org = _org(world, identity)
    parent = _parent(world, org, params)
    members = [_account_item(world, org, a) for a in world.index.fleet.accounts if a.ou == parent]
    items, token = _paged(members, params, org)
    return {"Accounts": items, "NextToken": token}


def list_children(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    org = _org(world, identity)
    parent = _parent(world, org, params)
    kind = str(params.get("ChildType", ""))
    if kind == "ACCOUNT":
        children = [a.id for a in world.index.fleet.accounts if a.ou == parent]
    elif kind == "ORGANIZATIONAL_UNIT":
        children = [ou.id for ou in org.ous if ou.parent == parent]
    else:
        raise ApiError("InvalidInputException", "ChildType must be ACCOUNT or ORGANIZATIONAL_UNIT")
    items, token = _paged([{"Id": c, "Type": kind} for c in children], params, org)
    return {"Children": items, "NextToken": token}


HANDLERS: dict[str, Handler] = {
    "DescribeOrganization": describe_organization,
    "ListRoots": list_roots,
    "ListOrganizationalUnitsForParent": list_organizational_units_for_parent,
    "ListAccountsForParent": list_accounts_for_parent,
    "ListChildren": list_children,
}
