"""`discovery demo`: the whole product in one offline run, against the bundled emulator.

It starts the AWS emulator with the sample fleet, scans it into a fresh SQLite registry, shows
that a second scan writes nothing, then changes the fleet (a tag changed, a proxy deleted, one
region denied) and scans again. The demo checks its own story and exits non-zero if the product
did not behave as told.

With `--teleport` the registry is a Teleport cluster instead, played by the stand-in tctl
(`tctl_standin.py`, no Teleport binary needed): the same story through `tctl get/create/rm`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import yaml

from discovery import wiring
from discovery.core.config import Config
from discovery.core.model import StoredResource, is_owned
from discovery.core.scopes import expand_scopes
from discovery.core.summary import CycleReport
from discovery.demo import tctl_standin
from discovery.output.blocks import Block, Line, plain, rich_print, terminal_console
from discovery.output.progress import Progress
from discovery.output.report import brief_blocks
from discovery.wiring import load_config

HERE = Path(__file__).resolve().parent
FLEET = HERE / "fleet.yaml"
CONFIG = HERE / "demo-config.yaml"
DENIED_ACCOUNT = "222222222222"
DENIED_REGION = "ap-southeast-2"


@contextmanager
def _offline_aws_env(url: str) -> Iterator[None]:
    """Point botocore at the emulator and away from any real AWS configuration."""
    values = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "demo-access-key",
        "AWS_SECRET_ACCESS_KEY": "demo-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    removed = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ROLE_ARN")
    saved = {k: os.environ.get(k) for k in (*values, *removed)}
    os.environ.update(values)
    for key in removed:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _good_proxy(proxies: list[dict[str, Any]]) -> dict[str, Any]:
    for proxy in proxies:
        if (
            proxy.get("require_tls", True)
            and proxy.get("status", "available") == "available"
            and proxy.get("engine_family") in {"POSTGRESQL", "MYSQL", "SQLSERVER"}
            and "TeleportDatabaseName" not in (proxy.get("tags") or {})
        ):
            return proxy
    raise LookupError("the demo fleet has no plain available proxy to change")


def _region(fleet: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    for acct in fleet["accounts"]:
        if str(acct["id"]) == account:
            return dict(acct["regions"][region])
    raise LookupError(f"the demo fleet has no account {account}")


def change_fleet(fleet: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """A tag changed on one proxy, another proxy deleted. Returns (fleet, changed, deleted)."""
    fleet = copy.deepcopy(fleet)
    east = _region(fleet, "111111111111", "us-east-1")
    changed = _good_proxy(east["proxies"])
    changed["tags"] = {**(changed.get("tags") or {}), "team": "payments-platform"}
    west = _region(fleet, "111111111111", "eu-west-1")
    deleted = _good_proxy(west["proxies"])
    west["proxies"].remove(deleted)
    return fleet, str(changed["name"]), str(deleted["name"])


class DemoFailed(Exception):
    pass


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


def run_demo(*, workdir: str | None, stdout: TextIO, teleport: bool = False, port: int = 0) -> int:
    """The demo in `workdir` (kept), or in a temporary folder removed at the end."""
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="discovery-demo-"))
    try:
        _story(base=base, keep=workdir is not None, stdout=stdout, teleport=teleport, port=port)
    except DemoFailed as exc:
        stdout.write(f"\nDEMO FAILED: expected that {exc}\n")
        return 1
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def discovery_command() -> str:
    """How a person here runs `discovery`: by name when it is on PATH, else the venv's script
    (relative to the current folder when under it, e.g. `.venv/bin/discovery`)."""
    script = Path(sys.executable).parent / "discovery"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m discovery"
    found = shutil.which("discovery")
    if found and Path(found).resolve() == script.resolve():
        return "discovery"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(script))


def _install_standin(base: Path) -> Path:
    """`base/tctl`: the stand-in tctl with its cluster in `base/tctl-state.json` (emptied)."""
    state = base / "tctl-state.json"
    state.write_text(json.dumps({"resources": {}, "faults": {}, "calls": []}))
    wrapper = base / "tctl"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"TCTL_STANDIN_STATE={shlex.quote(str(state))} exec {shlex.quote(sys.executable)} "
        f'{shlex.quote(str(Path(tctl_standin.__file__)))} "$@"\n'
    )
    wrapper.chmod(0o755)
    return state


def _tctl_writes(state: Path) -> list[list[str]]:
    calls = json.loads(state.read_text())["calls"]
    return [c for c in calls if c and c[0] in ("create", "rm")]


def _story(*, base: Path, keep: bool, stdout: TextIO, teleport: bool, port: int) -> None:
    from discovery.emulator import EmulatorThread, load_fleet

    def say(text: str = "") -> None:
        stdout.write(text + "\n")
        stdout.flush()

    def show(blocks: list[Block]) -> None:
        if stdout.isatty():
            rich_print(blocks, terminal_console(stdout))
        else:
            stdout.write(plain(blocks))
        stdout.flush()

    base.mkdir(parents=True, exist_ok=True)
    config_path = base / "discovery.yaml"
    config_path.write_text(CONFIG.read_text())
    (base / "discovery.db").unlink(missing_ok=True)
    state = base / "tctl-state.json"
    if teleport:
        state = _install_standin(base)
        doc = yaml.safe_load(CONFIG.read_text())
        doc["registry"] = {"backend": "teleport", "tctl": "./tctl"}
        config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    config = load_config(config_path)
    scopes = expand_scopes(config)
    fleet_doc = yaml.safe_load(FLEET.read_text())
    fleet = load_fleet(FLEET)

    def step(title: str, *, dry_run: bool = False, sample: int = 3) -> CycleReport:
        say("")
        show([Line(f"── {title}", "title")])
        progress = Progress(scopes, stdout)
        with progress:
            report = asyncio.run(
                wiring.scan(
                    config,
                    config_path,
                    dry_run=dry_run,
                    force=False,
                    scopes=scopes,
                    on_scope=progress,
                )
            )
        show(brief_blocks(report, sample=sample))
        return report

    with EmulatorThread(fleet, port=port) as emulator, _offline_aws_env(emulator.url):
        say("rdsproxy discovery demo")
        say(f"  AWS emulator:  {emulator.url} (bundled sample fleet, {fleet.proxy_count} proxies)")
        say(f"  config:        {config_path}")
        if teleport:
            say(f"  registry:      a Teleport cluster: the stand-in tctl {base / 'tctl'}")
            say(f"                 (its cluster in {state}, empty)")
        else:
            say(f"  registry:      {base / 'discovery.db'} (SQLite, fresh)")
        say("  matchers:      2 accounts reached through sts:AssumeRole with an external id,")
        say("                 3 regions each")

        first = step("1. Dry run: what the first scan would do (nothing is written)", dry_run=True)
        _expect(bool(first.plan.create) and not first.failed_scopes, "dry run planned creates")
        applied = step("2. Scan: apply the plan to the empty registry")
        _expect(len(applied.plan.create) == len(first.plan.create), "scan created the plan")
        writes_before = len(_tctl_writes(state)) if teleport else 0
        steady = step("3. Scan again: steady state writes nothing")
        _expect(not steady.plan.changes and not steady.applied, "steady state is empty")
        if teleport:
            _expect(
                len(_tctl_writes(state)) == writes_before, "the steady-state scan ran no create/rm"
            )
            say("  (tctl: one `get db`, no `create` or `rm`)")

        changed_fleet, changed, deleted = change_fleet(fleet_doc)
        emulator.set_fleet(changed_fleet)
        emulator.set_faults(
            [
                {
                    "account": DENIED_ACCOUNT,
                    "region": DENIED_REGION,
                    "operation": "DescribeDBProxies",
                    "code": "AccessDenied",
                    "status": 403,
                    "message": "User is not authorized to perform: rds:DescribeDBProxies",
                }
            ]
        )
        say("")
        say("The fleet changes:")
        say(f"  - proxy {changed!r} (111111111111, us-east-1): tag team=payments-platform")
        say(f"  - proxy {deleted!r} (111111111111, eu-west-1): deleted")
        say(f"  - {DENIED_ACCOUNT} {DENIED_REGION}: rds:DescribeDBProxies now AccessDenied")
        after = step("4. Scan after the changes", sample=10)

        updated = {u.after.aws.rdsproxy_name for u in after.plan.update}
        removed = {s.resource.aws.rdsproxy_name for s in after.plan.delete}
        _expect(changed in updated, f"the tag change on {changed} is an update")
        _expect(removed == {deleted}, f"only {deleted} (and its endpoints) are deleted")
        _expect(after.failed_scopes == 1, "exactly one scope failed")

        stored = asyncio.run(_stored(config, config_path))
        frozen = [
            s.resource
            for s in stored
            if s.resource.aws.account_id == DENIED_ACCOUNT
            and s.resource.aws.region == DENIED_REGION
        ]
        kept_before = [
            r
            for r in applied.plan.create
            if r.aws.account_id == DENIED_ACCOUNT and r.aws.region == DENIED_REGION
        ]
        _expect(len(frozen) == len(kept_before) > 0, "the denied region kept its resources")
        owned = sum(1 for s in stored if is_owned(s.resource, config.discovery_group))
        say("Outcome:")
        say(f"  - {changed}: updated (new team label)")
        say(f"  - {deleted}: deleted with its custom endpoints")
        say(
            f"  - {DENIED_ACCOUNT}/{DENIED_REGION}: scan failed, so its {len(frozen)} resources "
            "were left exactly as they were (frozen), not deleted"
        )
        say(f"  - registry now holds {owned} resources owned by discovery group 'demo'")
        if teleport:
            writes = _tctl_writes(state)
            creates = sum(1 for c in writes if c[0] == "create")
            removes = sum(1 for c in writes if c[0] == "rm")
            say(f"  - tctl wrote with {creates} `tctl create` call(s) and {removes} `tctl rm`")
        say("")
        _try_lines(say, base=base, keep=keep, teleport=teleport)


def _try_lines(say: Callable[[str], None], *, base: Path, keep: bool, teleport: bool) -> None:
    """What to run next; every command works as printed, in the order printed."""
    exe = discovery_command()
    config = shlex.quote(str(base / "discovery.yaml"))
    if not keep:
        say(f"(the demo's files were removed; to keep them: {exe} demo --workdir discovery-demo)")
        config = "discovery-demo/discovery.yaml"
        say(f"Try: {exe} demo --workdir discovery-demo{' --teleport' if teleport else ''}")
        say(f"     {exe} registry list --config {config}")
    else:
        say(f"Try: {exe} registry list --config {config}")
    say(f"     {exe} registry export --config {config}")
    say(
        f"     {exe} emulator --fleet {shlex.quote(str(FLEET))} --port 4566   # in another terminal"
    )
    say(
        "     AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=x "
        f"AWS_SECRET_ACCESS_KEY=x {exe} scan --dry-run --config {config}"
    )


async def _stored(config: Config, config_path: Path) -> list[StoredResource]:
    registry = wiring.open_registry(config, config_path)
    try:
        return await registry.list_resources()
    finally:
        await registry.close()
