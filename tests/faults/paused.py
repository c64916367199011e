"""`discovery` with every registry apply held just before its commit, for the mid-apply fault rows.

    python -m tests.faults.paused MARKER scan|run ...

runs the real CLI (`discovery.cli.main.main`) with a `before_commit` seam injected from here:
inside each apply's transaction, with all its writes done, the seam creates MARKER (holding
this process's pid) and waits until the test deletes it (at most PAUSE_LIMIT_S), then lets the
commit go on. The test kills the process, or drops its connection, while MARKER exists: a known
point inside the transaction. Production code carries no such hook.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.faults.support import Daemon, World

PAUSE_LIMIT_S = 120.0


def pause_at(marker: Path) -> None:
    """Create `marker`, then block until it is deleted (or PAUSE_LIMIT_S passed)."""
    marker.write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def command(marker: Path, *argv: str) -> list[str]:
    """The command line of `discovery ARGV...` with its applies paused at `marker`."""
    return [sys.executable, "-m", "tests.faults.paused", str(marker), *argv]


class PausedDaemon(Daemon):
    """`discovery run` (as `Daemon`) whose applies pause at `marker` before they commit."""

    def __init__(self, world: World, *, marker: Path, name: str = "d") -> None:
        super().__init__(world, name=name)
        self.marker = marker

    def command(self) -> list[str]:
        return command(self.marker, *self.cli_args())


def main(argv: list[str]) -> int:
    from discovery.cli.main import main as discovery_main

    marker = Path(argv[0])
    return discovery_main(argv[1:], before_commit=lambda: pause_at(marker))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
