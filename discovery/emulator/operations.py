"""The operation table: every AWS operation the emulator answers, by name, across services.

An operation that botocore knows but that is missing here is answered like AWS answers an
unknown action (``InvalidAction`` / ``UnknownOperationException``).
"""

from __future__ import annotations

from . import ops_account, ops_org, ops_rds, ops_sts, ops_tagging
from .ops_base import Handler

__all__ = ["HANDLERS"]

HANDLERS: dict[str, Handler] = {
    **ops_sts.HANDLERS,
    **ops_rds.HANDLERS,
    **ops_tagging.HANDLERS,
    **ops_org.HANDLERS,
    **ops_account.HANDLERS,
}
