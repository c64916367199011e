"""The lock files agree with pyproject.toml, so `tasks.py` and the image install what it asks for.

A dependency added to or re-pinned in pyproject.toml without `python3 tasks.py lock` fails here
(ensure_venv installs only the lock, with `--no-deps` for the project itself).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def wanted(*extras: str) -> list[Requirement]:
    names = list(PYPROJECT["dependencies"])
    for extra in extras:
        names += PYPROJECT["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("runtime.lock", ("postgres",)), ("dev.lock", ("emulator", "postgres", "test"))],
)
def test_every_requirement_is_locked_at_a_version_it_allows(
    lock: str, extras: tuple[str, ...]
) -> None:
    locked = pins(lock)
    problems = []
    for req in wanted(*extras):
        version = locked.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not in requirements/{lock}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} in {lock} does not satisfy {req}")
    assert not problems, "; ".join(problems) + ": run `python3 tasks.py lock`"


def test_every_pin_carries_hashes() -> None:
    for lock in ("runtime.lock", "dev.lock"):
        text = (ROOT / "requirements" / lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        for entry in entries:
            if PIN.match(entry):
                assert "--hash=sha256:" in entry, (lock, entry.splitlines()[0])


def test_the_image_runs_what_the_tests_run() -> None:
    """Each runtime pin is the same version in dev.lock, and the runtime has no test tooling."""
    runtime, dev = pins("runtime.lock"), pins("dev.lock")
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}
    for test_only in ("pytest", "moto", "mypy", "ruff"):
        assert test_only not in runtime, test_only
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/runtime.lock" in dockerfile
    assert "--no-deps" in dockerfile
