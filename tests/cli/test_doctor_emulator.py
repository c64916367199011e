"""`doctor` against an emulator (AWS_ENDPOINT_URL set, issue 15): the emulator's endpoint host
names are made up, so doctor probes only those that resolve here without DNS (an IP address, a
hosts-file name) and says it skipped the rest. Before: it asked the machine's resolver about
every made-up name (a DNS query that could leave the machine) and failed each as tcp-dns.

No test here resolves a name: the skipped names are never looked up, the probed one is an IP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.ops.probe import hosts_file_names, resolves_locally
from tests.harness.cli import run_subprocess
from tests.harness.emulator import running_emulator
from tests.harness.env import process_env

FLEET: dict[str, Any] = {
    "caller_account": "000000000000",
    "accounts": [
        {
            "id": "000000000000",
            "regions": {
                "us-east-1": {
                    "proxies": [
                        {"name": "made-up", "endpoint": "made-up.proxy.invalid", "endpoints": []},
                        {"name": "loopback", "endpoint": "127.0.0.1", "endpoints": []},
                    ]
                }
            },
        }
    ],
}
CONFIG = {"discovery_group": "g", "aws": [{"types": ["rdsproxy"], "regions": ["us-east-1"]}]}


@pytest.fixture
def emulator_url() -> Iterator[str]:
    with running_emulator(FLEET) as emu:
        yield emu.url


def test_doctor_skips_the_emulators_made_up_hosts_and_probes_an_ip(
    emulator_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    result = run_subprocess(
        ["doctor", "--config", str(path), "--tcp-timeout", "2"],
        env=process_env(emulator_url),
        cwd=tmp_path,
    )
    lines = result.stdout.splitlines()
    tcp = [line for line in lines if line[6:].startswith("tcp")]
    assert tcp[0] == (
        f"skip  tcp         1 endpoints: skipped: AWS_ENDPOINT_URL is set ({emulator_url}, an "
        "emulator?) and their hosts (e.g. made-up.proxy.invalid) do not resolve here without DNS"
    ), result.stdout
    # The IP address was probed for real (5432 may or may not be listening on this machine).
    assert len(tcp) == 2 and "127.0.0.1:5432" in tcp[1] and "skip" not in tcp[1], result.stdout
    assert "made-up.proxy.invalid" not in "\n".join(tcp[1:])


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("Localhost.", True),
        ("made-up.proxy.invalid", False),
        ("x.proxy-abc.us-east-1.rds.amazonaws.com", False),
    ],
)
def test_resolves_locally(host: str, local: bool) -> None:
    assert resolves_locally(host, frozenset({"localhost"})) is local


def test_hosts_file_names(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# c\n127.0.0.1 localhost Box.Local.  # me\n\n::1 ip6-localhost\n")
    assert hosts_file_names(hosts) == {"localhost", "box.local", "ip6-localhost"}
    assert hosts_file_names(tmp_path / "missing") == frozenset()
