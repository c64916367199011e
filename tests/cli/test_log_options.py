"""One log format for every command (issue 15): the daemon's `TIME LEVEL LOGGER: message`
lines, `--log-level` before or after the subcommand, and `--log-level debug` showing our own
debug lines (discovery.*) while botocore's per-request lines stay off.

Before: the one-shot commands logged through `logging.basicConfig` in another format, and
`discovery scan --log-level debug` was a usage error (the flag was only accepted first).
"""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import Harness, base_config

# The daemon's TextFormatter: 2026-01-01T12:00:00.000Z LEVEL logger: message
DAEMON_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) \S+: "
)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(("scan", "--dry-run", "--log-level", "debug"), id="after"),
        pytest.param(("--log-level", "debug", "scan", "--dry-run"), id="before"),
    ],
)
def test_debug_after_or_before_the_command_shows_our_debug_lines(
    harness: Harness, argv: tuple[str, ...]
) -> None:
    config = harness.write_config(base_config())
    result = harness.run(*argv, config=config)
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    debug = [line for line in lines if " DEBUG discovery." in line]
    assert any("scope 111111111111/us-east-1: 4 resource(s), 0 skipped" in line for line in debug)
    assert any("plan: 16 create, 0 update, 0 delete, 0 withheld" in line for line in debug)
    assert all(DAEMON_LINE.match(line) for line in lines), result.stderr
    assert not [line for line in lines if "botocore" in line], result.stderr


def test_a_one_shot_command_warns_in_the_daemons_format(harness: Harness) -> None:
    config = base_config()
    config["aws"][1]["external_id"] = "wrong"  # account B's scopes fail: scan logs them
    result = harness.run("scan", "--dry-run", config=harness.write_config(config))
    assert result.code == 3
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert warnings
    assert all(DAEMON_LINE.match(line) for line in warnings), result.stderr
    assert any("WARNING discovery: scope 222222222222/" in line for line in warnings)


def test_the_default_is_warning_so_no_debug_or_info(harness: Harness) -> None:
    result = harness.run("scan", "--dry-run", config=harness.write_config(base_config()))
    assert result.code == 0, result.stderr
    assert " DEBUG " not in result.stderr
    assert " INFO " not in result.stderr


def test_the_flag_given_after_the_command_wins_over_the_one_before(harness: Harness) -> None:
    config = harness.write_config(base_config())
    result = harness.run(
        "--log-level", "error", "scan", "--dry-run", "--log-level", "debug", config=config
    )
    assert result.code == 0, result.stderr
    assert " DEBUG discovery.wiring: plan: " in result.stderr
