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


def chromium() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, installed with apt-get by `python3 tasks.py test` (or
    `setup`) when missing; or why they cannot be had (the browser test then skips, saying so)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        import importlib.util

        spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
        if spec is not None and spec.loader is not None:
            tasks = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(tasks)
            tasks.ensure_chromium()
        browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        return (
            "Debian's chromium and chromium-driver are not installed and could not be "
            "(apt-get install -y chromium chromium-driver needs root and the Debian mirror)"
        )
    return browser, driver
