"""Organization matchers and `regions: ["*"]` in the config: what is accepted, and errors
that name the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from discovery.core.config import ConfigError, config_from_mapping

ORG = {"id": "o-exampleorg01"}


def load(matcher: dict[str, Any], **top: Any) -> Any:
    doc = {
        "discovery_group": "g",
        "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"], **matcher}],
        **top,
    }
    return config_from_mapping(doc)


def test_an_organization_matcher_with_all_regions() -> None:
    config = load(
        {
            "regions": ["*"],
            "organization": {
                "id": "o-exampleorg01",
                "include_ous": ["r-root"],
                "exclude_ous": ["ou-root-sand0001"],
            },
            "assume_role_name": "discovery",
            "external_id": "x",
            "organization_role_arn": "arn:aws:iam::999999999999:role/org-reader",
        },
        organization={"cache_ttl": "30m", "gone_grace": "48h", "state_path": "state.json"},
    )
    matcher = config.aws[0]
    assert matcher.all_regions and matcher.needs_listing
    assert matcher.organization is not None and matcher.organization.exclude_ous == (
        "ou-root-sand0001",
    )
    assert (config.organization.cache_ttl, config.organization.gone_grace) == (1800.0, 48 * 3600.0)


def test_defaults() -> None:
    config = load({"regions": ["*"], "assume_role_arn": "arn:aws:iam::111111111111:role/d"})
    assert config.aws[0].all_regions and config.aws[0].organization is None
    assert (config.organization.cache_ttl, config.organization.gone_grace) == (3600.0, 86400.0)


@pytest.mark.parametrize(
    ("matcher", "top", "where", "says"),
    [
        ({"organization": ORG}, {}, "aws[0]", "organization needs assume_role_name"),
        ({"assume_role_name": "d"}, {}, "aws[0]", "assume_role_name needs organization"),
        (
            {
                "organization": ORG,
                "assume_role_name": "d",
                "assume_role_arn": "arn:aws:iam::111111111111:role/d",
            },
            {},
            "aws[0]",
            "assume_role_arn cannot be used with organization",
        ),
        (
            {"organization": {"id": "org-1"}, "assume_role_name": "d"},
            {},
            "aws[0].organization.id",
            "o-exampleorgid",
        ),
        (
            {"organization": {**ORG, "exclude_ous": ["sandbox"]}, "assume_role_name": "d"},
            {},
            "aws[0].organization.exclude_ous",
            "not an organizational unit",
        ),
        (
            {"organization": ORG, "assume_role_name": "arn:aws:iam::1:role/d"},
            {},
            "aws[0].assume_role_name",
            "the name only",
        ),
        (
            {"organization": {**ORG, "ous": []}, "assume_role_name": "d"},
            {},
            "aws[0].organization.ous",
            "not a known",
        ),
        (
            {"organization_role_arn": "arn:aws:iam::111111111111:role/o"},
            {},
            "aws[0]",
            "needs organization",
        ),
        ({"regions": ["*", "us-east-1"]}, {}, "aws[0].regions", "cannot be mixed"),
        ({}, {"organization": {"gone_grace": "10s"}}, "organization.gone_grace", ""),
        ({}, {"organization": {"cache": "1h"}}, "organization.cache", "not a known setting"),
    ],
)
def test_errors_name_the_key(
    matcher: dict[str, Any], top: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(matcher, **top)
    assert f"config: {where}: " in str(err.value)
    assert says in str(err.value)
