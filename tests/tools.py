"""External checkers the tests use. Missing tools fail the tests; they are never skipped."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def promtool() -> str:
    """Path of promtool: on PATH, or unpacked into .cache/bin by `python3 tasks.py test`."""
    found = shutil.which("promtool") or (ROOT / ".cache" / "bin" / "promtool")
    if not Path(found).exists():
        raise AssertionError(
            "promtool not found: run `python3 tasks.py test` (it installs it into .cache/bin)"
        )
    return str(found)


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
