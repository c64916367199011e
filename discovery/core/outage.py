"""A failure that is not about one scope: no credentials at all, an AWS_PROFILE that does not
exist, AWS (or the emulator) unreachable from here. Every scope fails with it, so a report of
N identical failed rows and exit 3 ("some scopes failed") hides the one thing to fix.

The rule: every scope of the cycle failed, all with the same kind, and that kind is about this
process's setup rather than one account or region (`GLOBAL_FIXES`). Then the cycle is one line
and exit 1. A partial failure, or failures of different kinds (one role denied, one region
throttled), stays a per-scope report. Pure: scope results in, a line or "" out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from discovery.core.model import ScopeResult

__all__ = ["GLOBAL_FIXES", "global_failure"]

# ErrorKind values (discovery.aws.calls) → what the operator does about it.
GLOBAL_FIXES: Mapping[str, str] = {
    "no-credentials": (
        "no AWS credentials found for any scope; provide them through the environment "
        "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), AWS_PROFILE, the shared credentials "
        "files, or an instance/IRSA role"
    ),
    "no-profile": (
        "the AWS profile named by AWS_PROFILE does not exist; fix AWS_PROFILE "
        "or add the profile to ~/.aws/config"
    ),
    "unreachable": (
        "AWS could not be reached for any scope; check this host's network and proxy "
        "settings (or AWS_ENDPOINT_URL, when it points at an emulator)"
    ),
}


def global_failure(results: Sequence[ScopeResult]) -> str:
    """The one line for a failure every scope shares, or "" when it is per scope."""
    if not results or any(r.ok for r in results):
        return ""
    kinds = {r.error_kind for r in results}
    if len(kinds) != 1:
        return ""
    (kind,) = kinds
    fix = GLOBAL_FIXES.get(kind, "")
    if not fix:
        return ""
    return f"{fix} (first error: {results[0].error})"
