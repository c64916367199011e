"""The shortcuts the benchmark led to in discovery.aws.clients give botocore's own answers."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp

from discovery.aws.clients import _parse_timestamp


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
    fast, slow = _parse_timestamp(value), parse_timestamp(value)
    assert fast == slow
    assert fast.utcoffset() == slow.utcoffset()
    assert fast.isoformat() == slow.isoformat()  # what the credential refresh hands on
