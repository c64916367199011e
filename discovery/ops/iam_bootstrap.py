"""Putting one of the `IAMPlan`'s policies on a role: the one I/O step of the IAM helpers.

`attachment_for` (pure) picks which document goes on which role; `attach_policy` puts it there
as an inline policy with boto3, in the caller's own account only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from discovery.ops.iam import DEFAULT_POLICY_NAME, IAMError, IAMPlan


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
    kind: str  # "identity" (the service's own role), "assumed-role" or "database-service"


def attachment_for(
    plan: IAMPlan,
    role_arn: str,
    *,
    policy_name: str = DEFAULT_POLICY_NAME,
    database_service: bool = False,
) -> Attachment:
    """With `database_service`, the Teleport Database Service's own policy. Otherwise a
    configured role (assumed for discovery, or registered for connections) gets its
    permissions policy; any other role is taken to be the service's own identity and gets the
    identity policy."""
    parts = role_arn.split(":")
    if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
        raise IAMError(f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    role_name = parts[5].rsplit("/", 1)[-1]
    role = plan.role(role_arn)
    if database_service:
        document, kind = plan.db_service_policy, "database-service"
    elif role is not None:
        document, kind = role.permissions_policy, "assumed-role"
    else:
        document, kind = plan.identity_policy, "identity"
    return Attachment(
        role_arn=role_arn,
        role_name=role_name,
        policy_name=policy_name,
        document=document,
        kind=kind,
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
