"""The configuration file, checked against DESIGN §7.

A valid config loads with the documented defaults; every bad config ends in one `ConfigError`
whose single-line message names the YAML path of the bad field.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from discovery.core.config import (
    Config,
    ConfigError,
    config_from_mapping,
    parse_duration,
)
from discovery.core.convert import convert_proxies
from discovery.core.model import Matching, Proxy
from discovery.core.selector import selector_matches
from discovery.wiring import load_config

MINIMAL = """\
discovery_group: prod
aws:
  - types: ["rdsproxy"]
    regions: ["us-east-1"]
"""

DESIGN_EXAMPLE = """\
discovery_group: prod            # required, the owner id
poll_interval: 5m                # daemon; plus jitter so fleets of daemons do not align
aws:
  - types: ["rdsproxy"]
    regions: ["us-east-1", "eu-west-1"]
    tags: {"env": ["prod", "staging"], "team": "db-*"}
    assume_role_arn: arn:aws:iam::123456789012:role/discovery
    external_id: example-external-id
registry: {backend: sqlite, path: discovery.db}   # or {backend: postgres, dsn: ...}
safety: {policy: sync, max_delete_fraction: 0.3}
server: {listen: "127.0.0.1:9464"}  # daemon HTTP: /metrics /healthz /readyz /status
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "discovery.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


def assert_one_clear_line(message: str) -> None:
    assert message.strip()
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message
    assert "errors.pydantic.dev" not in message, message


def names_path(message: str, path: str) -> bool:
    """The YAML path appears as a whole path, not as part of a longer one."""
    return re.search(r"(?<![\w\].])" + re.escape(path) + r"(?![\w\[.])", message) is not None


def matcher_yaml(**fields: str) -> str:
    """A config with one matcher; `fields` are YAML lines that replace or add matcher keys."""
    base = {"types": '["rdsproxy"]', "regions": '["us-east-1"]'}
    base.update(fields)
    lines = [f"    {key}: {value}" for key, value in base.items() if value != "<absent>"]
    lines[0] = "  - " + lines[0].lstrip()
    return "discovery_group: prod\naws:\n" + "\n".join(lines) + "\n"


# --- Valid configs ------------------------------------------------------------------------


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)

    assert config.discovery_group == "prod"
    assert config.poll_interval == 300
    assert config.safety.policy == "sync"
    assert config.safety.max_delete_fraction == pytest.approx(0.3)
    (matcher,) = config.aws
    assert list(matcher.types) == ["rdsproxy"]
    assert list(matcher.regions) == ["us-east-1"]
    assert {key: list(values) for key, values in matcher.tags.items()} == {"*": ["*"]}
    assert matcher.assume_role_arn == ""
    assert matcher.external_id == ""


def test_default_tags_select_everything(tmp_path: Path) -> None:
    (matcher,) = load(tmp_path, MINIMAL).aws

    assert selector_matches(matcher.tags, {"env": "prod", "region": "us-east-1"})
    assert selector_matches(matcher.tags, {})


def test_design_example_config(tmp_path: Path) -> None:
    config = load(tmp_path, DESIGN_EXAMPLE)

    assert config.poll_interval == 300
    (matcher,) = config.aws
    assert list(matcher.regions) == ["us-east-1", "eu-west-1"]
    assert matcher.assume_role_arn == "arn:aws:iam::123456789012:role/discovery"
    assert matcher.external_id == "example-external-id"
    assert config.registry.backend == "sqlite"
    assert config.registry.path == "discovery.db"
    assert config.safety.policy == "sync"
    assert config.safety.max_delete_fraction == pytest.approx(0.3)
    assert config.server.listen == "127.0.0.1:9464"


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"

    config = load_config(example)

    assert config.discovery_group
    assert config.aws


@pytest.mark.parametrize(
    ("labels", "matches"),
    [
        pytest.param({"env": "prod", "team": "db-core"}, True, id="list-and-glob"),
        pytest.param({"env": "staging", "team": "db-"}, True, id="other-list-entry"),
        pytest.param({"env": "dev", "team": "db-core"}, False, id="list-mismatch"),
        pytest.param({"env": "prod", "team": "xdb-1"}, False, id="string-glob-anchored"),
        pytest.param({"env": "prod", "team": "web"}, False, id="string-glob-mismatch"),
        pytest.param({"env": "prod"}, False, id="missing-key"),
    ],
)
def test_tag_selector_string_and_list_values_from_the_config(
    tmp_path: Path, labels: dict[str, str], matches: bool
) -> None:
    (matcher,) = load(tmp_path, DESIGN_EXAMPLE).aws

    assert selector_matches(matcher.tags, labels) is matches


def test_matcher_from_the_config_drives_conversion(tmp_path: Path) -> None:
    config = load(tmp_path, DESIGN_EXAMPLE)
    (matcher,) = config.aws
    proxies = [
        Proxy(
            name=name,
            arn=f"arn:aws:rds:us-east-1:123456789012:db-proxy:prx-{name}",
            endpoint=f"{name}.proxy-abc.us-east-1.rds.amazonaws.com",
            engine_family="POSTGRESQL",
            status="available",
            require_tls=True,
            tags=tags,
        )
        for name, tags in (
            ("orders", {"env": "prod", "team": "db-core"}),
            ("web", {"env": "prod", "team": "web"}),
        )
    ]

    converted = convert_proxies(
        proxies,
        Matching(
            tags=matcher.tags,
            assume_role_arn=matcher.assume_role_arn,
            external_id=matcher.external_id,
            discovery_group=config.discovery_group,
        ),
    )

    assert [r.aws.rdsproxy_name for r in converted.resources] == ["orders"]
    assert converted.resources[0].aws.external_id == "example-external-id"
    assert [s.name for s in converted.skipped] == ["web"]


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        pytest.param("30s", 30, id="seconds"),
        pytest.param("5m", 300, id="minutes"),
        pytest.param("1h", 3600, id="hours"),
    ],
)
def test_durations(tmp_path: Path, written: str, seconds: int) -> None:
    assert parse_duration(written) == seconds
    assert load(tmp_path, MINIMAL + f"poll_interval: {written}\n").poll_interval == seconds


@pytest.mark.parametrize(
    "region",
    [
        pytest.param("us-east-1", id="us-east-1"),
        pytest.param("eu-west-1", id="eu-west-1"),
        pytest.param("ap-southeast-2", id="ap-southeast-2"),
        pytest.param("il-central-1", id="il-central-1"),
        pytest.param("us-gov-west-1", id="govcloud"),
        pytest.param("cn-north-1", id="china"),
    ],
)
def test_valid_regions(tmp_path: Path, region: str) -> None:
    (matcher,) = load(tmp_path, matcher_yaml(regions=f'["{region}"]')).aws

    assert list(matcher.regions) == [region]


@pytest.mark.parametrize(
    "arn",
    [
        pytest.param("arn:aws:iam::123456789012:role/discovery", id="simple"),
        pytest.param("arn:aws:iam::123456789012:role/path/to/discovery", id="with-path"),
        pytest.param("arn:aws-cn:iam::123456789012:role/discovery", id="china"),
        pytest.param("arn:aws-us-gov:iam::123456789012:role/discovery", id="govcloud"),
    ],
)
def test_valid_role_arns(tmp_path: Path, arn: str) -> None:
    (matcher,) = load(tmp_path, matcher_yaml(assume_role_arn=arn, external_id="x")).aws

    assert matcher.assume_role_arn == arn
    assert matcher.external_id == "x"


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("sync", id="sync"),
        pytest.param("upsert-only", id="upsert-only"),
        pytest.param("create-only", id="create-only"),
    ],
)
def test_policies(tmp_path: Path, policy: str) -> None:
    config = load(tmp_path, MINIMAL + f"safety: {{policy: {policy}}}\n")

    assert config.safety.policy == policy


def test_config_from_mapping_accepts_the_parsed_document() -> None:
    config = config_from_mapping(
        {"discovery_group": "prod", "aws": [{"types": ["rdsproxy"], "regions": ["eu-west-1"]}]}
    )

    assert list(config.aws[0].regions) == ["eu-west-1"]


# --- Bad configs: one ConfigError naming the YAML path ---------------------------------------


BAD = [
    pytest.param(MINIMAL + "pol_interval: 5m\n", "pol_interval", id="unknown-top-level-key"),
    pytest.param(matcher_yaml(foo="bar"), "aws[0].foo", id="unknown-matcher-key"),
    pytest.param(matcher_yaml(tag='{"env": "prod"}'), "aws[0].tag", id="misspelt-matcher-key"),
    pytest.param(
        "aws:\n  - types: [rdsproxy]\n    regions: [us-east-1]\n",
        "discovery_group",
        id="missing-discovery-group",
    ),
    pytest.param("discovery_group: prod\n", "aws", id="missing-aws"),
    pytest.param("discovery_group: prod\naws: []\n", "aws", id="empty-aws"),
    pytest.param(matcher_yaml(types='["rds"]'), "aws[0].types", id="type-rds"),
    pytest.param(matcher_yaml(types='["rdsproxy", "ec2"]'), "aws[0].types", id="type-ec2"),
    pytest.param(matcher_yaml(types="[]"), "aws[0].types", id="empty-types"),
    pytest.param(matcher_yaml(types="<absent>"), "aws[0].types", id="missing-types"),
    pytest.param(matcher_yaml(regions="[]"), "aws[0].regions", id="empty-regions"),
    pytest.param(matcher_yaml(regions="<absent>"), "aws[0].regions", id="missing-regions"),
    pytest.param(matcher_yaml(regions='["useast1"]'), "aws[0].regions", id="region-no-dashes"),
    pytest.param(matcher_yaml(regions='["US-EAST-1"]'), "aws[0].regions", id="region-uppercase"),
    pytest.param(matcher_yaml(regions='["us-east"]'), "aws[0].regions", id="region-no-number"),
    pytest.param(
        matcher_yaml(regions='["us-east-1", "moon-base-1x"]'),
        "aws[0].regions",
        id="second-region-invalid",
    ),
    pytest.param(
        matcher_yaml(assume_role_arn="discovery"), "aws[0].assume_role_arn", id="role-not-an-arn"
    ),
    pytest.param(
        matcher_yaml(assume_role_arn="arn:aws:iam::1234:role/discovery"),
        "aws[0].assume_role_arn",
        id="role-short-account",
    ),
    pytest.param(
        matcher_yaml(assume_role_arn="arn:aws:iam::123456789012:user/bob"),
        "aws[0].assume_role_arn",
        id="role-arn-of-a-user",
    ),
    pytest.param(
        matcher_yaml(assume_role_arn="arn:aws:s3:::bucket"),
        "aws[0].assume_role_arn",
        id="role-arn-of-another-service",
    ),
    pytest.param(matcher_yaml(tags='{"env": "^(prod$"}'), "aws[0].tags", id="invalid-regex"),
    pytest.param(
        matcher_yaml(tags='{"env": ["prod", "^[a-$"]}'), "aws[0].tags", id="invalid-regex-in-list"
    ),
    pytest.param(matcher_yaml(tags='["env"]'), "aws[0].tags", id="tags-not-a-mapping"),
    pytest.param(MINIMAL + "poll_interval: 5 minutes\n", "poll_interval", id="duration-words"),
    pytest.param(MINIMAL + "poll_interval: soon\n", "poll_interval", id="duration-text"),
    pytest.param(MINIMAL + "poll_interval: 10x\n", "poll_interval", id="duration-bad-unit"),
    pytest.param(MINIMAL + "poll_interval: -5m\n", "poll_interval", id="duration-negative"),
    pytest.param(
        MINIMAL + "safety: {max_delete_fraction: 1.5}\n",
        "safety.max_delete_fraction",
        id="fraction-above-1",
    ),
    pytest.param(
        MINIMAL + "safety: {max_delete_fraction: -0.1}\n",
        "safety.max_delete_fraction",
        id="fraction-negative",
    ),
    pytest.param(MINIMAL + "safety: {policy: delete-all}\n", "safety.policy", id="bad-policy"),
    pytest.param(MINIMAL + "safety: {polcy: sync}\n", "safety.polcy", id="unknown-safety-key"),
    pytest.param(MINIMAL + "registry: {backend: mysql}\n", "registry.backend", id="bad-backend"),
    pytest.param(
        "discovery_group: prod\naws:\n"
        "  - types: [rdsproxy]\n    regions: [us-east-1]\n"
        "  - types: [rdsproxy]\n    regions: [nowhere]\n",
        "aws[1].regions",
        id="second-matcher",
    ),
]


@pytest.mark.parametrize(("text", "path"), BAD)
def test_bad_config_names_the_yaml_path(tmp_path: Path, text: str, path: str) -> None:
    message = config_error(tmp_path, text)

    assert names_path(message, path), message
    assert_one_clear_line(message)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "aws:\n  - types: [rdsproxy]\n    regions: [us-east-1]\n", id="missing-discovery-group"
        ),
        pytest.param("discovery_group: prod\n", id="missing-aws"),
        pytest.param(matcher_yaml(regions="<absent>"), id="missing-regions"),
    ],
)
def test_missing_field_says_it_is_required(tmp_path: Path, text: str) -> None:
    message = config_error(tmp_path, text).lower()

    assert "required" in message or "missing" in message, message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param(MINIMAL + "pol_interval: 5m\n", "pol_interval", id="top-level"),
        pytest.param(matcher_yaml(foo="bar"), "foo", id="matcher"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(tmp_path, text)

    assert key in message
    assert_one_clear_line(message)


def test_external_id_without_role_names_the_matcher_and_the_field(tmp_path: Path) -> None:
    message = config_error(tmp_path, matcher_yaml(external_id="example-external-id"))

    assert "aws[0]" in message, message
    assert "external_id" in message, message
    assert "assume_role_arn" in message, message
    assert_one_clear_line(message)


def test_invalid_regex_message_shows_the_pattern(tmp_path: Path) -> None:
    message = config_error(tmp_path, matcher_yaml(tags='{"env": "^(prod$"}'))

    assert "^(prod$" in message, message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("discovery_group: prod\naws: [\n", id="unclosed-bracket"),
        pytest.param("discovery_group: prod\n  aws: x\n bad: - y\n", id="bad-indentation"),
        pytest.param('discovery_group: "prod\n', id="unclosed-quote"),
    ],
)
def test_broken_yaml_names_the_line(tmp_path: Path, text: str) -> None:
    message = config_error(tmp_path, text)

    assert "line" in message.lower(), message
    assert re.search(r"line \d+", message), message
    assert_one_clear_line(message)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n", id="only-comments"),
        pytest.param("\n\n", id="blank-lines"),
    ],
)
def test_empty_file(tmp_path: Path, text: str) -> None:
    message = config_error(tmp_path, text)

    assert "empty" in message.lower(), message
    assert_one_clear_line(message)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- discovery_group: prod\n", id="list"),
        pytest.param("just a string\n", id="scalar"),
        pytest.param("42\n", id="number"),
    ],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    message = config_error(tmp_path, text)

    assert "mapping" in message.lower(), message
    assert_one_clear_line(message)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "discovery.yaml"

    with pytest.raises(ConfigError) as info:
        load_config(missing)

    message = str(info.value)
    assert str(missing) in message
    assert_one_clear_line(message)


def test_config_error_hides_the_validation_internals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, matcher_yaml(regions="[]"))

    # The CLI prints str(error); no chained library exception is shown with it.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(None, id="none"),
        pytest.param([1, 2], id="list"),
        pytest.param({"discovery_group": "prod"}, id="missing-aws"),
        pytest.param({"discovery_group": "prod", "aws": [{"types": ["x"]}]}, id="bad-matcher"),
    ],
)
def test_config_from_mapping_raises_config_error(data: object) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data)

    assert_one_clear_line(str(info.value))
