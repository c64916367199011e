"""Doctor: each organization matcher's account listing answers (the same walk a cycle makes).

Member accounts are not assumed here (an organization may hold a thousand): a scan reports a
member account whose role cannot be assumed as its own failed scope, with the fix.
"""

from __future__ import annotations

from discovery.aws.calls import FetchError
from discovery.aws.clients import AWSClients, home_region
from discovery.aws.organizations import list_organization
from discovery.core.config import Config
from discovery.core.organization import ACTIVE
from discovery.ops.diagnosis import Check, Status, failure

LISTING_FIX = (
    "list the organization from its management or delegated-admin account: grant "
    "organizations:DescribeOrganization, ListRoots, ListOrganizationalUnitsForParent and "
    "ListAccountsForParent (see `discovery print-iam`), or set aws[{index}].organization_role_arn "
    "to a role there; check aws[{index}].organization.id"
)


async def check_organizations(aws: AWSClients, config: Config) -> list[Check]:
    checks: list[Check] = []
    for index, matcher in enumerate(config.aws):
        match = matcher.organization
        if match is None:
            continue
        who = matcher.organization_role_arn or "base credentials"
        subject = f"aws[{index}] {match.id} as {who}"
        try:
            client = await aws.client(
                matcher.organization_role_arn, "", "organizations", home_region()
            )
            accounts = await list_organization(aws.caller, client, match)
        except FetchError as exc:
            checks.append(
                failure(
                    "organization",
                    subject,
                    str(exc),
                    "organization-listing-failed",
                    LISTING_FIX.format(index=index),
                )
            )
            continue
        active = sum(1 for a in accounts if a.status == ACTIVE)
        checks.append(
            Check(
                check="organization",
                status=Status.OK,
                subject=subject,
                detail=(
                    f"{len(accounts)} account(s) in scope, {active} ACTIVE; each is reached "
                    f"through role {matcher.assume_role_name!r} at scan time"
                ),
            )
        )
    return checks
