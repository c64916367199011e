"""Doctor checks 3 and 4: each scope's region answers the RDS listings, and tags are readable.

The listings are read with the shared `Caller.pages`, so doctor follows the same paging as a
cycle: a repeated token or a page without its result key fails the check instead of looping
or reading "no more". Unlike a cycle (which fails a scope as a whole), each call is made and
judged on its own, so the check can name the single call that failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from discovery.aws.calls import ErrorKind, FetchError
from discovery.aws.clients import AWSClients
from discovery.aws.rds_calls import describe_endpoints, describe_proxies, tags_by_arn, tags_of
from discovery.core.config import Config
from discovery.core.model import Scope
from discovery.core.scopes import expand_scopes
from discovery.ops.checks_identity import Identity
from discovery.ops.diagnosis import FIXES, Check, Status, error_text, failure

_RDS_CODES = {
    ErrorKind.THROTTLED: "throttled",
    ErrorKind.CREDENTIALS_REJECTED: "credentials-invalid",
    ErrorKind.UNREACHABLE: "region-unreachable",
}


@dataclass(frozen=True, kw_only=True)
class ScopeFindings:
    """What the RDS and tags checks learnt about one (role, external id, region)."""

    scope: Scope  # the first scope of this (role, external id, region): its matcher converts
    identity: Identity
    proxies: tuple[dict[str, Any], ...] = ()
    endpoints: tuple[dict[str, Any], ...] = ()
    tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ok: bool = False  # both listings answered

    @property
    def region(self) -> str:
        return self.scope.region


def scope_subject(scope: ScopeFindings) -> str:
    who = scope.identity.role_arn or "base credentials"
    return f"{scope.region} as {who}"


def per_proxy_checks(
    scopes: Sequence[ScopeFindings],
    *,
    check: str,
    failing: Callable[[Mapping[str, Any]], bool],
    ok_detail: Callable[[int], str],
    warning: Callable[[ScopeFindings, Mapping[str, Any]], Check],
) -> list[Check]:
    """A check over every proxy of the scopes that answered: one OK line for a scope whose
    proxies all pass (`ok_detail(count)`), else one `warning` per proxy that fails."""
    checks: list[Check] = []
    for scope in scopes:
        if not scope.ok:
            continue
        bad = [proxy for proxy in scope.proxies if failing(proxy)]
        if not bad:
            subject = scope_subject(scope)
            detail = ok_detail(len(scope.proxies))
            checks.append(Check(check=check, status=Status.OK, subject=subject, detail=detail))
        checks.extend(warning(scope, proxy) for proxy in bad)
    return checks


async def check_scopes(
    aws: AWSClients,
    config: Config,
    identities: Mapping[tuple[str, str], Identity],
    *,
    config_hint: str,
) -> tuple[list[Check], list[ScopeFindings]]:
    """Each scope's rds line, then its tags line (when the listings answered)."""
    scopes: list[ScopeFindings] = []
    seen: set[tuple[str, str, str]] = set()
    for scope in expand_scopes(config):
        key = (scope.assume_role_arn, scope.external_id, scope.region)
        if key in seen:
            continue
        seen.add(key)
        identity = identities[(scope.assume_role_arn, scope.external_id)]
        scopes.append(ScopeFindings(scope=scope, identity=identity))
    results = await asyncio.gather(*(_scope(aws, s, config_hint) for s in scopes))
    checks: list[Check] = []
    for scope_checks, _ in results:
        checks.extend(scope_checks)
    return checks, [found for _, found in results]


async def _scope(
    aws: AWSClients, scope: ScopeFindings, config_hint: str
) -> tuple[list[Check], ScopeFindings]:
    subject = scope_subject(scope)
    identity = scope.identity
    if not identity.ok:
        skipped = Check(
            check="rds",
            status=Status.SKIP,
            subject=subject,
            detail="skipped: the role could not be assumed",
        )
        return [skipped], scope
    try:
        rds = await aws.client(identity.role_arn, identity.external_id, "rds", scope.region)
        proxies = await describe_proxies(aws.caller, rds)
        endpoints = await describe_endpoints(aws.caller, rds)
    except FetchError as exc:
        return [_rds_failure(scope, subject, exc, config_hint)], scope
    scope = replace(scope, proxies=tuple(proxies), endpoints=tuple(endpoints), ok=True)
    custom = sum(1 for e in endpoints if not e.get("IsDefault"))
    rds_check = Check(
        check="rds",
        status=Status.OK,
        subject=subject,
        detail=(
            f"rds:DescribeDBProxies and DescribeDBProxyEndpoints answer: "
            f"{len(proxies)} proxies, {custom} custom endpoints"
        ),
    )
    tags_check, scope = await _tags(aws, scope, rds, subject)
    return [rds_check, tags_check], scope


def _rds_failure(scope: ScopeFindings, subject: str, exc: FetchError, config_hint: str) -> Check:
    if exc.kind is ErrorKind.DENIED:
        who = scope.identity.arn or scope.identity.role_arn or "the base identity"
        return failure(
            "rds",
            subject,
            error_text(exc),
            "rds-denied",
            fix=(
                f"grant rds:DescribeDBProxies and rds:DescribeDBProxyEndpoints in "
                f"{scope.region} to {who} ({exc.action} was denied); "
                f"`discovery print-iam --config {config_hint}` prints the "
                "policy; check SCPs and permission boundaries too"
            ),
        )
    return failure("rds", subject, error_text(exc), _RDS_CODES.get(exc.kind, "rds-error"))


async def _tags(
    aws: AWSClients, scope: ScopeFindings, rds: Any, subject: str
) -> tuple[Check, ScopeFindings]:
    identity = scope.identity
    try:
        tagging = await aws.client(
            identity.role_arn, identity.external_id, "resourcegroupstaggingapi", scope.region
        )
        tags = await tags_by_arn(aws.caller, tagging)
    except FetchError as exc:
        if exc.kind is not ErrorKind.DENIED:
            detail = f"tag:GetResources: {error_text(exc)}"
            return failure("tags", subject, detail, "rds-error"), scope
        return await _tags_fallback(aws, scope, rds, subject, exc)
    detail = f"tag:GetResources answers ({len(tags)} tagged proxies)"
    denied = await _confirm_denied(aws, scope, rds)
    if denied is not None:
        check = Check(
            check="tags",
            status=Status.WARN,
            subject=subject,
            detail=f"{detail}, but rds:ListTagsForResource is denied ({denied.code})",
            code="confirm-denied",
            fix=FIXES["confirm-denied"],
        )
        return check, replace(scope, tags=tags)
    check = Check(check="tags", status=Status.OK, subject=subject, detail=detail)
    return check, replace(scope, tags=tags)


async def _confirm_denied(aws: AWSClients, scope: ScopeFindings, rds: Any) -> FetchError | None:
    """The denial of rds:ListTagsForResource (asked on one proxy), which a cycle needs to
    confirm deletes and label removals even where tag:GetResources works; None otherwise."""
    arn = next((str(p["DBProxyArn"]) for p in scope.proxies if p.get("DBProxyArn")), "")
    if not arn:
        return None
    try:
        await tags_of(aws.caller, rds, arn)
    except FetchError as exc:
        return exc if exc.kind is ErrorKind.DENIED else None
    return None


async def _tags_fallback(
    aws: AWSClients, scope: ScopeFindings, rds: Any, subject: str, denied: FetchError
) -> tuple[Check, ScopeFindings]:
    arns = [str(p["DBProxyArn"]) for p in scope.proxies if p.get("DBProxyArn")]
    if not arns:
        check = Check(
            check="tags",
            status=Status.WARN,
            subject=subject,
            detail=(
                f"tag:GetResources denied ({denied.code}); no proxy here to try "
                "rds:ListTagsForResource on"
            ),
            code="tags-fallback",
            fix=FIXES["tags-fallback"],
        )
        return check, scope
    tags: dict[str, dict[str, str]] = {}
    try:
        for arn in arns:
            tags[arn] = await tags_of(aws.caller, rds, arn)
    except FetchError as exc:
        detail = f"tag:GetResources denied and rds:ListTagsForResource: {error_text(exc)}"
        return failure("tags", subject, detail, "tags-denied"), replace(scope, tags=tags)
    check = Check(
        check="tags",
        status=Status.WARN,
        subject=subject,
        detail=(
            f"tag:GetResources denied; rds:ListTagsForResource works "
            f"({len(arns)} calls per cycle here)"
        ),
        code="tags-fallback",
        fix=FIXES["tags-fallback"],
    )
    return check, replace(scope, tags=tags)
