"""Doctor checks 1 and 2: the base credentials work, and each configured role can be assumed.

The calls go through the shared AWS layer (`AWSClients`, `Caller`): the same credential chain,
home region, assume-role sessions and `aws_client` settings as a cycle. A failure is told by
the `FetchError`'s kind, classified by the one table in `discovery.aws.calls`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from discovery.aws.calls import ErrorKind, FetchError
from discovery.aws.clients import AWSClients, home_region
from discovery.core.config import Config
from discovery.ops.diagnosis import Check, Status, error_text, failure

_CREDENTIAL_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "shared credentials file",
    "config-file": "shared config file",
    "assume-role": "profile with role_arn (shared config)",
    "assume-role-with-web-identity": "web identity token (IRSA: AWS_ROLE_ARN + token file)",
    "iam-role": "EC2 instance metadata (instance profile)",
    "container-role": "container credentials (ECS task role / EKS Pod Identity)",
    "sso": "AWS IAM Identity Center (SSO) profile",
    "custom-process": "credential_process",
    "explicit": "explicit keys",
}

_CREDENTIAL_CODES = {
    ErrorKind.CREDENTIALS_REJECTED: "credentials-invalid",
    ErrorKind.NO_CREDENTIALS: "no-credentials",
}


def credential_source(method: str) -> str:
    profile = os.environ.get("AWS_PROFILE")
    name = _CREDENTIAL_SOURCES.get(method, method)
    if profile and method in {"shared-credentials-file", "config-file", "assume-role", "sso"}:
        name += f", profile {profile}"
    return name


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who the calls of a scope are made as: the base chain ("" role) or one assumed role."""

    role_arn: str
    external_id: str
    arn: str = ""  # as STS named it; "" when unknown
    ok: bool = True


async def check_credentials(aws: AWSClients) -> tuple[Check, Identity | None]:
    """The base chain's source and identity; None when nothing else can be checked."""
    try:
        credentials = await aws.base_credentials()
    except FetchError as exc:
        return failure("credentials", "base", error_text(exc), "no-credentials"), None
    if credentials is None:
        return failure("credentials", "base", "no AWS credentials found", "no-credentials"), None
    source = credential_source(str(getattr(credentials, "method", "") or "unknown"))
    try:
        sts = await aws.client("", "", "sts", home_region())
        caller = await aws.caller.call("sts:GetCallerIdentity", sts.get_caller_identity)
    except FetchError as exc:
        code = _CREDENTIAL_CODES.get(exc.kind, "sts-unreachable")
        return failure(
            "credentials", source, f"sts:GetCallerIdentity: {error_text(exc)}", code
        ), None
    arn = str(caller.get("Arn", ""))
    check = Check(
        check="credentials",
        status=Status.OK,
        subject=source,
        detail=f"{arn} (account {caller.get('Account', '?')})",
    )
    return check, Identity(role_arn="", external_id="", arn=arn)


async def check_roles(
    aws: AWSClients, config: Config, base: Identity, *, config_hint: str
) -> tuple[list[Check], dict[tuple[str, str], Identity]]:
    """One check per distinct (role, external id); the identities by that key ("" = base)."""
    wanted: dict[tuple[str, str], int] = {}
    for index, matcher in enumerate(config.aws):
        wanted.setdefault((matcher.assume_role_arn, matcher.external_id), index)
    identities: dict[tuple[str, str], Identity] = {("", ""): base}
    roles = [(key, index) for key, index in wanted.items() if key[0]]
    results = await asyncio.gather(*(_assume(aws, *key) for key, _ in roles))
    checks: list[Check] = []
    for (key, index), (identity, error) in zip(roles, results, strict=True):
        identities[key] = identity
        role_arn, external_id = key
        subject = role_arn + (" (with external id)" if external_id else "")
        if error is None:
            checks.append(
                Check(
                    check="assume-role",
                    status=Status.OK,
                    subject=subject,
                    detail=f"assumed as {identity.arn}",
                )
            )
        elif error.kind is ErrorKind.DENIED:
            fix = _assume_denied_fix(role_arn, external_id, index, base.arn, config_hint)
            checks.append(
                failure("assume-role", subject, error_text(error), "assume-role-denied", fix)
            )
        else:
            checks.append(failure("assume-role", subject, error_text(error), "assume-role-error"))
    return checks, identities


async def _assume(
    aws: AWSClients, role_arn: str, external_id: str
) -> tuple[Identity, FetchError | None]:
    try:
        arn = await aws.assumed_arn(role_arn, external_id)
    except FetchError as exc:
        return Identity(role_arn=role_arn, external_id=external_id, ok=False), exc
    return Identity(role_arn=role_arn, external_id=external_id, arn=arn), None


def _assume_denied_fix(
    role_arn: str, external_id: str, index: int, principal: str, config_hint: str
) -> str:
    if external_id:
        extra = (
            f"check that aws[{index}].external_id equals the sts:ExternalId "
            "condition of the role's trust policy"
        )
    else:
        extra = f"if the role's trust policy requires sts:ExternalId, set aws[{index}].external_id"
    return (
        f"the trust policy of {role_arn} must allow {principal} "
        f"(Principal) to call sts:AssumeRole; {extra}; and {principal} needs "
        f"sts:AssumeRole on {role_arn} in its own policy — "
        f"`discovery print-iam --config {config_hint} --principal {principal}` prints both"
    )
