"""External checkers the tests use. Missing tools fail the tests; they are never skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def promtool() -> str:
    """Path of promtool: on PATH, or unpacked into .cache/bin by `python3 tasks.py test`."""
    found = shutil.which("promtool") or (ROOT / ".cache" / "bin" / "promtool")
    if not Path(found).exists():
        raise AssertionError(
            "promtool not found: run `python3 tasks.py test` (it installs it into .cache/bin)"
        )
    return str(found)
