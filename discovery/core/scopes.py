"""The config's matchers → the scopes a cycle fetches (DESIGN §3).

A scope is the unit of fetching and of failure: one matcher, its role, one region. Each
carries its matcher's selector and the discovery group, so converting what it fetched needs
nothing else from the config.
"""

from __future__ import annotations

from discovery.core.config import Config
from discovery.core.model import Scope


def expand_scopes(config: Config) -> list[Scope]:
    """matcher x role x region, in config order."""
    return [
        Scope(
            matcher_index=index,
            region=region,
            assume_role_arn=matcher.assume_role_arn,
            external_id=matcher.external_id,
            selector=tuple(matcher.tags.items()),
            discovery_group=config.discovery_group,
            db_assume_role_arn=matcher.db_assume_role_arn,
            db_external_id=matcher.db_external_id,
        )
        for index, matcher in enumerate(config.aws)
        for region in matcher.regions
    ]
