"""STS operations: AssumeRole (the fleet's roles, external ids, session limits) and
GetCallerIdentity."""

from __future__ import annotations

import re
from typing import Any

from .ops_base import Handler, World
from .state import Identity
from .wire import ApiError

__all__ = ["HANDLERS", "ROLE_ARN_RE"]

ROLE_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})$")
_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")


def assume_role(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    role_arn = str(params.get("RoleArn", ""))
    session_name = str(params.get("RoleSessionName", ""))
    m = ROLE_ARN_RE.match(role_arn)
    if not m:
        raise ApiError(
            "ValidationError",
            f"1 validation error detected: Value '{role_arn}' at 'roleArn' failed to "
            "satisfy constraint: Member must be a valid IAM role ARN",
        )
    if not _SESSION_NAME_RE.match(session_name):
        raise ApiError(
            "ValidationError",
            f"1 validation error detected: Value '{session_name}' at 'roleSessionName' "
            "failed to satisfy constraint: Member must satisfy regular expression pattern: "
            r"[\w+=,.@-]*",
        )
    role_account, role_name = m.groups()
    denied = ApiError(
        "AccessDenied",
        f"User: {identity.arn} is not authorized to perform: sts:AssumeRole on resource: "
        f"{role_arn}",
        403,
    )
    role = world.index.roles.get((role_account, role_name))
    if role is None:
        raise denied
    external_id = params.get("ExternalId")
    if (role.external_id or None) != (external_id or None):
        raise denied
    requested = params.get("DurationSeconds")
    duration = 3600
    if requested not in (None, ""):
        try:
            duration = int(requested)
        except (TypeError, ValueError):
            duration = -1
        if not 900 <= duration <= 43200:
            raise ApiError(
                "ValidationError",
                f"1 validation error detected: Value '{requested}' at 'durationSeconds' "
                "failed to satisfy constraint: Member must have value between 900 and 43200",
            )
        if duration > role.max_session_duration:
            raise ApiError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
    fleet = world.index.fleet
    if fleet.credential_duration_seconds is not None:
        duration = fleet.credential_duration_seconds
    issued, secret, token, expiration = world.credentials.issue(
        account=role_account,
        role_name=role_name,
        role_arn=role_arn,
        session_name=session_name,
        duration=duration,
    )
    return {
        "Credentials": {
            "AccessKeyId": issued.access_key_id,
            "SecretAccessKey": secret,
            "SessionToken": token,
            "Expiration": expiration,
        },
        "AssumedRoleUser": {"AssumedRoleId": issued.user_id, "Arn": issued.arn},
    }


def get_caller_identity(
    world: World, params: dict[str, Any], identity: Identity, account: str, region: str
) -> dict[str, Any]:
    return {"UserId": identity.user_id, "Account": identity.account, "Arn": identity.arn}


HANDLERS: dict[str, Handler] = {
    "AssumeRole": assume_role,
    "GetCallerIdentity": get_caller_identity,
}
