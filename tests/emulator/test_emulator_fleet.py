"""Fleet, fault and throttle validation; synthetic fleets; in-process serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from discovery.emulator import (
    Fault,
    Fleet,
    FleetError,
    Throttle,
    build_app,
    generate_fleet,
    load_fleet,
    parse_faults,
    parse_fleet,
    parse_throttle,
)


def test_load_fleet_yaml(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        """
caller_account: "000000000000"
credential_duration_seconds: 60
accounts:
  - id: "111111111111"
    roles:
      - {name: discovery, external_id: ext-1}
    regions:
      us-east-1:
        proxies:
          - name: pg-main
            engine_family: ODD
            tags: {env: prod, "bad key!": x, count: 3, flag: true}
            endpoints:
              - {name: ro, target_role: READ_ONLY, status: available}
      eu-west-1:
"""
    )
    fleet = load_fleet(path)
    assert fleet.credential_duration_seconds == 60
    proxy = fleet.accounts[0].regions["us-east-1"].proxies[0]
    assert proxy.tags == {"env": "prod", "bad key!": "x", "count": "3", "flag": "true"}
    assert fleet.accounts[0].regions["eu-west-1"].proxies == []
    assert fleet.proxy_count == 1


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"unknown": 1}, "unknown"),
        ({"caller_account": 0}, "caller_account"),
        ({"accounts": [{"id": "1"}]}, "accounts.0.id"),
        ({"accounts": [{"id": "111111111111"}, {"id": "111111111111"}]}, "duplicate account"),
        ({"accounts": [{"id": "111111111111", "roles": [{"name": "a"}, {"name": "a"}]}]}, "role"),
        (
            {"accounts": [{"id": "111111111111", "regions": {"Not A Region": {}}}]},
            "Not A Region",
        ),
        (
            {
                "accounts": [
                    {
                        "id": "111111111111",
                        "regions": {
                            "us-east-1": {
                                "proxies": [
                                    {"name": "a", "endpoints": [{"name": "x"}]},
                                    {"name": "b", "endpoints": [{"name": "x"}]},
                                ]
                            }
                        },
                    }
                ]
            },
            "duplicate endpoint name",
        ),
        (
            {
                "accounts": [
                    {
                        "id": "111111111111",
                        "regions": {
                            "us-east-1": {
                                "proxies": [{"name": "a", "endpoints": [{"name": "default"}]}]
                            }
                        },
                    }
                ]
            },
            "reserved",
        ),
        (
            {
                "accounts": [
                    {
                        "id": "111111111111",
                        "regions": {"us-east-1": {"proxies": [{"name": "a", "vpcid": "x"}]}},
                    }
                ]
            },
            "vpcid",
        ),
        ({"credential_duration_seconds": 0}, "credential_duration_seconds"),
    ],
)
def test_invalid_fleets(doc: dict[str, Any], needle: str) -> None:
    with pytest.raises(FleetError, match="invalid fleet") as ei:
        parse_fleet(doc)
    assert needle in str(ei.value)


def test_parse_faults_and_throttle() -> None:
    faults = parse_faults("- {code: AccessDenied, region: eu-west-1}\n- {code: Timeout}")
    assert faults[0] == Fault(code="AccessDenied", region="eu-west-1")
    assert faults[1].matches("AnyOp", "123456789012", "us-east-1")
    assert not faults[0].matches("AnyOp", "123456789012", "us-east-1")
    assert parse_faults(None) == [] and parse_faults("") == []
    with pytest.raises(FleetError):
        parse_faults([{"code": "x", "status": 99}])
    assert parse_throttle("300,12") == Throttle(burst=300, rate=12)
    assert parse_throttle((5, 1)) == Throttle(burst=5, rate=1)
    assert parse_throttle({"burst": 2}) == Throttle(burst=2, rate=12)
    assert parse_throttle(None) is None
    for bad in ("1", "a,b", "0,1", {"burst": 1, "x": 2}):
        with pytest.raises(FleetError):
            parse_throttle(bad)


def test_generate_fleet() -> None:
    fleet = generate_fleet(
        accounts=2, regions=["us-east-1", "eu-west-1"], proxies_per_region=3, external_id="e"
    )
    assert isinstance(fleet, Fleet)
    assert fleet.proxy_count == 12
    assert [a.id for a in fleet.accounts] == ["111111111111", "111111111112"]
    assert fleet.accounts[1].roles[0].external_id == "e"


async def test_build_app_in_process() -> None:
    """build_app() serves through aiohttp's test utilities too (no thread)."""
    from aiohttp.test_utils import TestClient, TestServer

    app = build_app(generate_fleet(proxies_per_region=2, caller_account="111111111111"))
    async with TestClient(TestServer(app)) as cl:
        resp = await cl.get("/_emulator/health")
        assert resp.status == 200 and await resp.json() == {"ok": True}
        resp = await cl.post(
            "/",
            data="Action=DescribeDBProxies&Version=2014-10-31",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/rds/"
                "aws4_request, SignedHeaders=host, Signature=x",
            },
        )
        text = await resp.text()
        assert resp.status == 200
        assert text.count("<DBProxyName>") == 2
