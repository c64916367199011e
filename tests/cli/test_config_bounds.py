"""Config values `validate` used to accept and the daemon then crashed or wedged on (issue 12,
hole 6): each is refused by `discovery validate` and `discovery run` alike, exit 2, one line
naming the YAML key and what is allowed.

Before: `poll_interval: .nan`, `.inf`, `1.0e+300` or `"100000000h"` → a traceback at start;
`poll_jitter: .nan` → a daemon that never ran a cycle while /healthz said 200; `1ms` → hundreds
of cycles a second; `max_delete_fraction: true` → read as 1.0, the delete guard off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.cli import Result, run_in_process, run_subprocess
from tests.harness.env import CLOSED_ENDPOINT, process_env

BASE = """\
discovery_group: prod
aws:
  - types: [rdsproxy]
    regions: [us-east-1]
registry: {backend: sqlite, path: registry.db}
"""
# The product's floor: no DISCOVERY_MIN_POLL_INTERVAL (the test harness sets one by default).
PRODUCT_ENV = {"DISCOVERY_MIN_POLL_INTERVAL": ""}

BAD = [
    pytest.param("poll_interval: .nan", "poll_interval", "between 10s and 24h", id="interval-nan"),
    pytest.param("poll_interval: .inf", "poll_interval", "between 10s and 24h", id="interval-inf"),
    pytest.param(
        "poll_interval: 1.0e+300", "poll_interval", "between 10s and 24h", id="interval-1e300"
    ),
    pytest.param(
        'poll_interval: "100000000h"', "poll_interval", "between 10s and 24h", id="interval-huge"
    ),
    pytest.param("poll_interval: 1ms", "poll_interval", "between 10s and 24h", id="interval-1ms"),
    pytest.param("poll_interval: 5s", "poll_interval", "between 10s and 24h", id="interval-5s"),
    pytest.param("poll_jitter: .nan", "poll_jitter", "finite", id="jitter-nan"),
    pytest.param("poll_jitter: .inf", "poll_jitter", "finite", id="jitter-inf"),
    pytest.param(
        "safety: {max_delete_fraction: true}",
        "safety.max_delete_fraction",
        "a number from 0 to 1",
        id="fraction-bool",
    ),
    pytest.param(
        "safety: {max_delete_fraction: .nan}",
        "safety.max_delete_fraction",
        "a number from 0 to 1",
        id="fraction-nan",
    ),
    pytest.param(
        "aws_client: {read_timeout: .inf}",
        "aws_client.read_timeout",
        "between 1s and 1h",
        id="read-timeout-inf",
    ),
    pytest.param(
        "aws_client: {connect_timeout: 2h}",
        "aws_client.connect_timeout",
        "between 1s and 1h",
        id="connect-timeout-2h",
    ),
    pytest.param(
        "aws_client: {max_attempts: true}",
        "aws_client.max_attempts",
        "a whole number",
        id="attempts-bool",
    ),
    pytest.param(
        "aws_client: {max_concurrency: true}",
        "aws_client.max_concurrency",
        "a whole number",
        id="concurrency-bool",
    ),
    pytest.param(
        "aws_client: {max_concurrency: 8, max_concurrency_per_account_region: 16}",
        "aws_client",
        "max_concurrency_per_account_region (16) must not exceed max_concurrency (8)",
        id="per-account-region-over-global",
    ),
    pytest.param(
        "aws_client: {max_concurrency_per_account_region: 0}",
        "aws_client.max_concurrency_per_account_region",
        "greater than or equal to 1",
        id="per-account-region-0",
    ),
    pytest.param(
        "aws_client: {scope_deadline: 0s}",
        "aws_client.scope_deadline",
        "between 1s and 1h",
        id="scope-deadline-0s",
    ),
]


def write(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "discovery.yaml"
    path.write_text(BASE + line + "\n", encoding="utf-8")
    return path


def validate(path: Path, env: dict[str, str] | None = None) -> Result:
    return run_in_process(
        ["validate", "--config", str(path)],
        env=process_env(CLOSED_ENDPOINT, {**PRODUCT_ENV, **(env or {})}),
        cwd=path.parent,
    )


def run(path: Path) -> Result:
    """`discovery run` as a process: a config it accepts would keep it running (timeout)."""
    return run_subprocess(
        ["run", "--config", str(path), "--listen", "127.0.0.1:0"],
        env=process_env(CLOSED_ENDPOINT, PRODUCT_ENV),
        cwd=path.parent,
        timeout=30,
    )


def assert_refused(done: Result, path: Path, key: str, allowed: str) -> None:
    assert done.code == 2, (done.code, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("discovery: config error: ")]
    assert len(errors) == 1, done.stderr
    assert f"{path}: {key}: " in errors[0], errors[0]
    assert allowed in errors[0], errors[0]


@pytest.mark.parametrize(("line", "key", "allowed"), BAD)
def test_validate_refuses_a_value_the_daemon_cannot_use(
    tmp_path: Path, line: str, key: str, allowed: str
) -> None:
    path = write(tmp_path, line)
    assert_refused(validate(path), path, key, allowed)


@pytest.mark.parametrize(("line", "key", "allowed"), BAD)
def test_run_refuses_a_value_the_daemon_cannot_use(
    tmp_path: Path, line: str, key: str, allowed: str
) -> None:
    path = write(tmp_path, line)
    assert_refused(run(path), path, key, allowed)
    assert not (tmp_path / "registry.db").exists()  # refused before anything was opened


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("poll_interval: 10s", id="interval-10s"),
        pytest.param("poll_interval: 24h", id="interval-24h"),
        pytest.param("poll_jitter: 0s", id="jitter-off"),
        pytest.param("safety: {max_delete_fraction: 0}", id="fraction-0"),
        pytest.param("safety: {max_delete_fraction: 1}", id="fraction-1"),
        pytest.param("aws_client: {read_timeout: 1s, connect_timeout: 1h}", id="timeouts-bounds"),
        # A low global ceiling lowers the per-(account, region) default with it: not an error.
        pytest.param("aws_client: {max_concurrency: 4}", id="low-ceiling-alone"),
        pytest.param(
            "aws_client: {max_concurrency: 300, max_concurrency_per_account_region: 300,"
            " scope_deadline: 1h}",
            id="scale-bounds",
        ),
    ],
)
def test_validate_accepts_the_bounds(tmp_path: Path, line: str) -> None:
    done = validate(write(tmp_path, line))
    assert done.code == 0, done.stderr


def test_the_tests_floor_lowers_the_minimum_poll_interval_only_through_the_environment(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "poll_interval: 1s")
    assert validate(path).code == 2
    assert validate(path, {"DISCOVERY_MIN_POLL_INTERVAL": "1s"}).code == 0
    # Even a test cannot go below 100ms, and the variable itself is checked.
    for bad in ("1ms", "1h", "soon"):
        done = validate(path, {"DISCOVERY_MIN_POLL_INTERVAL": bad})
        assert done.code == 2, (bad, done.stderr)
        assert "config error: $DISCOVERY_MIN_POLL_INTERVAL: " in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
