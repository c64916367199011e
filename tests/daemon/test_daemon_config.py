"""The daemon's settings (`poll_jitter`, `server.listen`) and `discovery run`'s usage errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.cli.main import EXIT_CONFIG, main
from discovery.core.config import ConfigError, config_from_mapping, parse_listen

MINIMAL: dict[str, Any] = {
    "discovery_group": "g",
    "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
}


def config(**overrides: Any) -> Any:
    return config_from_mapping({**MINIMAL, **overrides})


@pytest.mark.parametrize(
    ("settings", "jitter"),
    [
        pytest.param({}, 30.0, id="default-10%-of-5m"),
        pytest.param({"poll_interval": "30s"}, 3.0, id="default-follows-interval"),
        pytest.param({"poll_jitter": "45s"}, 45.0, id="explicit"),
        pytest.param({"poll_jitter": "0s"}, 0.0, id="off-0s"),
        pytest.param({"poll_jitter": 0}, 0.0, id="off-0"),
        pytest.param({"poll_interval": "1m", "poll_jitter": "1m"}, 60.0, id="equal-interval"),
    ],
)
def test_poll_jitter(settings: dict[str, Any], jitter: float) -> None:
    assert config(**settings).poll_jitter_seconds == jitter


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"poll_jitter": "soon"}, "poll_jitter: 'soon' is not a duration", id="text"),
        pytest.param({"poll_jitter": "-5s"}, "poll_jitter:", id="negative"),
        pytest.param(
            {"poll_interval": "1m", "poll_jitter": "2m"},
            "poll_jitter: poll_jitter (120s) must not be longer than poll_interval (60s)",
            id="longer-than-interval",
        ),
        pytest.param({"server": {"listen": "9464"}}, "server.listen: '9464' is not", id="no-host"),
        pytest.param(
            {"server": {"listen": "::1:9464"}}, "server.listen:", id="ipv6-without-brackets"
        ),
        pytest.param({"server": {"listen": "host:99999"}}, "server.listen:", id="port-range"),
    ],
)
def test_bad_daemon_settings_name_their_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^config: ") as raised:
        config(**settings)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        (":9464", ("", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(text) == parsed


def test_run_with_a_bad_listen_flag_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    assert main(["run", "--config", str(path), "--listen", "nowhere"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "--listen: 'nowhere' is not an address to listen on" in err
    assert "Traceback" not in err


def test_run_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "poll_jitter": "later"}))
    assert main(["run", "--config", str(path)]) == EXIT_CONFIG
    assert "poll_jitter" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("", "registry.dsn: backend postgres needs a DSN"),
        (
            "host='db",
            "registry.dsn (or $DISCOVERY_REGISTRY_DSN): the PostgreSQL DSN is not a valid",
        ),
    ],
    ids=["no-dsn", "malformed-dsn"],
)
def test_run_with_postgres_and_no_usable_dsn_exits_2_before_starting(
    tmp_path: Path, dsn: str, message: str
) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "registry": {"backend": "postgres"}}))
    env = {**os.environ, "DISCOVERY_REGISTRY_DSN": dsn}
    # A subprocess with a deadline: a daemon that started after all must not hang the suite.
    done = subprocess.run(
        [sys.executable, "-m", "discovery", "run", "--config", str(path), "--listen", ":0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert message in done.stderr and str(path) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
