"""Doctor check: each proxy requires IAM authentication, so the Database Service can connect.

The Teleport Database Service connects to an RDS Proxy with an IAM authentication token (the
seed guide's step 5: "Make sure IAM authentication is set to Required"). A proxy registers
fine without it, but `tsh db connect` then fails, so doctor looks at what DescribeDBProxies
said: IAM authentication is in force when `DefaultAuthScheme` is `IAM_AUTH` (end-to-end IAM
authentication, no secrets) or an `Auth[]` entry has `IAMAuth` `REQUIRED` (per-secret: users
that are not for Teleport may keep `DISABLED`, as the guide allows). The fix names every auth
entry, because `modify-db-proxy --auth` replaces the whole list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from discovery.ops.checks_rds import ScopeFindings, per_proxy_checks
from discovery.ops.diagnosis import Check, Status


def iam_auth_required(proxy: Mapping[str, Any]) -> bool:
    if proxy.get("DefaultAuthScheme") == "IAM_AUTH":
        return True
    return any(
        isinstance(entry, Mapping) and entry.get("IAMAuth") == "REQUIRED"
        for entry in proxy.get("Auth") or ()
    )


def modify_command(proxy: Mapping[str, Any], region: str) -> str:
    """`aws rds modify-db-proxy` that keeps each secret and requires IAM authentication."""
    name = str(proxy.get("DBProxyName", "NAME"))
    entries = [
        f"AuthScheme=SECRETS,SecretArn={entry['SecretArn']},IAMAuth=REQUIRED"
        for entry in proxy.get("Auth") or ()
        if isinstance(entry, Mapping) and entry.get("SecretArn")
    ] or ["AuthScheme=SECRETS,SecretArn=SECRET_ARN,IAMAuth=REQUIRED"]
    return (
        f"aws rds modify-db-proxy --db-proxy-name {name} --region {region} "
        f"--auth {' '.join(entries)}"
    )


def check_iam_auth(scopes: Sequence[ScopeFindings]) -> list[Check]:
    return per_proxy_checks(
        scopes,
        check="iam-auth",
        failing=lambda proxy: not iam_auth_required(proxy),
        ok_detail=lambda count: f"all {count} proxies require IAM authentication",
        warning=_iam_auth_warning,
    )


def _iam_auth_warning(scope: ScopeFindings, proxy: Mapping[str, Any]) -> Check:
    name = str(proxy.get("DBProxyName", "?"))
    seen = sorted(
        {
            str(entry.get("IAMAuth", "?"))
            for entry in proxy.get("Auth") or ()
            if isinstance(entry, Mapping)
        }
    )
    return Check(
        check="iam-auth",
        status=Status.WARN,
        subject=f"{name} in {scope.region}",
        detail=(
            f"IAM authentication is not required (Auth[].IAMAuth: "
            f"{', '.join(seen) or 'no auth entry'}): the Teleport Database Service "
            "cannot connect to it"
        ),
        code="iam-auth-not-required",
        fix=(
            "set IAMAuth=REQUIRED on the secrets Teleport users connect as: "
            + modify_command(proxy, scope.region)
        ),
    )
