"""What `doctor` reports: one `Check` value per line, and the fix for every code it can carry.

Every code is listed in `FIXES` and documented in the README's troubleshooting section
(tests/ops/test_readme.py keeps the two equal). Which AWS error means which code is decided by
the shared table in `discovery.aws.calls` (`ErrorKind`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from botocore.exceptions import ClientError

from discovery.aws.calls import FetchError


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


# Every code a check can carry, with the general fix (a failing check adds the specifics).
FIXES: Mapping[str, str] = {
    "no-credentials": (
        "give the service AWS credentials: environment variables (AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY), AWS_PROFILE with a shared credentials file, an EC2 instance "
        "profile, or IRSA on EKS (ServiceAccount annotation eks.amazonaws.com/role-arn; on EKS "
        "with IMDSv2 also check the instance's HttpPutResponseHopLimit is at least 2)"
    ),
    "credentials-invalid": (
        "the credentials were rejected (expired, revoked or mistyped): refresh them, or check "
        "the clock of this host"
    ),
    "sts-unreachable": (
        "STS could not be reached: check network access to sts.<region>.amazonaws.com (or the "
        "VPC endpoint / proxy in use) and AWS_ENDPOINT_URL"
    ),
    "assume-role-denied": (
        "the role's trust policy must name this identity as Principal (and, when external_id is "
        "set, require exactly that sts:ExternalId), and this identity needs sts:AssumeRole on "
        "the role; `discovery print-iam --principal <this identity>` prints both policies"
    ),
    "assume-role-error": "check the role ARN in assume_role_arn and the STS error above",
    "organization-listing-failed": (
        "list the organization from its management or delegated-admin account (organizations:"
        "DescribeOrganization, ListRoots, ListOrganizationalUnitsForParent, ListAccountsForParent"
        "; see `discovery print-iam`), or set organization_role_arn; check organization.id"
    ),
    "rds-denied": (
        "grant rds:DescribeDBProxies and rds:DescribeDBProxyEndpoints in this region to the "
        "identity named (see `discovery print-iam`); check SCPs and permission boundaries too"
    ),
    "region-unreachable": (
        "check the region name, that the region is enabled for the account (opt-in regions), "
        "and network access to rds.<region>.amazonaws.com"
    ),
    "rds-error": "the RDS API answered with an error; retry, and check the error above",
    "throttled": (
        "AWS throttled the calls even after retries: scan less often (poll_interval) or run "
        "fewer scans against this account at the same time"
    ),
    "tags-fallback": (
        "tag:GetResources is denied, so every cycle makes one rds:ListTagsForResource call per "
        "proxy: grant tag:GetResources (one call per 100 proxies)"
    ),
    "tags-denied": (
        "grant tag:GetResources (preferred) or rds:ListTagsForResource in this region; without "
        "tags every scope of this role fails and is left frozen"
    ),
    "confirm-denied": (
        "grant rds:ListTagsForResource in this region (see `discovery print-iam`): it confirms a "
        "delete or a label removal before it is made; without it those changes are withheld "
        "(unconfirmed) and scan exits 3"
    ),
    "tls-disabled": (
        "Teleport only connects to RDS Proxies over TLS, so this proxy is skipped: turn on "
        "RequireTLS (aws rds modify-db-proxy --db-proxy-name NAME --require-tls)"
    ),
    "iam-auth-not-required": (
        "the Teleport Database Service connects with IAM authentication: set IAMAuth=REQUIRED "
        "on the proxy's auth entries (aws rds modify-db-proxy --db-proxy-name NAME --auth "
        "AuthScheme=SECRETS,SecretArn=ARN,IAMAuth=REQUIRED)"
    ),
    "tcp-timeout": (
        "no answer: allow inbound TCP on the port from this host in the proxy's security group, "
        "and check routing (same VPC, peering, transit gateway) and network ACLs"
    ),
    "tcp-refused": "the host answered but nothing listens on that port: check the port and host",
    "tcp-dns": (
        "the name does not resolve here: RDS Proxy endpoints resolve only inside their VPC (or "
        "over peering with DNS resolution enabled); run doctor where the database agent runs"
    ),
    "tcp-error": "the connection failed: see the error above",
    "tctl-missing": (
        "install Teleport's tctl (the cluster's version) or set registry.tctl to its path"
    ),
    "tctl-identity": (
        "renew the bot identity: check that tbot runs and writes the file registry.identity "
        "names, and that registry.auth_server is the cluster it was issued by"
    ),
    "tctl-denied": (
        "give the identity's Teleport role a rule for resources [db] with verbs [list, read, "
        "create, update, delete] (README: Write into a Teleport cluster)"
    ),
    "tctl-unreachable": (
        "check registry.auth_server (the proxy address, e.g. teleport.example.com:443) and "
        "network access to it from this host; registry.timeout bounds each call"
    ),
    "tctl-error": "tctl answered with an error: see the error above",
}


@dataclass(frozen=True, kw_only=True)
class Check:
    """One line of the diagnosis."""

    check: (
        str  # credentials | assume-role | organization | rds | tags | require-tls | iam-auth | tcp
    )
    status: Status
    subject: str
    detail: str
    code: str = ""
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": str(self.status),
            "subject": self.subject,
            "detail": self.detail,
            "code": self.code,
            "fix": self.fix,
        }


def failure(check: str, subject: str, detail: str, code: str, fix: str = "") -> Check:
    """A failed check; its fix is the specific one given, or the code's general fix."""
    return Check(
        check=check,
        status=Status.FAIL,
        subject=subject,
        detail=detail,
        code=code,
        fix=fix or FIXES[code],
    )


def error_text(error: FetchError) -> str:
    """What AWS (or the library) said, for a check's detail: "Code: Message" when AWS answered."""
    cause = error.__cause__
    if isinstance(cause, ClientError):
        body = cause.response.get("Error", {})
        return f"{body.get('Code', 'Unknown')}: {body.get('Message', '')}".rstrip(": ")
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return str(error)


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status is Status.FAIL for c in checks)


def render_check(check: Check) -> str:
    line = f"{check.status.value:<4}  {check.check:<11} {check.subject}: {check.detail}"
    if check.status in (Status.FAIL, Status.WARN) and check.fix:
        line += f"\n      fix: {check.fix}"
    return line


def summary(checks: Sequence[Check]) -> str:
    counts = {status: sum(1 for c in checks if c.status is status) for status in Status}
    return (
        f"doctor: {counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped"
    )
