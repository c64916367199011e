"""The control API over HTTP, the CLI (`python -m discovery.emulator`) and the Python API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.emulator import (
    DEMO_FLEET,
    MOTO_MISSING_MESSAGE,
    EmulatorThread,
    load_fleet,
)


def _http(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_health(emulator: EmulatorThread) -> None:
    assert _http("GET", emulator.url + "/_emulator/health") == (200, {"ok": True})


def test_put_fleet_yaml_and_json(
    emulator: EmulatorThread, client: Callable[..., Any], small_fleet: dict[str, Any]
) -> None:
    small_fleet["caller_account"] = "111111111111"
    status, body = _http(
        "PUT", emulator.url + "/_emulator/fleet", yaml.safe_dump(small_fleet).encode()
    )
    assert status == 200 and body["proxies"] == 4 and body["accounts"] == 2
    names = [p["DBProxyName"] for p in client("rds").describe_db_proxies()["DBProxies"]]
    assert names == ["mysql-untagged", "pg-main"]
    small_fleet["caller_account"] = "222222222222"
    status, _ = _http("PUT", emulator.url + "/_emulator/fleet", json.dumps(small_fleet).encode())
    assert status == 200
    names = [p["DBProxyName"] for p in client("rds").describe_db_proxies()["DBProxies"]]
    assert names == ["other-account-pg"]
    status, got = _http("GET", emulator.url + "/_emulator/fleet")
    assert status == 200 and got["caller_account"] == "222222222222"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"accounts": [{"id": "111111111111", "bogus": 1}]}, "accounts.0.bogus"),
        ({"caller_account": "123"}, "caller_account"),
        (
            {
                "accounts": [
                    {
                        "id": "111111111111",
                        "regions": {"us-east-1": {"proxies": [{"name": "a"}, {"name": "a"}]}},
                    }
                ]
            },
            "duplicate proxy name",
        ),
        ([1, 2], "mapping"),
    ],
)
def test_put_fleet_invalid(emulator: EmulatorThread, doc: Any, needle: str) -> None:
    status, body = _http("PUT", emulator.url + "/_emulator/fleet", json.dumps(doc).encode())
    assert status == 400
    assert body["ok"] is False and needle in body["error"]
    status, body = _http("PUT", emulator.url + "/_emulator/fleet", b"{not: [valid")
    assert status == 400 and "YAML" in body["error"]


def test_put_faults_and_settings(emulator: EmulatorThread, client: Callable[..., Any]) -> None:
    faults = [{"operation": "DescribeDBProxies", "code": "AccessDenied", "times": 1}]
    status, body = _http("PUT", emulator.url + "/_emulator/faults", json.dumps(faults).encode())
    assert status == 200 and body["faults"][0]["remaining"] == 1
    with pytest.raises(Exception, match="AccessDenied"):
        client("rds").describe_db_proxies()
    assert _http("GET", emulator.url + "/_emulator/faults")[1][0]["remaining"] == 0
    status, body = _http("PUT", emulator.url + "/_emulator/faults", b'[{"code": 1, "nope": 2}]')
    assert status == 400 and "fault #0" in body["error"]
    status, body = _http("PUT", emulator.url + "/_emulator/faults", b'{"code": "x"}')
    assert status == 400

    settings = {"latency_ms": 5, "throttle": {"burst": 10, "rate": 2}}
    status, body = _http("PUT", emulator.url + "/_emulator/settings", json.dumps(settings).encode())
    assert (
        status == 200 and body["latency_ms"] == 5 and body["throttle"] == {"burst": 10, "rate": 2}
    )
    status, body = _http("PUT", emulator.url + "/_emulator/settings", b'{"throttle": null}')
    assert status == 200 and body["throttle"] is None and body["latency_ms"] == 5
    assert emulator.settings() == {"latency_ms": 5, "throttle": None}
    status, body = _http("PUT", emulator.url + "/_emulator/settings", b'{"latency": 5}')
    assert status == 400
    status, body = _http("PUT", emulator.url + "/_emulator/settings", b'{"latency_ms": -1}')
    assert status == 400


def test_stats_and_reset(emulator: EmulatorThread, client: Callable[..., Any]) -> None:
    client("rds").describe_db_proxies()
    status, stats = _http("GET", emulator.url + "/_emulator/stats")
    assert status == 200 and stats["total"] == 1
    assert stats["calls"] == [
        {
            "operation": "DescribeDBProxies",
            "account": "000000000000",
            "region": "us-east-1",
            "outcome": "ok",
            "count": 1,
        }
    ]
    assert _http("POST", emulator.url + "/_emulator/stats/reset", b"")[0] == 200
    assert _http("GET", emulator.url + "/_emulator/stats")[1]["total"] == 0


def test_unknown_action_and_service(emulator: EmulatorThread) -> None:
    body = b"Action=DeleteDBProxy&Version=2014-10-31&DBProxyName=x"
    req = urllib.request.Request(emulator.url + "/", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=10)
    assert ei.value.code == 400
    assert b"<Code>InvalidAction</Code>" in ei.value.read()
    req = urllib.request.Request(emulator.url + "/", data=b"Action=ListBuckets", method="POST")
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=10)
    assert ei.value.code == 400


def test_env_var_endpoint_is_honoured(emulator: EmulatorThread) -> None:
    import boto3

    # The autouse fixture set AWS_ENDPOINT_URL and dummy credentials: no endpoint_url here.
    assert os.environ["AWS_ENDPOINT_URL"] == emulator.url
    ident = boto3.client("sts").get_caller_identity()
    assert ident["Account"] == "000000000000"


def test_thread_set_fleet_validates(emulator: EmulatorThread) -> None:
    from discovery.emulator import FleetError

    with pytest.raises(FleetError, match="caller_account"):
        emulator.set_fleet({"caller_account": 0})
    with pytest.raises(FleetError):
        emulator.set_faults([{"code": "X", "times": -1}])
    with pytest.raises(FleetError):
        emulator.set_settings(throttle="1")


def test_demo_fleet_loads_with_its_special_cases() -> None:
    fleet = load_fleet(DEMO_FLEET)
    assert fleet.caller_account == "000000000000"
    assert [a.id for a in fleet.accounts] == ["111111111111", "222222222222"]
    proxies = [p for a in fleet.accounts for r in a.regions.values() for p in r.proxies]
    assert len(proxies) >= 24
    regions = {r for a in fleet.accounts for r in a.regions}
    assert regions == {"us-east-1", "eu-west-1", "ap-southeast-2"}
    assert sum(not p.require_tls for p in proxies) == 1
    assert sum(p.status == "creating" for p in proxies) == 1
    assert sum(p.engine_family == "ORACLE" for p in proxies) == 1
    assert sum(e.status == "creating" for p in proxies for e in p.endpoints) == 1
    assert sum(any(" " in k for k in p.tags) for p in proxies) == 1
    assert sum(p.tags.get("TeleportDatabaseName") == "billing-db" for p in proxies) == 1
    assert {p.engine_family for p in proxies} == {"POSTGRESQL", "MYSQL", "SQLSERVER", "ORACLE"}
    roles = {(a.id, r.name, r.external_id) for a in fleet.accounts for r in a.roles}
    assert roles == {
        ("111111111111", "discovery", "demo-external-id-1"),
        ("222222222222", "discovery", "demo-external-id-2"),
    }
    config = yaml.safe_load((DEMO_FLEET.parent / "demo-config.yaml").read_text())
    assert config["discovery_group"] == "demo"
    assert [m["external_id"] for m in config["aws"]] == ["demo-external-id-1", "demo-external-id-2"]


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("- {operation: GetResources, code: AccessDenied}\n")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "discovery.emulator",
            "--fleet", str(DEMO_FLEET), "--port", "0",
            "--latency-ms", "1", "--throttle", "300,12", "--faults", str(faults), "--warm",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_cli_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert _http("GET", url + "/_emulator/health") == (200, {"ok": True})
        settings = _http("GET", url + "/_emulator/settings")[1]
        assert settings == {"latency_ms": 1.0, "throttle": {"burst": 300.0, "rate": 12.0}}
        assert _http("GET", url + "/_emulator/faults")[1][0]["operation"] == "GetResources"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--fleet", "/nonexistent.yaml"], 2, "cannot read fleet file"),
        (["--throttle", "abc"], 2, "invalid throttle"),
        (["--bogus"], 2, "unrecognized arguments"),
    ],
)
def test_cli_errors(args: list[str], code: int, needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "discovery.emulator", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=_cli_env(),
    )
    assert proc.returncode == code
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_without_moto() -> None:
    code = (
        "import sys; sys.modules['moto'] = None\n"
        "from discovery.emulator import main\n"
        "raise SystemExit(main(['--port', '0']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=_cli_env()
    )
    assert proc.returncode == 1
    assert MOTO_MISSING_MESSAGE in proc.stderr
