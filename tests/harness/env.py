"""The environment that points botocore at the emulator: one definition for every suite.

Whatever the developer's shell holds (a profile, real keys, a region, an SSO cache), a test's
AWS client sees only these: the emulator's URL (or a closed loopback port), dummy keys, one
region, no shared config or credentials file, and no instance metadata lookup. So no test can
reach real AWS, and none depends on the machine it runs on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from discovery.wiring import MIN_POLL_INTERVAL_ENV

ROOT = Path(__file__).resolve().parents[2]
# Nothing listens on the discard port: a client that was not pointed anywhere fails fast.
CLOSED_ENDPOINT = "http://127.0.0.1:9"
# Test daemons cycle every few seconds; the product refuses a poll_interval under 10s. Every
# `discovery` process a test starts gets this floor (an `extra` of "" restores the product's),
# and in-process configs pass it as `min_poll_interval`.
TEST_MIN_POLL_INTERVAL_S = 0.1


def aws_env(endpoint: str = CLOSED_ENDPOINT) -> dict[str, str]:
    """The AWS_* variables of a client pointed at `endpoint` (all other AWS_* must be unset)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def process_env(
    endpoint: str, extra: Mapping[str, str] | None = None, *, inherit_discovery: bool = True
) -> dict[str, str]:
    """The whole environment of a `discovery` process pointed at `endpoint`.

    The caller's AWS_* variables are dropped; its DISCOVERY_* ones too unless
    `inherit_discovery` (a test may set e.g. DISCOVERY_REGISTRY_DSN with monkeypatch for the
    process to inherit); DISCOVERY_MIN_POLL_INTERVAL is the tests' floor either way. `extra`
    comes last; `tests.*` stays importable from the process
    whatever its working directory.
    """
    dropped = ("AWS_",) if inherit_discovery else ("AWS_", "DISCOVERY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(aws_env(endpoint))
    env[MIN_POLL_INTERVAL_ENV] = f"{TEST_MIN_POLL_INTERVAL_S:g}s"
    env.update(
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


def patch_aws_env(
    monkeypatch: pytest.MonkeyPatch, endpoint: str = CLOSED_ENDPOINT
) -> pytest.MonkeyPatch:
    """Make this process's environment `aws_env(endpoint)` for the test (undone after it)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in aws_env(endpoint).items():
        monkeypatch.setenv(name, value)
    return monkeypatch
