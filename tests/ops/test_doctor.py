"""`discovery doctor` against the AWS emulator over HTTP: every check, its failure and its fix.

The TCP check connects for real, to sockets on 127.0.0.1: the fleet's endpoint names are mapped
to a listening socket or a closed port by the probe (an RDS Proxy's port comes from its engine
family, and 5432/3306 may be taken on a test machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml

from discovery.core.config import Config, config_from_mapping
from discovery.emulator import EmulatorThread
from discovery.ops.diagnosis import FIXES, Check, Status, failed
from discovery.ops.doctor import DoctorSettings, run_doctor
from discovery.ops.probe import ProbeResult, tcp_probe
from tests.harness.env import process_env

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/discovery"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/discovery"

FLEET: dict[str, Any] = {
    "caller_account": "000000000000",
    "accounts": [
        {
            "id": ACCOUNT_A,
            "roles": [{"name": "discovery", "external_id": "ext-a"}],
            "regions": {
                "us-east-1": {
                    "proxies": [
                        {
                            "name": "open-pg",
                            "endpoint": "open-pg.test",
                            "tags": {"env": "prod"},
                            "endpoints": [{"name": "open-ro", "endpoint": "open-ro.test"}],
                        },
                        {"name": "shut-mysql", "engine_family": "MYSQL", "endpoint": "shut.test"},
                        {"name": "plain-pg", "require_tls": False, "endpoint": "plain.test"},
                    ]
                },
                "eu-west-1": {"proxies": [{"name": "eu-pg", "endpoint": "eu-pg.test"}]},
            },
        },
        {
            "id": ACCOUNT_B,
            "roles": [{"name": "discovery"}],
            "regions": {"us-east-1": {"proxies": [{"name": "b-pg", "endpoint": "b-pg.test"}]}},
        },
    ],
}

CONFIG: dict[str, Any] = {
    "discovery_group": "doctor",
    "aws": [
        {
            "types": ["rdsproxy"],
            "regions": ["us-east-1", "eu-west-1"],
            "assume_role_arn": ROLE_A,
            "external_id": "ext-a",
        },
        {"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE_B},
    ],
}


@pytest.fixture(scope="module")
def _emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(FLEET) as emu:
        yield emu


@pytest.fixture
def emulator(_emulator: EmulatorThread, aws_env: pytest.MonkeyPatch) -> EmulatorThread:
    _emulator.set_fleet(FLEET)
    _emulator.set_faults([])
    aws_env.setenv("AWS_ENDPOINT_URL", _emulator.url)
    return _emulator


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def config(**changes: Any) -> Config:
    data = copy.deepcopy(CONFIG)
    data.update(changes)
    return config_from_mapping(data)


class Remap:
    """The real TCP probe, with each endpoint (host, port) sent to a local port."""

    def __init__(self, ports: dict[tuple[str, int], int]) -> None:
        self.ports = ports
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int, timeout: float) -> ProbeResult:
        self.asked.append((host, port))
        return await tcp_probe("127.0.0.1", self.ports[(host, port)], timeout)


def endpoints(open_port: int, shut_port: int) -> dict[tuple[str, int], int]:
    return {
        ("open-pg.test", 5432): open_port,
        ("open-ro.test", 5432): open_port,
        ("eu-pg.test", 5432): open_port,
        ("b-pg.test", 5432): open_port,
        ("shut.test", 3306): shut_port,
    }


def doctor(cfg: Config, probe: Any = None, **settings: Any) -> tuple[Check, ...]:
    settings.setdefault("tcp_timeout", 2.0)
    settings.setdefault("max_attempts", 1)
    if probe is None:
        settings.setdefault("tcp", False)
    return asyncio.run(
        run_doctor(cfg, settings=DoctorSettings(**settings), probe=probe or tcp_probe)
    )


def by_check(checks: tuple[Check, ...], name: str) -> list[Check]:
    return [c for c in checks if c.check == name]


def test_checks_run_in_order_and_a_closed_port_fails(
    emulator: EmulatorThread, listening: int, closed_port: int
) -> None:
    probe = Remap(endpoints(listening, closed_port))
    checks = doctor(config(), probe)
    stages = ["credentials", "assume-role", "rds", "require-tls", "iam-auth", "tcp"]
    order = [stages.index("rds" if c.check == "tags" else c.check) for c in checks]
    assert order == sorted(order)  # in order: a scope's tags line follows its rds line

    (creds,) = by_check(checks, "credentials")
    assert creds.status is Status.OK
    assert creds.subject == "environment variables (AWS_ACCESS_KEY_ID)"
    assert "arn:aws:iam::000000000000:" in creds.detail

    roles = by_check(checks, "assume-role")
    assert [(c.subject, c.status) for c in roles] == [
        (f"{ROLE_A} (with external id)", Status.OK),
        (ROLE_B, Status.OK),
    ]
    rds = by_check(checks, "rds")
    assert [c.status for c in rds] == [Status.OK] * 3
    assert "3 proxies, 1 custom endpoints" in rds[0].detail
    assert all(c.status is Status.OK for c in by_check(checks, "tags"))

    tls = [c for c in by_check(checks, "require-tls") if c.status is Status.WARN]
    assert [c.subject for c in tls] == ["plain-pg in us-east-1"]
    assert tls[0].code == "tls-disabled"
    assert "--db-proxy-name plain-pg --require-tls --region us-east-1" in tls[0].fix

    tcp = {c.subject: c for c in by_check(checks, "tcp")}
    # every endpoint that would be registered, and nothing else (plain-pg is skipped)
    assert sorted(probe.asked) == sorted(endpoints(0, 0))
    assert tcp["shut.test:3306"].status is Status.FAIL
    assert tcp["shut.test:3306"].code == "tcp-refused"
    assert tcp["shut.test:3306"].fix == FIXES["tcp-refused"]
    assert "shut-mysql-rdsproxy-us-east-1-111111111111" in tcp["shut.test:3306"].detail
    assert all(c.status is Status.OK for s, c in tcp.items() if s != "shut.test:3306")
    assert failed(checks)


def test_everything_reachable_passes(emulator: EmulatorThread, listening: int) -> None:
    checks = doctor(config(), Remap(endpoints(listening, listening)))
    assert not failed(checks)
    assert {c.status for c in checks} == {Status.OK, Status.WARN}  # the RequireTLS warning


@pytest.fixture
def unresponsive() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops new SYNs, connects time out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = int(server.getsockname()[1])
        fillers = []
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        try:
            yield port
        finally:
            for filler in fillers:
                filler.close()


def test_an_unanswered_endpoint_times_out_with_its_fix(
    emulator: EmulatorThread, listening: int, unresponsive: int
) -> None:
    checks = doctor(config(), Remap(endpoints(listening, unresponsive)), tcp_timeout=0.5)
    tcp = {c.subject: c for c in by_check(checks, "tcp")}
    assert tcp["shut.test:3306"].code == "tcp-timeout"
    assert "timed out after 0.5s" in tcp["shut.test:3306"].detail
    assert "security group" in tcp["shut.test:3306"].fix


class LocalNames:
    """A resolver answering from a table, so no test asks the machine's resolver (DNS)."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.names[host]


def test_tcp_probe_against_real_sockets(listening: int, closed_port: int) -> None:
    ok = asyncio.run(tcp_probe("127.0.0.1", listening, 2.0))
    assert ok.ok and ok.seconds >= 0
    refused = asyncio.run(tcp_probe("127.0.0.1", closed_port, 2.0))
    assert (refused.ok, refused.code) == (False, "tcp-refused")
    names = LocalNames({})
    unresolvable = asyncio.run(tcp_probe("name.invalid", 5432, 2.0, resolve=names))
    assert (unresolvable.ok, unresolvable.code) == (False, "tcp-dns")
    assert "cannot resolve name.invalid: Name or service not known" in unresolvable.message
    assert names.asked == ["name.invalid"]


def test_tcp_probe_connects_to_the_resolved_addresses_in_order(
    listening: int, closed_port: int
) -> None:
    names = LocalNames({"db.test": ["127.0.0.1"], "empty.test": []})
    ok = asyncio.run(tcp_probe("db.test", listening, 2.0, resolve=names))
    assert ok.ok
    refused = asyncio.run(tcp_probe("db.test", closed_port, 2.0, resolve=names))
    assert refused.code == "tcp-refused"
    assert asyncio.run(tcp_probe("empty.test", listening, 2.0, resolve=names)).code == "tcp-dns"
    # an address that refuses is followed by the next one, as open_connection does with a name
    names.names["db.test"] = ["127.0.0.2", "127.0.0.1"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", closed_port))
        server.listen(1)
        assert asyncio.run(tcp_probe("db.test", closed_port, 2.0, resolve=names)).ok


def test_wrong_external_id_fails_the_role_and_skips_its_scopes(emulator: EmulatorThread) -> None:
    cfg = config(
        aws=[
            {
                "types": ["rdsproxy"],
                "regions": ["us-east-1", "eu-west-1"],
                "assume_role_arn": ROLE_A,
                "external_id": "wrong",
            },
            CONFIG["aws"][1],
        ]
    )
    checks = doctor(cfg)
    role_a = by_check(checks, "assume-role")[0]
    assert role_a.status is Status.FAIL
    assert role_a.code == "assume-role-denied"
    assert "AccessDenied" in role_a.detail
    assert "aws[0].external_id equals the sts:ExternalId condition" in role_a.fix
    assert "arn:aws:iam::000000000000:" in role_a.fix  # the principal the trust policy needs
    assert "discovery print-iam" in role_a.fix
    rds = by_check(checks, "rds")
    assert [c.status for c in rds] == [Status.SKIP, Status.SKIP, Status.OK]
    assert failed(checks)


def test_a_missing_external_id_is_suggested(emulator: EmulatorThread) -> None:
    cfg = config(aws=[{"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE_A}])
    role = by_check(doctor(cfg), "assume-role")[0]
    assert role.status is Status.FAIL
    assert "requires sts:ExternalId, set aws[0].external_id" in role.fix


def test_a_denied_region_names_the_action_region_and_identity(emulator: EmulatorThread) -> None:
    emulator.set_faults(
        [
            {
                "operation": "DescribeDBProxies",
                "account": ACCOUNT_A,
                "region": "eu-west-1",
                "code": "AccessDenied",
            }
        ]
    )
    checks = doctor(config())
    rds = {c.subject: c for c in by_check(checks, "rds")}
    bad = rds[f"eu-west-1 as {ROLE_A}"]
    assert bad.status is Status.FAIL
    assert bad.code == "rds-denied"
    assert "rds:DescribeDBProxies was denied" in bad.fix
    assert "in eu-west-1 to arn:aws:sts::111111111111:assumed-role/discovery/" in bad.fix
    assert rds[f"us-east-1 as {ROLE_A}"].status is Status.OK
    # the tags check of the denied scope is not run, the others are
    assert len(by_check(checks, "tags")) == 2


def test_denied_endpoints_call_is_named(emulator: EmulatorThread) -> None:
    emulator.set_faults([{"operation": "DescribeDBProxyEndpoints", "code": "AccessDenied"}])
    rds = by_check(doctor(config()), "rds")
    assert all(c.code == "rds-denied" for c in rds)
    assert "rds:DescribeDBProxyEndpoints was denied" in rds[0].fix


def test_tags_fall_back_to_list_tags_with_a_warning(emulator: EmulatorThread) -> None:
    emulator.set_faults([{"operation": "GetResources", "code": "AccessDenied"}])
    checks = doctor(config())
    tags = by_check(checks, "tags")
    assert [c.status for c in tags] == [Status.WARN] * 3
    assert "rds:ListTagsForResource works (3 calls per cycle here)" in tags[0].detail
    assert tags[0].fix == FIXES["tags-fallback"]
    assert not failed(checks)


def test_tags_unreadable_fail(emulator: EmulatorThread) -> None:
    emulator.set_faults(
        [
            {"operation": "GetResources", "code": "AccessDenied"},
            {"operation": "ListTagsForResource", "code": "AccessDenied", "account": ACCOUNT_B},
        ]
    )
    checks = doctor(config())
    tags = {c.subject: c for c in by_check(checks, "tags")}
    assert tags[f"us-east-1 as {ROLE_B}"].status is Status.FAIL
    assert tags[f"us-east-1 as {ROLE_B}"].code == "tags-denied"
    assert tags[f"us-east-1 as {ROLE_A}"].status is Status.WARN
    assert failed(checks)


def test_no_credentials(emulator: EmulatorThread, aws_env: pytest.MonkeyPatch) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    checks = doctor(config())
    assert [(c.check, c.status) for c in checks] == [
        ("credentials", Status.FAIL),
        ("aws", Status.SKIP),
    ]
    assert checks[0].code == "no-credentials"
    assert "IRSA" in checks[0].fix


def test_rejected_credentials(emulator: EmulatorThread) -> None:
    emulator.set_faults([{"operation": "GetCallerIdentity", "code": "InvalidClientTokenId"}])
    checks = doctor(config())
    assert checks[0].status is Status.FAIL
    assert checks[0].code == "credentials-invalid"
    assert checks[0].subject == "environment variables (AWS_ACCESS_KEY_ID)"


def test_unreachable_region(
    emulator: EmulatorThread, aws_env: pytest.MonkeyPatch, closed_port: int
) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL_RDS", f"http://127.0.0.1:{closed_port}")
    checks = doctor(config())
    rds = by_check(checks, "rds")
    assert {c.code for c in rds} == {"region-unreachable"}
    assert "opt-in regions" in rds[0].fix


def test_throttling_after_retries(emulator: EmulatorThread) -> None:
    emulator.set_faults([{"operation": "DescribeDBProxies", "code": "Throttling"}])
    rds = by_check(doctor(config()), "rds")
    assert {c.code for c in rds} == {"throttled"}


RDS_NS = "http://rds.amazonaws.com/doc/2014-10-31/"
PROXY_XML = (
    "<member><DBProxyName>loop-pg</DBProxyName><EngineFamily>POSTGRESQL</EngineFamily>"
    "<Endpoint>loop.test</Endpoint><Status>available</Status><RequireTLS>true</RequireTLS>"
    "</member>"
)


class FakeRDS:
    """A misbehaving RDS endpoint on 127.0.0.1: each action answers one fixed result body.

    STS still goes to the emulator; only `AWS_ENDPOINT_URL_RDS` points here.
    """

    def __init__(self, results: dict[str, str]) -> None:
        self.results = results
        self.calls: list[dict[str, list[str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                params = parse_qs(self.rfile.read(length).decode())
                fake.calls.append(params)
                action = params["Action"][0]
                body = (
                    f'<{action}Response xmlns="{RDS_NS}"><{action}Result>'
                    f"{fake.results[action]}</{action}Result>"
                    f"<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
                    f"</{action}Response>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRDS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def actions(self) -> list[str]:
        return [c["Action"][0] for c in self.calls]


BASE_ONLY = {"aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]}


def doctor_against(
    fake: FakeRDS, aws_env: pytest.MonkeyPatch, **settings: Any
) -> tuple[Check, ...]:
    aws_env.setenv("AWS_ENDPOINT_URL_RDS", fake.url)
    run = run_doctor(config(**BASE_ONLY), settings=DoctorSettings(tcp=False, max_attempts=1))
    # bounded: a paging loop that never ends fails here instead of hanging the suite
    return asyncio.run(asyncio.wait_for(run, timeout=60))


def test_a_repeated_marker_fails_the_rds_check_instead_of_looping(
    emulator: EmulatorThread, aws_env: pytest.MonkeyPatch
) -> None:
    results = {
        "DescribeDBProxies": f"<DBProxies>{PROXY_XML}</DBProxies><Marker>again</Marker>",
        "DescribeDBProxyEndpoints": "<DBProxyEndpoints/>",
    }
    with FakeRDS(results) as fake:
        checks = doctor_against(fake, aws_env)
    (rds,) = by_check(checks, "rds")
    assert rds.status is Status.FAIL
    assert rds.code == "rds-error"
    assert rds.detail == ("rds:DescribeDBProxies: AWS returned the same page token twice ('again')")
    assert rds.fix == FIXES["rds-error"]
    # the first page, then the page its token leads to, which hands the same token back
    assert fake.actions() == ["DescribeDBProxies", "DescribeDBProxies"]
    assert fake.calls[1]["Marker"] == ["again"]
    assert by_check(checks, "tags") == []  # the listings failed: nothing further for the scope
    assert failed(checks)


def test_a_page_without_its_result_key_fails_the_rds_check(
    emulator: EmulatorThread, aws_env: pytest.MonkeyPatch
) -> None:
    results = {
        "DescribeDBProxies": f"<DBProxies>{PROXY_XML}</DBProxies>",
        "DescribeDBProxyEndpoints": "",  # no DBProxyEndpoints at all: not "none"
    }
    with FakeRDS(results) as fake:
        checks = doctor_against(fake, aws_env)
    (rds,) = by_check(checks, "rds")
    assert (rds.status, rds.code) == (Status.FAIL, "rds-error")
    assert rds.detail == (
        "rds:DescribeDBProxyEndpoints: malformed response (no DBProxyEndpoints); retry later"
    )
    assert fake.actions() == ["DescribeDBProxies", "DescribeDBProxyEndpoints"]


def test_the_aws_client_settings_apply_to_doctor(
    emulator: EmulatorThread, aws_env: pytest.MonkeyPatch
) -> None:
    emulator.set_faults(
        [{"operation": "DescribeDBProxies", "code": "InternalFailure", "status": 500}]
    )
    emulator.reset_stats()
    cfg = config(aws_client={"max_attempts": 2}, **BASE_ONLY)
    checks = asyncio.run(run_doctor(cfg, settings=DoctorSettings(tcp=False)))
    (rds,) = by_check(checks, "rds")
    assert rds.code == "rds-error"
    assert rds.detail.startswith("InternalFailure")
    stats = emulator.stats()["by_operation"]["DescribeDBProxies"]
    assert sum(stats.values()) == 2  # aws_client.max_attempts, the first try included
    emulator.reset_stats()
    asyncio.run(run_doctor(cfg, settings=DoctorSettings(tcp=False, max_attempts=1)))
    stats = emulator.stats()["by_operation"]["DescribeDBProxies"]
    assert sum(stats.values()) == 1  # doctor's own override, when given, wins


def test_every_code_has_a_fix() -> None:
    assert all(FIXES.values())


# --- the command line ---------------------------------------------------------------------


def run_doctor_cli(emulator: EmulatorThread, tmp_path: Path, *args: str) -> Any:
    path = tmp_path / "discovery.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    env = process_env(emulator.url)
    return subprocess.run(
        [sys.executable, "-m", "discovery", "doctor", "--config", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_prints_one_line_per_check_and_exits_0(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    result = run_doctor_cli(emulator, tmp_path, "--no-tcp")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok    credentials environment variables (AWS_ACCESS_KEY_ID): ")
    assert lines[1].startswith(f"ok    assume-role {ROLE_A} (with external id): assumed as ")
    assert any(line.startswith("warn  require-tls plain-pg in us-east-1: ") for line in lines)
    assert any(line.startswith("      fix: Teleport only connects over TLS") for line in lines)
    assert lines[-2] == "skip  tcp         5 endpoints: skipped (--no-tcp)"
    # 3 more ok lines than before the iam-auth check: one per scope (all proxies require it)
    assert lines[-1] == "doctor: 14 ok, 1 warning(s), 0 failed, 1 skipped"


def test_cli_exits_non_zero_with_the_fix_when_a_check_fails(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.set_faults([{"operation": "AssumeRole", "account": ACCOUNT_B, "code": "AccessDenied"}])
    result = run_doctor_cli(emulator, tmp_path, "--no-tcp")
    assert result.returncode == 1
    assert f"FAIL  assume-role {ROLE_B}: AccessDenied" in result.stdout
    assert f"      fix: the trust policy of {ROLE_B} must allow" in result.stdout
    assert "1 failed" in result.stdout.splitlines()[-1]


def test_list_tags_denied_beside_a_working_get_resources_warns_about_confirmations(
    emulator: EmulatorThread,
) -> None:
    emulator.set_faults(
        [{"operation": "ListTagsForResource", "code": "AccessDenied", "account": ACCOUNT_B}]
    )
    checks = doctor(config())
    tags = {c.subject: c for c in by_check(checks, "tags")}
    denied = tags[f"us-east-1 as {ROLE_B}"]
    assert (denied.status, denied.code) == (Status.WARN, "confirm-denied")
    assert "but rds:ListTagsForResource is denied (AccessDenied)" in denied.detail
    assert denied.fix == FIXES["confirm-denied"] and "unconfirmed" in denied.fix
    assert tags[f"us-east-1 as {ROLE_A}"].status is Status.OK
    assert not failed(checks)
