"""Fixtures for the operator-facing features: doctor, IAM, Teleport migration, deploy/.

No test talks to real AWS: the environment is reset to dummy credentials and the AWS endpoint
points at a closed local port unless a test points it at the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.env import patch_aws_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield patch_aws_env(monkeypatch)
