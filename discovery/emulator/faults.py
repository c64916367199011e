"""How an injected fault answers: the HTTP status and message AWS would send for its code.

A fault in the fault list names only a code; what the client sees must still look like AWS
(an AccessDenied names the IAM action and resource, a throttle says "Rate exceeded"), because
the code under test turns those answers into its own error messages and retry decisions.
"""

from __future__ import annotations

from .fleet import Fault
from .state import THROTTLING_CODES, Identity
from .wire import ApiError

__all__ = ["DEFAULT_TIMEOUT_DELAY", "injected_error"]

# How long a ``Timeout`` fault without ``delay_seconds`` holds the answer (see fleet.Fault).
DEFAULT_TIMEOUT_DELAY = 30.0
_IAM_PREFIX = {
    "sts": "sts",
    "rds": "rds",
    "tagging": "tag",
    "organizations": "organizations",
    "account": "account",
}


def _default_status(code: str) -> int:
    if code.startswith(("AccessDenied", "Unauthorized")) or code in (
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    ):
        return 403
    if code.endswith("NotFoundFault"):
        return 404
    if code in ("InternalFailure", "InternalError", "InternalServiceException"):
        return 500
    if code == "ServiceUnavailable":
        return 503
    return 400


def _default_message(
    code: str, service: str, operation: str, identity: Identity, account: str, region: str
) -> str:
    if code in THROTTLING_CODES:
        return "Rate exceeded"
    if code.startswith("AccessDenied"):
        action = f"{_IAM_PREFIX[service]}:{operation}"
        if operation == "AssumeRole":
            resource = f"arn:aws:iam::{account}:role/*"
        elif service == "rds":
            resource = f"arn:aws:rds:{region}:{account}:db-proxy:*"
        else:
            resource = "*"
        return (
            f"User: {identity.arn} is not authorized to perform: {action} "
            f"on resource: {resource} (injected fault)"
        )
    return f"injected fault {code}"


def injected_error(
    fault: Fault, service: str, operation: str, identity: Identity, account: str, region: str
) -> ApiError:
    """The error answer of an error fault; the fault's own message and status win."""
    return ApiError(
        fault.code,
        fault.message
        or _default_message(fault.code, service, operation, identity, account, region),
        fault.status or _default_status(fault.code),
    )
