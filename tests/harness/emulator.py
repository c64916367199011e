"""Starting and resetting the emulator that a suite's fixtures share.

Suites start one emulator per session or module (a start costs a thread and a port) and put
it back to a known state before every test: no faults, no latency, no throttling.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from discovery.emulator import EmulatorThread


@contextmanager
def running_emulator(fleet: dict[str, Any]) -> Iterator[EmulatorThread]:
    """The emulator on a free loopback port, serving `fleet`, stopped on exit."""
    with EmulatorThread(copy.deepcopy(fleet)) as emulator:
        yield emulator


def reset_emulator(
    emulator: EmulatorThread, *, fleet: dict[str, Any] | None = None, stats: bool = False
) -> EmulatorThread:
    """No faults, no latency, no throttling; then `fleet` served and the stats zeroed if asked."""
    emulator.set_faults([])
    emulator.set_settings(latency_ms=0, throttle=None)
    if fleet is not None:
        emulator.set_fleet(fleet)
    if stats:
        emulator.reset_stats()
    return emulator
