"""What every command of the CLI shares: the exit codes (DESIGN §7) and the usage error.

Exit codes: 0 done, 1 runtime error, 2 bad config or usage, 3 done but some scopes failed (left
frozen) or a confirming read failed (`unconfirmed`), 4 done but changes withheld for review
(the delete guard, a name collision, an empty scope, a config change). When both 3 and 4 apply,
3 wins: a failed scope is the more urgent thing to look at.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CONFIG",
    "EXIT_CONFIG",
    "EXIT_DELETES_WITHHELD",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_SCOPES_FAILED",
    "UsageError",
]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_SCOPES_FAILED = 3
EXIT_DELETES_WITHHELD = 4
DEFAULT_CONFIG = "discovery.yaml"


class UsageError(Exception):
    """Bad usage that argparse cannot see (exit 2)."""
