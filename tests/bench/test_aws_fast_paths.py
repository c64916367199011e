"""The shortcuts the benchmark led to in discovery.aws.clients give botocore's own answers."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp

from discovery.aws.sdk_speedups import parse_aws_timestamp


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-24T18:10:00Z",  # what STS and RDS answer with
        "2026-11-24T18:10:00.123Z",
        "2026-11-24T18:10:00.123456Z",
        "2026-11-24T18:10:00+00:00",
        "2026-11-24T20:10:00+02:00",
        "2026-11-24T18:10:00",  # no zone: botocore takes UTC
        "Tue, 24 Nov 2026 18:10:00 GMT",  # RFC 822, not ISO 8601
        1795543800,  # epoch seconds (JSON protocols)
        1795543800.5,
        "1795543800",
    ],
)
def test_timestamps_parse_as_botocore_parses_them(value: object) -> None:
    fast, slow = parse_aws_timestamp(value), parse_timestamp(value)
    assert fast == slow
    assert fast.utcoffset() == slow.utcoffset()
    assert fast.isoformat() == slow.isoformat()  # what the credential refresh hands on


async def test_the_cached_user_agent_is_botocores_own_for_each_set_of_features() -> None:
    from botocore.context import start_as_current_context
    from botocore.useragent import register_feature_id

    from discovery.aws.calls import Caller
    from discovery.aws.clients import AWSClients

    async with AWSClients(caller=Caller(max_concurrency=1)) as clients:
        rds = await clients.client("", "", "rds", "us-east-1")
        creator = rds._client._user_agent_creator
        uncached = type(creator).to_string
        plain = creator.to_string()
        assert plain == uncached(creator)
        assert creator.to_string() is plain  # built once
        with start_as_current_context():
            register_feature_id("PAGINATOR")
            featured = creator.to_string()
            assert featured == uncached(creator)
            assert featured != plain  # the request's features are part of the key
