"""The IAM policies this service needs, derived from the config (pure).

Least privilege, computed from the matchers (pure): the service's own identity gets the read
actions only for the regions it scans with its own credentials, and `sts:AssumeRole` on exactly
the configured roles; each assumed role gets the read actions for its regions and a trust policy
that names the service's identity and, when an external id is set, requires it
(`sts:ExternalId`). The Teleport Database Service's side (`ops.iam_dbservice`) is in the same
plan: each role registered as `spec.aws.assume_role_arn` also gets `rds-db:connect` and trusts
the Database Service's identity, which gets `sts:AssumeRole` on those roles. Putting a policy
on a role (the I/O step) is `ops.iam_bootstrap`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from discovery.core.config import Config
from discovery.core.model import Resource
from discovery.ops.iam_dbservice import (
    ASSUME_SID,
    CONNECT_SID,
    DB_SERVICE_PLACEHOLDER,
    ConnectionRole,
    connect_statement,
    connection_roles,
    trust_statement,
)

POLICY_VERSION = "2012-10-17"
DEFAULT_POLICY_NAME = "rdsproxy-discovery"
# What `print-iam` writes when the caller did not say who the service runs as.
PRINCIPAL_PLACEHOLDER = "arn:aws:iam::ACCOUNT_ID:role/DISCOVERY_SERVICE_ROLE"
# What a trust policy's "AWS" principal may name: a role or user ARN, an account's root ARN,
# or a bare 12-digit account ID (IAM's own forms; a typo would otherwise be printed and only
# fail when the policy is saved).
PRINCIPAL_RE = re.compile(
    r"^(?:\d{12}|arn:aws(?:-cn|-us-gov)?:iam::\d{12}:(?:root|(?:role|user)/[\w+=,.@/-]{1,512}))$"
)


def principal_problem(principal: str) -> str:
    """Why `principal` cannot name the service in a trust policy, or "" when it can."""
    if principal == PRINCIPAL_PLACEHOLDER or PRINCIPAL_RE.match(principal):
        return ""
    return (
        f"{principal!r} is not an IAM principal ARN; pass the role or user the service runs "
        "as, e.g. arn:aws:iam::123456789012:role/discovery (or arn:aws:iam::123456789012:root)"
    )


READ_ACTIONS = (
    "rds:DescribeDBProxies",
    "rds:DescribeDBProxyEndpoints",
    "rds:ListTagsForResource",
    "tag:GetResources",
)
# Listing an organization's accounts (management or delegated-admin account).
ORGANIZATION_ACTIONS = (
    "organizations:DescribeOrganization",
    "organizations:ListAccountsForParent",
    "organizations:ListChildren",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListRoots",
)
# regions: ["*"]: the account's enabled regions (a global API: no region condition).
LIST_REGIONS_ACTION = "account:ListRegions"


class IAMError(Exception):
    """Bootstrap failed; the message names the fix."""


def read_statement(regions: tuple[str, ...]) -> dict[str, Any]:
    """The read actions, limited to the regions scanned (these actions take no narrower ARN:
    tag:GetResources only accepts "*"); `["*"]` (every enabled region): no region condition."""
    statement: dict[str, Any] = {
        "Sid": "RDSProxyDiscoveryRead",
        "Effect": "Allow",
        "Action": list(READ_ACTIONS),
        "Resource": "*",
    }
    if "*" not in regions:
        statement["Condition"] = {"StringEquals": {"aws:RequestedRegion": sorted(set(regions))}}
    return statement


def read_statements(regions: tuple[str, ...]) -> list[dict[str, Any]]:
    """The read statement, plus account:ListRegions when the regions are `["*"]`."""
    out = [read_statement(regions)]
    if "*" in regions:
        out.append(
            {
                "Sid": "RDSProxyDiscoveryListRegions",
                "Effect": "Allow",
                "Action": LIST_REGIONS_ACTION,
                "Resource": "*",
            }
        )
    return out


def organization_statement() -> dict[str, Any]:
    return {
        "Sid": "RDSProxyDiscoveryListOrganization",
        "Effect": "Allow",
        "Action": list(ORGANIZATION_ACTIONS),
        "Resource": "*",
    }


def assume_statement(role_arns: tuple[str, ...]) -> dict[str, Any]:
    return {
        "Sid": "RDSProxyDiscoveryAssumeRoles",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": sorted(set(role_arns)),
    }


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": list(statements)}


@dataclass(frozen=True, kw_only=True)
class RolePolicies:
    """One assumed role: what it may do, and whom it trusts (with which external id)."""

    role_arn: str
    external_ids: tuple[str, ...]
    regions: tuple[str, ...]
    permissions_policy: dict[str, Any]
    trust_policy: dict[str, Any]
    # As a connection role (registered `spec.aws.assume_role_arn`): what it may connect to.
    connect_resources: tuple[str, ...] = ()
    db_external_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "role_arn": self.role_arn,
            "external_ids": list(self.external_ids),
            "regions": list(self.regions),
            "connect_resources": list(self.connect_resources),
            "db_external_ids": list(self.db_external_ids),
            "permissions_policy": self.permissions_policy,
            "trust_policy": self.trust_policy,
        }


@dataclass(frozen=True, kw_only=True)
class IAMPlan:
    """Every policy a config needs: the service identity's, then one set per assumed role."""

    principal: str
    identity_policy: dict[str, Any]
    roles: tuple[RolePolicies, ...]
    notes: tuple[str, ...] = field(default=())
    db_service_principal: str = DB_SERVICE_PLACEHOLDER
    db_service_policy: dict[str, Any] = field(default_factory=dict)

    def role(self, role_arn: str) -> RolePolicies | None:
        """The policies of `role_arn`; an organization's member role (`arn:aws:iam::*:role/N`)
        stands for role N in every account."""
        for role in self.roles:
            if role.role_arn == role_arn:
                return role
        parts = role_arn.split(":")
        if len(parts) == 6:
            parts[4] = "*"
            return next((r for r in self.roles if r.role_arn == ":".join(parts)), None)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "identity_policy": self.identity_policy,
            "roles": [r.to_dict() for r in self.roles],
            "database_service": {
                "principal": self.db_service_principal,
                "identity_policy": self.db_service_policy,
            },
            "notes": list(self.notes),
        }


def trust_policy(principal: str, external_ids: tuple[str, ...]) -> dict[str, Any]:
    return policy(trust_statement(principal, external_ids, sid="TrustRDSProxyDiscovery"))


def iam_plan(
    config: Config,
    *,
    principal: str = PRINCIPAL_PLACEHOLDER,
    db_service_principal: str = DB_SERVICE_PLACEHOLDER,
    registered: list[Resource] | None = None,
) -> IAMPlan:
    """The least-privilege policies for `config`; `principal` is the service's own identity,
    `db_service_principal` the Teleport Database Service's, `registered` the group's resources
    when the connect permissions should name exactly the registered proxies."""
    own_regions: list[str] = []
    by_role: dict[str, tuple[list[str], list[str], bool]] = {}  # regions, ext ids, any w/o id
    org_readers: set[str] = set()  # roles that list an organization ("" = the identity)
    for matcher in config.aws:
        if matcher.organization is not None:
            org_readers.add(matcher.organization_role_arn)
            if matcher.organization_role_arn:
                by_role.setdefault(matcher.organization_role_arn, ([], [], True))
        # An organization matcher's member role, in every account: arn:aws:iam::*:role/NAME.
        role_arn = matcher.assume_role_arn or (
            f"arn:aws:iam::*:role/{matcher.assume_role_name}" if matcher.assume_role_name else ""
        )
        if not role_arn:
            own_regions.extend(matcher.regions)
            continue
        regions, ids, without = by_role.setdefault(role_arn, ([], [], False))
        regions.extend(matcher.regions)
        if matcher.external_id:
            ids.append(matcher.external_id)
        else:
            by_role[role_arn] = (regions, ids, True)

    statements: list[dict[str, Any]] = []
    if own_regions:
        statements.extend(read_statements(tuple(own_regions)))
    if "" in org_readers:
        statements.append(organization_statement())
    if by_role:
        statements.append(assume_statement(tuple(by_role)))

    connecting, notes_list = connection_roles(config, registered)
    connect_by_role = {c.role_arn: c for c in connecting if c.role_arn}
    roles: list[RolePolicies] = []
    notes: list[str] = list(notes_list)
    for role_arn in sorted({*by_role, *connect_by_role}):
        regions, ids, without = by_role.get(role_arn, ([], [], False))
        external_ids = tuple(sorted(set(ids)))
        if external_ids and without and role_arn not in org_readers:
            notes.append(
                f"{role_arn} is used both with and without external_id; its trust policy "
                "requires an external id, so the matchers without one will be denied: give "
                "every matcher of this role the same external_id"
            )
        unique_regions = tuple(sorted(set(regions)))
        grants = read_statements(unique_regions) if unique_regions else []
        if role_arn in org_readers:
            grants.append(organization_statement())
        roles.append(
            _role_policies(
                role_arn,
                grants=grants,
                regions=unique_regions,
                discovery=(external_ids, principal) if role_arn in by_role else None,
                connect=connect_by_role.get(role_arn),
                db_service_principal=db_service_principal,
            )
        )
    if principal == PRINCIPAL_PLACEHOLDER and by_role:
        notes.append(
            f"trust policies name {PRINCIPAL_PLACEHOLDER}: pass --principal with the ARN this "
            "service runs as (its instance or IRSA role)"
        )
    if db_service_principal == DB_SERVICE_PLACEHOLDER and connect_by_role:
        notes.append(
            f"trust policies name {DB_SERVICE_PLACEHOLDER}: pass --db-service-principal with "
            "the ARN the Teleport Database Service runs as"
        )
    return IAMPlan(
        principal=principal,
        identity_policy=policy(*statements),
        roles=tuple(roles),
        notes=tuple(notes),
        db_service_principal=db_service_principal,
        db_service_policy=_db_service_policy(connecting),
    )


def _role_policies(
    role_arn: str,
    *,
    grants: list[dict[str, Any]],
    regions: tuple[str, ...],
    discovery: tuple[tuple[str, ...], str] | None,
    connect: ConnectionRole | None,
    db_service_principal: str,
) -> RolePolicies:
    """A role used by discovery (`grants`: read, list the organization; trusts the service),
    for connections (rds-db:connect, trusts the Database Service), or both."""
    permissions: list[dict[str, Any]] = list(grants)
    trust: list[dict[str, Any]] = []
    external_ids: tuple[str, ...] = ()
    if discovery is not None:
        external_ids, principal = discovery
        trust.extend(trust_policy(principal, external_ids)["Statement"])
    if connect is not None:
        permissions.append(connect_statement(connect.connect_resources))
        trust.append(trust_statement(db_service_principal, connect.external_ids))
    return RolePolicies(
        role_arn=role_arn,
        external_ids=external_ids,
        regions=regions,
        permissions_policy=policy(*permissions),
        trust_policy=policy(*trust),
        connect_resources=connect.connect_resources if connect else (),
        db_external_ids=connect.external_ids if connect else (),
    )


def _db_service_policy(connecting: tuple[ConnectionRole, ...]) -> dict[str, Any]:
    """The Database Service's own identity: assume the connection roles; connect itself to what
    is registered without a role."""
    statements: list[dict[str, Any]] = []
    assumed = sorted(c.role_arn for c in connecting if c.role_arn)
    if assumed:
        statements.append(
            {"Sid": ASSUME_SID, "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": assumed}
        )
    for own in (c for c in connecting if not c.role_arn):
        statements.append(connect_statement(own.connect_resources))
    return policy(*statements)


def render_text(plan: IAMPlan) -> str:
    """The plan for a person: headings, then each policy as indented JSON."""

    def block(title: str, doc: Mapping[str, Any]) -> list[str]:
        return [f"## {title}", json.dumps(doc, indent=2), ""]

    lines = block(
        f"Identity policy: attach to the identity the service runs as ({plan.principal})",
        plan.identity_policy,
    )
    for role in plan.roles:
        ids = sorted({*role.external_ids, *role.db_external_ids})
        ext = f", external id {', '.join(ids)}" if ids else ""
        lines += block(f"Permissions policy of {role.role_arn}", role.permissions_policy)
        lines += block(f"Trust policy of {role.role_arn}{ext}", role.trust_policy)
    if plan.db_service_policy["Statement"]:
        lines += block(
            "Teleport Database Service policy: attach to the identity the Database Service runs "
            f"as ({plan.db_service_principal})",
            plan.db_service_policy,
        )
    if any(arn.endswith(":dbuser:*/*") for arn in _connect_resources(plan)):
        lines.append(
            f"note: {CONNECT_SID} allows rds-db:connect to every proxy of a scanned region "
            "(dbuser:*/*); --from-registry names the registered proxies instead, within IAM's "
            "policy size limits (10,240 bytes per role, 2,048 per user: about 100 proxies)"
        )
    for note in plan.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _connect_resources(plan: IAMPlan) -> list[str]:
    own = [
        arn
        for statement in plan.db_service_policy["Statement"]
        if statement["Sid"] == CONNECT_SID
        for arn in statement["Resource"]
    ]
    return [*own, *(arn for role in plan.roles for arn in role.connect_resources)]
