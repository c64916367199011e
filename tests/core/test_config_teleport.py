"""The `registry` section of a Teleport backend: defaults, and every error naming its key."""

from __future__ import annotations

from typing import Any

import pytest

from discovery.core.config import ConfigError, config_from_mapping


def config(**registry: Any) -> dict[str, Any]:
    return {
        "discovery_group": "prod",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}],
        "registry": {"backend": "teleport", **registry},
    }


def test_defaults() -> None:
    section = config_from_mapping(config()).registry
    assert (section.tctl, section.auth_server, section.identity, section.timeout) == (
        "tctl",
        "",
        "",
        30.0,
    )


def test_all_settings() -> None:
    section = config_from_mapping(
        config(
            tctl="/usr/local/bin/tctl",
            auth_server="teleport.example.com:443",
            identity="/var/lib/teleport-bot/identity",
            timeout="1m",
        )
    ).registry
    assert section.timeout == 60.0
    assert section.auth_server == "teleport.example.com:443"


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ({"identity": "/id"}, "registry: registry.identity needs registry.auth_server"),
        ({"auth_server": "https://t.example.com"}, "registry.auth_server: 'https://t.example.com'"),
        ({"timeout": "0s"}, "registry.timeout:"),
        ({"tctl": " "}, "registry.tctl: must name the tctl binary"),
        ({"tctl_path": "x"}, "registry.tctl_path: is not a known setting"),
    ],
    ids=["identity-needs-auth-server", "auth-server-form", "timeout", "tctl-empty", "unknown"],
)
def test_errors_name_the_key(registry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(config(**registry))
    assert message in str(caught.value)
