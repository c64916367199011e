"""What the Teleport Database Service needs in IAM to connect to what this service registers.

Every registered resource carries `spec.aws.assume_role_arn`: the matcher's `db_assume_role_arn`,
else its discovery role (as Teleport's Discovery Service registers it). The Database Service
assumes that role and asks it for an IAM authentication token, so that role needs
`rds-db:connect` on `arn:PARTITION:rds-db:REGION:ACCOUNT:dbuser:PRX-ID/*` for the proxies it
serves, and a trust policy naming the Database Service's identity (with the registered
`external_id` as its `sts:ExternalId` condition). Matchers without any role leave the resources
without one: the Database Service then connects with its own identity, which needs
`rds-db:connect` itself.

Two ways to name the proxies (pure functions over the config and, optionally, the registered
resources):
- from the config alone: per region and account, `dbuser:*/*` (any proxy there; the account is the
  role's, which Teleport requires to be the proxies' own; `*` for resources without a role);
- from the registry (`print-iam --from-registry`): exactly the registered proxies' resource ids.
  IAM limits a role's inline policies to 10,240 bytes and a user's to 2,048 (without whitespace;
  about 100 proxies per role): a list that would not fit falls back to the per-region form, with
  a note.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from discovery.core.config import Config
from discovery.core.convert import aws_partition
from discovery.core.model import Resource

CONNECT_SID = "TeleportDatabaseConnect"
TRUST_SID = "TrustTeleportDatabaseService"
ASSUME_SID = "TeleportDatabaseAssumeRoles"
DB_SERVICE_PLACEHOLDER = "arn:aws:iam::ACCOUNT_ID:role/TELEPORT_DATABASE_SERVICE_ROLE"
DB_SERVICE_POLICY_NAME = "teleport-rdsproxy-connect"
ROLE_POLICY_LIMIT = 10_240  # bytes of a role's inline policies, whitespace not counted
USER_POLICY_LIMIT = 2_048  # the same for an IAM user


@dataclass(frozen=True, kw_only=True)
class ConnectionRole:
    """One role registered as `spec.aws.assume_role_arn` ("" = the Database Service's own)."""

    role_arn: str
    external_ids: tuple[str, ...]
    connect_resources: tuple[str, ...]


def dbuser_arn(region: str, account: str, resource_id: str = "*") -> str:
    """What `rds-db:connect` names for every database user of a proxy (or of all, with `*`)."""
    return f"arn:{aws_partition(region)}:rds-db:{region}:{account or '*'}:dbuser:{resource_id}/*"


def connect_statement(resources: Iterable[str]) -> dict[str, Any]:
    return {
        "Sid": CONNECT_SID,
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": sorted(set(resources)),
    }


def trust_statement(
    principal: str, external_ids: tuple[str, ...], *, sid: str = TRUST_SID
) -> dict[str, Any]:
    """Lets `principal` assume the role, with the external ids as a condition when set."""
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_ids:
        values: str | list[str] = external_ids[0] if len(external_ids) == 1 else list(external_ids)
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": values}}
    return statement


def policy_size(document: dict[str, Any]) -> int:
    """The size IAM checks against its limits: the JSON without whitespace."""
    return len(json.dumps(document, separators=(",", ":")).encode())


def _configured(role_arn: str, roles: Mapping[str, object]) -> str | None:
    """The configured role a registered `assume_role_arn` is: itself, or the organization's
    member role (`arn:aws:iam::*:role/NAME`) it is one account's instance of."""
    if role_arn in roles:
        return role_arn
    parts = role_arn.split(":")
    if len(parts) == 6:
        member = f"arn:aws:iam::*:{parts[5]}"
        if member in roles:
            return member
    return None


def connection_roles(
    config: Config, registered: Iterable[Resource] | None = None
) -> tuple[tuple[ConnectionRole, ...], tuple[str, ...]]:
    """Each connection role with the proxies it connects to, and notes for the operator.

    `registered` (the group's resources in the registry) narrows each role to the proxies it is
    registered for; a role with nothing registered yet keeps the per-region form.
    """
    by_role: dict[str, tuple[set[str], set[str]]] = {}  # role → (resources, external ids)
    for matcher in config.aws:
        # An organization matcher's member role, in every account: arn:aws:iam::*:role/NAME.
        member = (
            f"arn:aws:iam::*:role/{matcher.assume_role_name}" if matcher.assume_role_name else ""
        )
        role = matcher.db_assume_role_arn or matcher.assume_role_arn or member
        external_id = matcher.db_external_id if matcher.db_assume_role_arn else matcher.external_id
        resources, ids = by_role.setdefault(role, (set(), set()))
        # Teleport only accepts a role in the database's own account, so the role's account is
        # the proxies' account ("*": the service's own credentials, or every member account).
        account = role.split(":")[4] if role else ""
        resources.update(dbuser_arn(r, account) for r in matcher.regions)
        if external_id:
            ids.add(external_id)
    notes: list[str] = []
    if registered is not None:
        exact: dict[str, set[str]] = {}
        for resource in registered:
            aws = resource.aws
            configured = _configured(aws.assume_role_arn, by_role)
            if configured is not None and aws.rdsproxy_resource_id:
                exact.setdefault(configured, set()).add(
                    dbuser_arn(aws.region, aws.account_id, aws.rdsproxy_resource_id)
                )
        for role, resources in exact.items():
            document = {"Version": "2012-10-17", "Statement": [connect_statement(resources)]}
            if policy_size(document) > ROLE_POLICY_LIMIT:
                notes.append(
                    f"{role or 'the Database Service identity'}: the {len(resources)} registered "
                    f"proxies do not fit IAM's {ROLE_POLICY_LIMIT:,}-byte role policy limit "
                    f"({USER_POLICY_LIMIT:,} for a user); kept the per-region dbuser:*/* form. "
                    "Split the matchers over several db_assume_role_arn roles to list proxies "
                    "one by one"
                )
            else:
                by_role[role] = (resources, by_role[role][1])
    roles = tuple(
        ConnectionRole(
            role_arn=role,
            external_ids=tuple(sorted(ids)),
            connect_resources=tuple(sorted(resources)),
        )
        for role, (resources, ids) in sorted(by_role.items())
    )
    return roles, tuple(notes)
