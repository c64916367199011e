"""Fuzzing the config loader: whatever the document, the result is a `Config` or a
`ConfigError` with one line naming what is wrong; never another exception. Through the CLI,
a bad document exits 2 with that one line and no traceback.
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from discovery.core.config import Config, ConfigError, config_from_mapping
from discovery.core.durations import (
    MAX_DELETE_WINDOW,
    MAX_POLL_INTERVAL,
    MAX_TIMEOUT,
    MIN_POLL_INTERVAL,
    MIN_TIMEOUT,
)
from discovery.wiring import read_config
from tests.harness.cli import Result, run_in_process
from tests.harness.env import CLOSED_ENDPOINT, process_env

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=30),
    st.dates(),
    st.datetimes(),
    st.binary(max_size=8),
)
keys = st.one_of(st.text(max_size=15), st.integers(-3, 3), st.booleans(), st.none())
anything = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=25,
)


def sometimes(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes anything: near-valid documents reach deep validators."""
    return st.one_of(valid, valid, anything)


durations = st.one_of(
    st.sampled_from(["30s", "5m", "1h", "1m30s", "0s", "250ms", "-1s", "5 m", "1.5h", "0"]),
    st.sampled_from(["1ms", "9s", "10s", "24h", "100000000h", "9" * 400 + "s", True, False]),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
)
# Whole numbers as YAML may spell them, and what pydantic alone would coerce (bool, 3.0, "3").
whole_numbers = st.one_of(
    st.integers(-1, 2000), st.booleans(), st.sampled_from([3.0, "3", 2.5, float("nan")])
)
regions = st.lists(
    st.one_of(
        st.sampled_from(["us-east-1", "eu-west-1", "*", "us-gov-west-1", "EU-WEST-1"]),
        st.text(max_size=12),
    ),
    max_size=3,
)
selector_values = st.one_of(
    st.sampled_from(["*", "prod", "db-*", "^p.*$", "^(unclosed$", "[", ""]),
    st.lists(st.sampled_from(["*", "a", "^x[$", ""]), max_size=3),
)
matchers = st.fixed_dictionaries(
    {
        "types": sometimes(st.lists(st.sampled_from(["rdsproxy", "rds", "ec2", ""]), max_size=3)),
        "regions": sometimes(regions),
    },
    optional={
        "tags": sometimes(st.dictionaries(st.text(max_size=10), selector_values, max_size=3)),
        "assume_role_arn": sometimes(
            st.sampled_from(
                ["arn:aws:iam::123456789012:role/discovery", "arn:aws:iam::1:role/x", "", "role"]
            )
        ),
        "external_id": sometimes(st.sampled_from(["ext", "", "x" * 2000])),
        "unknown": anything,
    },
)
configs = st.fixed_dictionaries(
    {
        "discovery_group": sometimes(st.sampled_from(["prod", "a" * 64, "bad group", "-x", ""])),
        "aws": sometimes(st.lists(matchers, max_size=3)),
    },
    optional={
        "poll_interval": sometimes(durations),
        "poll_jitter": sometimes(durations),
        "registry": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "backend": st.sampled_from(["sqlite", "postgres", "mysql"]),
                    "path": st.text(max_size=20),
                    "dsn": st.sampled_from(["", "host=x", "postgresql://u@h/db", "no = = dsn"]),
                    "dsn_env": st.sampled_from(["DISCOVERY_REGISTRY_DSN", "1BAD", ""]),
                },
            )
        ),
        "safety": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "policy": st.sampled_from(["sync", "upsert-only", "create-only", "delete"]),
                    "max_delete_fraction": st.one_of(
                        st.floats(), st.integers(-2, 2), st.booleans(), st.just("0.3")
                    ),
                    "delete_window": sometimes(durations),
                },
            )
        ),
        "server": sometimes(
            st.fixed_dictionaries(
                {}, optional={"listen": st.sampled_from([":9464", "[::1]:1", "host", "a:99999"])}
            )
        ),
        "aws_client": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "read_timeout": durations,
                    "connect_timeout": durations,
                    "max_attempts": whole_numbers,
                    "max_concurrency": whole_numbers,
                },
            )
        ),
        "typo_key": anything,
    },
)
teleport_documents = st.fixed_dictionaries(
    {"version": sometimes(st.sampled_from(["v3", "v2"]))},
    optional={
        "teleport": sometimes(st.fixed_dictionaries({}, optional={"nodename": st.text()})),
        "auth_service": anything,
        "discovery_service": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "enabled": st.booleans(),
                    "discovery_group": sometimes(st.just("prod")),
                    "poll_interval": sometimes(durations),
                    "aws": sometimes(
                        st.lists(
                            st.one_of(
                                matchers,
                                st.fixed_dictionaries(
                                    {
                                        "types": st.just(["ec2"]),
                                        "regions": st.just(["us-east-1"]),
                                    },
                                    optional={"install": anything, "ssm": anything},
                                ),
                            ),
                            max_size=3,
                        )
                    ),
                    "azure": anything,
                    "gcp": anything,
                    "kubernetes": anything,
                },
            )
        ),
    },
)
documents = st.one_of(configs, teleport_documents, anything)
BASE_DOC = {"discovery_group": "p", "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]}


def load(document: object) -> Config | str:
    """The config, or the ConfigError's message; any other exception fails the test."""
    try:
        return config_from_mapping(document, source="fuzz.yaml")
    except ConfigError as exc:
        return str(exc)


def assert_one_line(message: str) -> None:
    assert message.startswith("fuzz.yaml"), message
    assert "\n" not in message and message.strip() == message, repr(message)


@SETTINGS
@given(document=documents)
@example(document={"discovery_group": "prod", "aws": [{"types": ["rdsproxy"], "regions": [1]}]})
@example(document={1: 2})
@example(document={**BASE_DOC, "poll_jitter": float("nan")})
@example(document={**BASE_DOC, "poll_interval": 1e300})
@example(document={**BASE_DOC, "safety": {"max_delete_fraction": True}})
@example(document={None: "x", "discovery_group": "p", "aws": []})
@example(
    document={
        "discovery_group": "p",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "tags": {"k": ["^(x$"]}}],
    }
)
@example(
    document={
        "discovery_group": "p",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], "tags": {1: "x"}}],
    }
)
@example(
    document={"discovery_group": "p", "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1\n"]}]}
)
def test_any_mapping_gives_a_config_or_a_config_error(document: object) -> None:
    loaded = load(document)
    if isinstance(loaded, str):
        assert_one_line(loaded)
        return
    # What was accepted is usable: at least one scope, valid regions, a valid group.
    assert loaded.aws and all(m.regions for m in loaded.aws)
    assert all(r == r.strip() and "\n" not in r for m in loaded.aws for r in m.regions)
    assert "\n" not in loaded.discovery_group
    assert_usable_numbers(loaded)


def assert_usable_numbers(config: Config) -> None:
    """Every duration and number of an accepted config is finite, typed and in its range: the
    daemon can schedule it (issue 12, hole 6)."""
    assert MIN_POLL_INTERVAL <= config.poll_interval <= MAX_POLL_INTERVAL, config.poll_interval
    assert 0 <= config.poll_jitter_seconds <= config.poll_interval, config.poll_jitter_seconds
    fraction = config.safety.max_delete_fraction
    assert type(fraction) is float and 0 <= fraction <= 1, fraction
    window = config.safety.delete_window
    assert type(window) is float and 0 <= window <= MAX_DELETE_WINDOW, window
    client = config.aws_client
    for timeout in (client.read_timeout, client.connect_timeout):
        assert MIN_TIMEOUT <= timeout <= MAX_TIMEOUT, timeout
    for number in (client.max_attempts, client.max_concurrency):
        assert type(number) is int, number


def dump(document: object) -> str:
    try:
        return yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return yaml.dump(document)  # tuples, bytes...: still YAML, with tags safe_load refuses


@SETTINGS
@given(
    text=st.one_of(
        st.text(alphabet=st.characters(exclude_categories=()), max_size=200), documents.map(dump)
    )
)
@example(text="a: [1, 2\n")
@example(text="- !!python/object:os.system {}\n")
@example(text="? [a, b]\n: c\n")
@example(text="[" * 2000)
@example(text="&a [*a]")
@example(text="\ufeffdiscovery_group: p\n")
@example(text="a: 1\na: 2\n")
def test_any_file_gives_a_config_or_a_config_error(text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", encoding="utf-8", errors="surrogatepass", delete=False
    ) as f:
        f.write(text)
    path = Path(f.name)
    try:
        read_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message, repr(message)
    finally:
        path.unlink()


def validate(text: str, workdir: Path) -> Result:
    """`discovery validate` on `text`, through the CLI's main in this process."""
    config = workdir / "discovery.yaml"
    config.write_text(text, encoding="utf-8", errors="surrogatepass")
    return run_in_process(
        ["validate", "--config", str(config)], env=process_env(CLOSED_ENDPOINT), cwd=workdir
    )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=st.one_of(configs, teleport_documents))
@example(
    document={
        "discovery_group": "prod",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
        "aws_client": {"read_timeout": "0s"},
    }
)
def test_the_cli_exits_2_with_one_line(document: dict[str, Any], tmp_path: Path) -> None:
    done = validate(dump(document), tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    if done.code == 0:
        assert isinstance(load(document), Config)
        return
    assert done.code == 2, (done.code, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("discovery: config error: ")]
    assert len(errors) == 1, done.stderr
    assert str(tmp_path / "discovery.yaml") in errors[0]


def test_a_date_in_the_config_is_named_not_crashed_on() -> None:
    message = load({"discovery_group": datetime.date(2024, 1, 1), "aws": []})
    assert isinstance(message, str) and "discovery_group" in message


BASE = {"discovery_group": "p", "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]}


def test_aws_client_defaults_and_values() -> None:
    defaults = config_from_mapping(BASE).aws_client
    assert (defaults.read_timeout, defaults.connect_timeout) == (30.0, 5.0)
    assert (defaults.max_attempts, defaults.max_concurrency) == (6, 64)
    set_ = config_from_mapping({**BASE, "aws_client": {"read_timeout": "1m30s", "max_attempts": 2}})
    assert (set_.aws_client.read_timeout, set_.aws_client.max_attempts) == (90.0, 2)


@pytest.mark.parametrize(
    ("aws_client", "path"),
    [
        ({"read_timeout": "0s"}, "aws_client.read_timeout"),
        ({"connect_timeout": "soon"}, "aws_client.connect_timeout"),
        ({"max_attempts": 0}, "aws_client.max_attempts"),
        ({"max_concurrency": 5000}, "aws_client.max_concurrency"),
        ({"retries": 3}, "aws_client.retries"),
    ],
)
def test_bad_aws_client_settings_name_their_key(aws_client: dict[str, Any], path: str) -> None:
    message = load({**BASE, "aws_client": aws_client})
    assert isinstance(message, str) and f": {path}: " in message, message
