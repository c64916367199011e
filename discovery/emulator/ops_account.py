"""AWS Account Management (REST-JSON, `POST /listRegions`): each account's regions and their
opt-in status, filtered by RegionOptStatusContains, paged with NextToken."""

from __future__ import annotations

from typing import Any

from .ops_base import Handler, World, page
from .state import Identity
from .wire import ApiError

__all__ = ["HANDLERS", "PATHS"]

# REST-JSON request path → operation (the dispatcher reads the operation from the path).
PATHS = {"/listRegions": "ListRegions"}


def list_regions(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    target = str(params.get("AccountId") or identity.account)
    found = world.index.fleet.account(target)
    if found is None and target != identity.account:
        raise ApiError("AccessDeniedException", f"You do not have access to account {target}", 403)
    statuses = params.get("RegionOptStatusContains") or []
    if not isinstance(statuses, list):
        raise ApiError("ValidationException", "RegionOptStatusContains must be a list")
    listed = [(r, "ENABLED_BY_DEFAULT") for r in found.listed_regions] if found else []
    listed += [(r, "DISABLED") for r in found.disabled_regions] if found else []
    listed.sort()
    if statuses:
        listed = [(r, s) for r, s in listed if s in statuses]
    size = params.get("MaxResults", 20)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 50:
        raise ApiError("ValidationException", "MaxResults must be between 1 and 50")
    org = world.index.fleet.organization
    if org is not None:
        size = min(size, org.page_size)  # a small organization page size pages this too

    def bad() -> ApiError:
        return ApiError("ValidationException", "The NextToken is not valid")

    keys = [(r,) for r, _ in listed]
    start, end, token = page(keys, params.get("NextToken"), size, bad)
    return {
        "Regions": [{"RegionName": r, "RegionOptStatus": s} for r, s in listed[start:end]],
        "NextToken": token or "",
    }


HANDLERS: dict[str, Handler] = {"ListRegions": list_regions}
