"""Durations and numbers in the config (issue 12, hole 6): finite, in the range they are used
in, and never a bool; the shortest poll interval is the caller's to lower, never the file's."""

from __future__ import annotations

import math
from typing import Any

import pytest

from discovery.core.config import Config, ConfigError, config_from_mapping
from discovery.core.durations import (
    FLOOR_POLL_INTERVAL,
    MAX_POLL_INTERVAL,
    MAX_TIMEOUT,
    MIN_POLL_INTERVAL,
    MIN_TIMEOUT,
    format_duration,
    parse_duration,
    parse_seconds,
    strict_fraction,
    strict_int,
)
from discovery.wiring import min_poll_interval

BASE: dict[str, Any] = {
    "discovery_group": "p",
    "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
}


def load(**settings: Any) -> Config | str:
    try:
        return config_from_mapping({**BASE, **settings}, source="f.yaml")
    except ConfigError as exc:
        return str(exc)


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (0.1, "100ms"),
        (10, "10s"),
        (90, "90s"),
        (120, "2m"),
        (3600, "1h"),
        (86400, "24h"),
        (math.nan, ".nan"),
        (math.inf, ".inf"),
        (-5, "-5s"),
    ],
)
def test_format_duration(seconds: float, written: str) -> None:
    assert format_duration(seconds) == written


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, "9" * 400 + "s", 1e400, 0, "0s", -1]
)
def test_parse_duration_refuses_what_is_not_a_finite_positive_duration(value: object) -> None:
    with pytest.raises(ValueError, match=r"finite|greater than zero"):
        parse_duration(value)


def test_parse_seconds_leaves_the_range_to_the_caller() -> None:
    assert math.isnan(parse_seconds(math.nan))
    assert parse_seconds("1m30s") == 90
    with pytest.raises(ValueError):
        parse_seconds(True)


@pytest.mark.parametrize(
    "value", [True, False, "0.3", None, [0.3], math.nan, math.inf, 1.01, -0.0001]
)
def test_strict_fraction_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="number from 0 to 1"):
        strict_fraction(value)


@pytest.mark.parametrize("value", [True, 3.0, "3", None])
def test_strict_int_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="whole number"):
        strict_int(value)


BAD = [
    pytest.param({"poll_interval": math.nan}, "poll_interval", id="interval-nan"),
    pytest.param({"poll_interval": math.inf}, "poll_interval", id="interval-inf"),
    pytest.param({"poll_interval": 1e300}, "poll_interval", id="interval-1e300"),
    pytest.param({"poll_interval": "100000000h"}, "poll_interval", id="interval-huge"),
    pytest.param({"poll_interval": "1ms"}, "poll_interval", id="interval-1ms"),
    pytest.param({"poll_interval": "9s"}, "poll_interval", id="interval-9s"),
    pytest.param({"poll_interval": "24h1s"}, "poll_interval", id="interval-over-a-day"),
    pytest.param({"poll_interval": True}, "poll_interval", id="interval-bool"),
    pytest.param({"poll_jitter": math.nan}, "poll_jitter", id="jitter-nan"),
    pytest.param({"poll_jitter": math.inf}, "poll_jitter", id="jitter-inf"),
    pytest.param(
        {"safety": {"max_delete_fraction": True}}, "safety.max_delete_fraction", id="f-true"
    ),
    pytest.param(
        {"safety": {"max_delete_fraction": False}}, "safety.max_delete_fraction", id="f-false"
    ),
    pytest.param(
        {"safety": {"max_delete_fraction": math.nan}}, "safety.max_delete_fraction", id="f-nan"
    ),
    pytest.param(
        {"safety": {"max_delete_fraction": "0.3"}}, "safety.max_delete_fraction", id="f-text"
    ),
    pytest.param(
        {"aws_client": {"read_timeout": math.inf}}, "aws_client.read_timeout", id="rt-inf"
    ),
    pytest.param(
        {"aws_client": {"read_timeout": "500ms"}}, "aws_client.read_timeout", id="rt-short"
    ),
    pytest.param({"aws_client": {"read_timeout": "1h1s"}}, "aws_client.read_timeout", id="rt-long"),
    pytest.param(
        {"aws_client": {"connect_timeout": math.nan}}, "aws_client.connect_timeout", id="ct-nan"
    ),
    pytest.param(
        {"aws_client": {"max_attempts": True}}, "aws_client.max_attempts", id="attempts-true"
    ),
    pytest.param(
        {"aws_client": {"max_attempts": 2.0}}, "aws_client.max_attempts", id="attempts-float"
    ),
    pytest.param(
        {"aws_client": {"max_concurrency": True}}, "aws_client.max_concurrency", id="conc-true"
    ),
]


@pytest.mark.parametrize(("settings", "key"), BAD)
def test_a_value_the_daemon_cannot_use_names_its_key(settings: dict[str, Any], key: str) -> None:
    message = load(**settings)
    assert isinstance(message, str), message
    assert message.startswith(f"f.yaml: {key}: "), message
    assert "\n" not in message


def test_the_bounds_themselves_are_accepted() -> None:
    low = load(
        poll_interval=MIN_POLL_INTERVAL,
        poll_jitter=0,
        safety={"max_delete_fraction": 0},
        aws_client={"read_timeout": MIN_TIMEOUT, "connect_timeout": MIN_TIMEOUT},
    )
    high = load(
        poll_interval=MAX_POLL_INTERVAL,
        poll_jitter=MAX_POLL_INTERVAL,
        safety={"max_delete_fraction": 1},
        aws_client={"read_timeout": MAX_TIMEOUT, "connect_timeout": MAX_TIMEOUT},
    )
    assert isinstance(low, Config) and isinstance(high, Config)
    assert (low.poll_interval, low.safety.max_delete_fraction) == (10.0, 0.0)
    assert (high.poll_interval, high.aws_client.read_timeout) == (86400.0, 3600.0)


def test_the_minimum_poll_interval_is_the_callers() -> None:
    doc = {**BASE, "poll_interval": "1s"}
    with pytest.raises(ConfigError, match="poll_interval: must be between 10s and 24h, got 1s"):
        config_from_mapping(doc)
    assert config_from_mapping(doc, min_poll_interval=1.0).poll_interval == 1.0
    with pytest.raises(ConfigError, match=r"between 2s and 24h, got \.nan"):
        config_from_mapping({**BASE, "poll_interval": math.nan}, min_poll_interval=2.0)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, MIN_POLL_INTERVAL, id="unset"),
        pytest.param({"DISCOVERY_MIN_POLL_INTERVAL": " "}, MIN_POLL_INTERVAL, id="empty"),
        pytest.param({"DISCOVERY_MIN_POLL_INTERVAL": "1s"}, 1.0, id="1s"),
        pytest.param({"DISCOVERY_MIN_POLL_INTERVAL": "100ms"}, FLOOR_POLL_INTERVAL, id="floor"),
    ],
)
def test_min_poll_interval_from_the_environment(environ: dict[str, str], expected: float) -> None:
    assert min_poll_interval(environ) == expected


@pytest.mark.parametrize("value", ["50ms", "11s", ".nan", "soon", "true"])
def test_a_bad_min_poll_interval_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^\$DISCOVERY_MIN_POLL_INTERVAL: "):
        min_poll_interval({"DISCOVERY_MIN_POLL_INTERVAL": value})
