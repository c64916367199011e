"""No pydantic wording reaches the user (issue 15): every setting, given a value of each wrong
shape, is refused in our words, naming the key path with its list index."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from discovery.core.config import Config, ConfigError, config_from_mapping
from discovery.core.config_errors import did_you_mean, model_at, yaml_path
from discovery.core.matchers import Matcher

GOOD: dict[str, Any] = {
    "discovery_group": "g",
    "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
}
PATHS = [
    ("discovery_group",),
    ("poll_interval",),
    ("poll_jitter",),
    ("aws",),
    ("aws", 0),
    ("aws", 0, "types"),
    ("aws", 0, "regions"),
    ("aws", 0, "tags"),
    ("aws", 0, "assume_role_arn"),
    ("registry",),
    ("registry", "backend"),
    ("registry", "path"),
    ("safety",),
    ("safety", "policy"),
    ("safety", "max_delete_fraction"),
    ("server",),
    ("server", "listen"),
    ("server", "max_connections"),
    ("aws_client",),
    ("aws_client", "max_attempts"),
    ("allow_unknown_regions",),
]
WRONG = [True, 7, -1.5, "x", [1, "y"], {"k": [None]}, None]
PYDANTIC_WORDS = (
    "Input should",
    "Field required",
    "Extra inputs",
    "valid dictionary",
    "instance of",
)


def _with(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node: Any = data
    for part in path[:-1]:
        if isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("path", PATHS, ids=lambda p: yaml_path(p))
def test_every_wrong_shape_is_refused_in_our_words(path: tuple[str | int, ...]) -> None:
    for value in WRONG:
        try:
            config_from_mapping(_with(path, value), source="f.yaml")
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith("f.yaml: "), message
            assert not any(w in message for w in PYDANTIC_WORDS), message
            assert "\n" not in message


def test_model_at_walks_lists_and_mappings() -> None:
    assert model_at(Config, ("aws", 0)) is Matcher
    assert model_at(Config, ("aws", 0, "tags")) is None
    assert model_at(Config, ("nope",)) is None


@pytest.mark.parametrize(
    ("key", "known", "guess"),
    [
        ("region", ["regions", "types"], "regions"),
        ("Regions", ["regions", "types"], "regions"),
        ("assume_role_arm", ["assume_role_arn", "external_id"], "assume_role_arn"),
        ("zzz", ["regions", "types"], ""),
    ],
)
def test_did_you_mean(key: str, known: list[str], guess: str) -> None:
    assert did_you_mean(key, known) == guess
