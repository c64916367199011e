"""The IAM policies this service needs, derived from the config, and putting them on a role.

Least privilege, computed from the matchers (pure): the service's own identity gets the read
actions only for the regions it scans with its own credentials, and `sts:AssumeRole` on exactly
the configured roles; each assumed role gets the read actions for its regions and a trust policy
that names the service's identity and, when an external id is set, requires it
(`sts:ExternalId`). `attach_policy` is the one I/O step: an inline policy put on a role.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from discovery.core.config import Config

POLICY_VERSION = "2012-10-17"
DEFAULT_POLICY_NAME = "rdsproxy-discovery"
# What `print-iam` writes when the caller did not say who the service runs as.
PRINCIPAL_PLACEHOLDER = "arn:aws:iam::ACCOUNT_ID:role/DISCOVERY_SERVICE_ROLE"
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "role_arn": self.role_arn,
            "external_ids": list(self.external_ids),
            "regions": list(self.regions),
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
            "notes": list(self.notes),
        }


def trust_policy(principal: str, external_ids: tuple[str, ...]) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": "TrustRDSProxyDiscovery",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_ids:
        values: str | list[str] = external_ids[0] if len(external_ids) == 1 else list(external_ids)
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": values}}
    return policy(statement)


def iam_plan(config: Config, *, principal: str = PRINCIPAL_PLACEHOLDER) -> IAMPlan:
    """The least-privilege policies for `config`; `principal` is the service's own identity."""
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

    roles: list[RolePolicies] = []
    notes: list[str] = []
    for role_arn in sorted(by_role):
        regions, ids, without = by_role[role_arn]
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
            RolePolicies(
                role_arn=role_arn,
                external_ids=external_ids,
                regions=unique_regions,
                permissions_policy=policy(*grants),
                trust_policy=trust_policy(principal, external_ids),
            )
        )
    if principal == PRINCIPAL_PLACEHOLDER and roles:
        notes.append(
            f"trust policies name {PRINCIPAL_PLACEHOLDER}: pass --principal with the ARN this "
            "service runs as (its instance or IRSA role)"
        )
    return IAMPlan(
        principal=principal,
        identity_policy=policy(*statements),
        roles=tuple(roles),
        notes=tuple(notes),
    )


def render_text(plan: IAMPlan) -> str:
    """The plan for a person: headings, then each policy as indented JSON."""

    def block(title: str, doc: Mapping[str, Any]) -> list[str]:
        return [f"## {title}", json.dumps(doc, indent=2), ""]

    lines = block(
        f"Identity policy: attach to the identity the service runs as ({plan.principal})",
        plan.identity_policy,
    )
    for role in plan.roles:
        ext = f", external id {', '.join(role.external_ids)}" if role.external_ids else ""
        lines += block(f"Permissions policy of {role.role_arn}", role.permissions_policy)
        lines += block(f"Trust policy of {role.role_arn}{ext}", role.trust_policy)
    for note in plan.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines).rstrip("\n") + "\n"


# --- Bootstrap: the I/O step ------------------------------------------------------------------


class IAMClient(Protocol):
    """The two calls bootstrap makes (boto3's IAM and STS clients satisfy these)."""

    def put_role_policy(self, **kwargs: Any) -> Any: ...


class STSClient(Protocol):
    def get_caller_identity(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """Which document goes on which role, and why."""

    role_arn: str
    role_name: str
    policy_name: str
    document: dict[str, Any]
    kind: str  # "identity" (the service's own role) or "assumed-role"


def attachment_for(
    plan: IAMPlan, role_arn: str, *, policy_name: str = DEFAULT_POLICY_NAME
) -> Attachment:
    """A configured assume role gets its permissions policy; any other role is taken to be the
    service's own identity and gets the identity policy."""
    parts = role_arn.split(":")
    if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
        raise IAMError(f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    role_name = parts[5].rsplit("/", 1)[-1]
    role = plan.role(role_arn)
    if role is not None:
        return Attachment(
            role_arn=role_arn,
            role_name=role_name,
            policy_name=policy_name,
            document=role.permissions_policy,
            kind="assumed-role",
        )
    return Attachment(
        role_arn=role_arn,
        role_name=role_name,
        policy_name=policy_name,
        document=plan.identity_policy,
        kind="identity",
    )


def attach_policy(attachment: Attachment, *, iam: IAMClient, sts: STSClient) -> None:
    """Put the inline policy on the role, in the caller's own account only."""
    from botocore.exceptions import BotoCoreError, ClientError

    role_account = attachment.role_arn.split(":")[4]
    try:
        caller = sts.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        raise IAMError(
            f"cannot tell which account these credentials are for (sts:GetCallerIdentity: "
            f"{exc}); check the AWS credentials and network access to STS"
        ) from exc
    caller_account = str(caller.get("Account", ""))
    if caller_account != role_account:
        raise IAMError(
            f"the credentials are for account {caller_account}, the role is in {role_account}: "
            f"run this with credentials of account {role_account} (IAM policies are per account)"
        )
    try:
        iam.put_role_policy(
            RoleName=attachment.role_name,
            PolicyName=attachment.policy_name,
            PolicyDocument=json.dumps(attachment.document),
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchEntity":
            raise IAMError(
                f"role {attachment.role_name} does not exist in account {role_account}: create "
                "it first (deploy/iam/ has CloudFormation templates) or fix --attach-to-role"
            ) from exc
        if code in {"AccessDenied", "AccessDeniedException"}:
            raise IAMError(
                f"not allowed to put a policy on {attachment.role_arn}: the identity running "
                "this needs iam:PutRolePolicy on that role"
            ) from exc
        raise IAMError(f"iam:PutRolePolicy on {attachment.role_arn} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise IAMError(f"iam:PutRolePolicy on {attachment.role_arn} failed: {exc}") from exc
