"""The discovery name suffix (DESIGN §4); the names conversion gives are in test_convert.py."""

from __future__ import annotations

import pytest

from discovery.core.naming import name_suffix

ACCOUNT = "123456789012"
SUFFIX = f"rdsproxy-us-east-1-{ACCOUNT}"


@pytest.mark.parametrize(
    ("name", "parts", "expected"),
    [
        pytest.param("db", ["rdsproxy", "us-east-1", ACCOUNT], SUFFIX, id="all-parts"),
        pytest.param("db", ["rds proxy", "us east 1"], "rds-proxy-us-east-1", id="spaces"),
        pytest.param("db", ["a--b", "c   d"], "a-b-c-d", id="collapse-dashes"),
        pytest.param("zz", ["-a-", " b "], "a-b", id="trim-dashes"),
        pytest.param("db", ["", "  ", "---", "x"], "x", id="empty-parts-left-out"),
        pytest.param("My-Orders-DB", ["orders", "ORDERS-db", "x"], "x", id="case-insensitive"),
        pytest.param("db", ["a_b", "c.d", "ok"], "ok", id="invalid-as-name-tail"),
        pytest.param("db", ["ok-", "end-"], "ok-end", id="trailing-dash-trimmed-then-valid"),
        pytest.param("db", [], "", id="no-parts"),
    ],
)
def test_name_suffix(name: str, parts: list[str], expected: str) -> None:
    assert name_suffix(name, parts) == expected
