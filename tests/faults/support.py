"""The fault matrix's world: a fleet, a config, a registry, the CLI, and the invariants.

Every row of the matrix (docs/RELIABILITY.md) follows one shape:

1. the registry is seeded with foreign resources (a hand-made one, another discovery group's,
   and one that holds a name this group would like) plus exactly the desired state of fleet v0;
2. the fleet changes in every (account, region) — a proxy added, one re-tagged, one removed — so
   a scope that is not frozen has something to create, update and delete;
3. the fault is injected and one cycle runs against the emulator over HTTP: `discovery scan`
   through the CLI's `main` in this process (a subprocess where the process is the point),
   or `discovery run` in a subprocess for the crash rows;
4. `check_cycle` asserts the invariants on the registry before and after that cycle;
5. the fault is cleared and the next cycle must leave the registry exactly at the desired state
   (`check_recovered`).

The desired state is computed here, independently of the plan: the emulator's own view of the
fleet goes through `assemble_proxies` and `convert_proxies` (the pure core), scope by scope.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from discovery.aws.assemble import assemble_proxies
from discovery.core.config import config_from_mapping
from discovery.core.convert import convert_proxies
from discovery.core.model import (
    LABEL_DISCOVERY_GROUP,
    LABEL_ORIGIN,
    AWSInfo,
    Matching,
    Resource,
)
from discovery.core.scopes import expand_scopes
from discovery.emulator import EmulatorThread
from discovery.emulator.fleet import parse_fleet
from discovery.emulator.state import FleetIndex
from discovery.registry.base import Changes, Registry
from discovery.registry.sqlite import SQLiteRegistry
from tests.faults.invariants import (
    GROUP,
    Area,
    Snapshot,
    check_cycle,
    check_recovered,
    expected_registry,
    frozen_areas,
)
from tests.harness import cli
from tests.harness.daemon import DaemonProcess
from tests.harness.env import TEST_MIN_POLL_INTERVAL_S, process_env

CALLER = "000000000000"  # the base credentials' account (matcher 2 scans it without a role)
ACCOUNT_A = "111111111111"  # assumed role, no external id
ACCOUNT_B = "222222222222"  # assumed role with an external id
EXTERNAL_ID_B = "ext-b"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/discovery"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/discovery"
EAST, WEST = "us-east-1", "eu-west-1"
AREAS = ((ACCOUNT_A, EAST), (ACCOUNT_A, WEST), (ACCOUNT_B, EAST), (ACCOUNT_B, WEST), (CALLER, EAST))

EXIT_OK, EXIT_RUNTIME, EXIT_CONFIG, EXIT_SCOPES_FAILED, EXIT_GUARD = 0, 1, 2, 3, 4


# --- the fleet ---------------------------------------------------------------------------------


_LETTER = {ACCOUNT_A: "a", ACCOUNT_B: "b", CALLER: "c", EAST: "e", WEST: "w"}


def _prefix(account: str, region: str) -> str:
    """`ae` for account A in us-east-1: proxy names are unique per area and short."""
    return _LETTER[account] + _LETTER[region]


def area_proxies(account: str, region: str, version: int) -> list[dict[str, Any]]:
    """v0: pg (with a reader endpoint), my, ss. v1: pg re-tagged, ss gone, new added."""
    p = _prefix(account, region)
    pg_tags = {"env": "prod", "team": "db" if version == 0 else "platform"}
    proxies: list[dict[str, Any]] = [
        {
            "name": f"{p}-pg",
            "engine_family": "POSTGRESQL",
            "tags": pg_tags,
            "endpoints": [{"name": f"{p}-pg-ro", "target_role": "READ_ONLY"}],
        },
        {"name": f"{p}-my", "engine_family": "MYSQL", "tags": {"env": "prod"}},
    ]
    if version == 0:
        proxies.append({"name": f"{p}-ss", "engine_family": "SQLSERVER", "tags": {"env": "qa"}})
    else:
        proxies.append({"name": f"{p}-new", "engine_family": "POSTGRESQL", "tags": {"env": "dev"}})
    return proxies


def make_fleet(version: int = 0, **top: Any) -> dict[str, Any]:
    """Three accounts: A and B reached through roles (B with an external id), and the caller's
    own account C in one region, each area with three proxies (five resources per area)."""
    accounts: dict[str, dict[str, Any]] = {
        ACCOUNT_A: {"id": ACCOUNT_A, "roles": [{"name": "discovery"}], "regions": {}},
        ACCOUNT_B: {
            "id": ACCOUNT_B,
            "roles": [{"name": "discovery", "external_id": EXTERNAL_ID_B}],
            "regions": {},
        },
        CALLER: {"id": CALLER, "regions": {}},
    }
    for account, region in AREAS:
        accounts[account]["regions"][region] = {"proxies": area_proxies(account, region, version)}
    return {"caller_account": CALLER, "accounts": list(accounts.values()), **top}


def make_config(*, registry: Mapping[str, Any] | None = None, **aws_client: Any) -> dict[str, Any]:
    client = {"max_attempts": 3, "read_timeout": "5s", "connect_timeout": "2s"}
    client.update(aws_client)
    return {
        "discovery_group": GROUP,
        "aws": [
            {"types": ["rdsproxy"], "regions": [EAST, WEST], "assume_role_arn": ROLE_A},
            {
                "types": ["rdsproxy"],
                "regions": [EAST, WEST],
                "assume_role_arn": ROLE_B,
                "external_id": EXTERNAL_ID_B,
            },
            {"types": ["rdsproxy"], "regions": [EAST]},  # base credentials: account from STS
        ],
        "registry": dict(registry or {"backend": "sqlite", "path": "registry.db"}),
        "aws_client": client,
    }


# --- the desired state, from the pure core -----------------------------------------------------


def desired_state(fleet: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Resource]:
    """What the registry should hold for `fleet` (first scope wins a name, as in the plan)."""
    index = FleetIndex(parse_fleet(dict(fleet)))
    cfg = config_from_mapping(dict(config), min_poll_interval=TEST_MIN_POLL_INTERVAL_S)
    desired: dict[str, Resource] = {}
    for scope in expand_scopes(cfg):
        matcher = cfg.aws[scope.matcher_index]
        account = scope.role_account_id or index.fleet.caller_account
        region = index.region(account, scope.region)
        proxies = assemble_proxies(
            [copy.deepcopy(r.item) for r in region.proxies],
            [copy.deepcopy(e) for e in region.endpoints],
            {r.arn: dict(r.tags) for r in region.proxies},
        )
        converted = convert_proxies(
            proxies,
            Matching(
                tags=matcher.tags,
                assume_role_arn=matcher.assume_role_arn,
                external_id=matcher.external_id,
                discovery_group=cfg.discovery_group,
            ),
        )
        for resource in converted.resources:
            desired.setdefault(resource.name, resource)
    return desired


def foreign_resources() -> list[Resource]:
    """Resources this group must never touch: a hand-made one, another group's, and one
    that holds a name this group's fleet produces (a conflict, reported and skipped)."""

    def resource(name: str, labels: dict[str, str], account: str, region: str) -> Resource:
        return Resource(
            name=name,
            description="not ours",
            labels=labels,
            protocol="postgres",
            uri=f"{name}.example.internal:5432",
            aws=AWSInfo(
                region=region, account_id=account, rdsproxy_name=name, rdsproxy_resource_id=""
            ),
        )

    other = {LABEL_ORIGIN: "cloud", LABEL_DISCOVERY_GROUP: "other-group"}
    return [
        resource("manual-db", {"team": "dba"}, ACCOUNT_A, EAST),
        resource(f"other-rdsproxy-{EAST}-{ACCOUNT_B}", other, ACCOUNT_B, EAST),
        # the name our fleet gives to A's MySQL proxy in us-east-1: held by the other group
        resource(f"ae-my-rdsproxy-{EAST}-{ACCOUNT_A}", other, ACCOUNT_A, EAST),
    ]


# --- the registry, read and seeded in-process --------------------------------------------------


def open_registry(spec: str) -> Registry:
    """`sqlite:PATH` or `postgres:DSN`."""
    kind, _, rest = spec.partition(":")
    if kind == "postgres":
        from discovery.registry.postgres import PostgresRegistry

        return PostgresRegistry(rest)
    return SQLiteRegistry(Path(rest), busy_timeout_s=30)


def snapshot(spec: str) -> Snapshot:
    async def read() -> Snapshot:
        registry = open_registry(spec)
        try:
            return {s.resource.name: s for s in await registry.list_resources()}
        finally:
            await registry.close()

    return asyncio.run(read())


def seed(spec: str, resources: Iterable[Resource]) -> None:
    async def write() -> None:
        registry = open_registry(spec)
        try:
            await registry.apply(Changes(create=tuple(sorted(resources, key=lambda r: r.name))))
        finally:
            await registry.close()

    asyncio.run(write())


# --- the CLI -----------------------------------------------------------------------------------


class Result(cli.Result):
    """A `discovery scan --output json` run, read as the matrix reads it."""

    @property
    def scopes(self) -> list[dict[str, Any]]:
        return list(self.json()["scopes"])

    @property
    def frozen(self) -> set[Area]:
        return frozen_areas(self.scopes)

    def errors(self) -> list[str]:
        return [s["error"] for s in self.scopes if s["status"] == "failed"]


def client_env(emulator: EmulatorThread, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a discovery process pointed at `emulator` (never at AWS); no
    DISCOVERY_* variable of the caller's shell reaches a row unless the row passes it."""
    return process_env(emulator.url, extra, inherit_discovery=False)


@dataclass
class World:
    """One row's fleet, config, registry and CLI; see the module docstring."""

    emulator: EmulatorThread
    workdir: Path
    registry_spec: str  # sqlite:PATH or postgres:DSN
    config: dict[str, Any]
    fleet: dict[str, Any] = field(default_factory=make_fleet)
    foreign: list[Resource] = field(default_factory=foreign_resources)

    @property
    def config_path(self) -> Path:
        return self.workdir / "discovery.yaml"

    def write_config(self) -> Path:
        self.config_path.write_text(yaml.safe_dump(self.config))
        return self.config_path

    def set_fleet(self, fleet: dict[str, Any]) -> None:
        self.fleet = copy.deepcopy(fleet)
        self.emulator.set_fleet(self.fleet)

    def set_faults(self, faults: list[dict[str, Any]]) -> None:
        self.emulator.set_faults(faults)

    def desired(self) -> dict[str, Resource]:
        return desired_state(self.fleet, self.config)

    def snapshot(self) -> Snapshot:
        return snapshot(self.registry_spec)

    def seed(self) -> Snapshot:
        """Registry := foreign + the desired state of the current fleet."""
        seed(self.registry_spec, expected_registry(self.desired(), self.foreign).values())
        return self.snapshot()

    def prepare(self) -> Snapshot:
        """Seed from fleet v0, then move the emulator to fleet v1 (changes in every area)."""
        self.set_fleet(make_fleet(0, **self._fleet_top()))
        self.write_config()
        seeded = self.seed()
        self.set_fleet(make_fleet(1, **self._fleet_top()))
        return seeded

    def _fleet_top(self) -> dict[str, Any]:
        return {k: v for k, v in self.fleet.items() if k not in ("caller_account", "accounts")}

    def scan(
        self,
        *flags: str,
        env: Mapping[str, str] | None = None,
        subprocess: bool = False,
        timeout: float = 120,
    ) -> Result:
        """One `discovery scan`: in this process unless `subprocess` (then within `timeout`)."""
        args = ["scan", "--output", "json", *flags, "--config", str(self.config_path)]
        environ = client_env(self.emulator, env)
        if subprocess:
            ran = cli.run_subprocess(args, env=environ, cwd=self.workdir, timeout=timeout)
        else:
            ran = cli.run_in_process(args, env=environ, cwd=self.workdir)
        result = Result(ran.code, ran.stdout, ran.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def cycle(
        self,
        *,
        code: int,
        frozen: set[Area] | None = None,
        require_pending: bool = True,
        **scan: Any,
    ) -> Result:
        """One scan under the current faults, checked against the invariants."""
        before = self.snapshot()
        result = self.scan(**scan)
        assert result.code == code, (result.code, result.stderr[-3000:])
        after = self.snapshot()
        if code == EXIT_RUNTIME:
            check_cycle(
                before=before,
                after=after,
                desired=self.desired(),
                foreign=self.foreign,
                frozen=set(),
                registry_failed=True,
            )
            return result
        if frozen is not None:
            assert result.frozen == frozen, (result.frozen, result.errors())
        check_cycle(
            before=before,
            after=after,
            desired=self.desired(),
            foreign=self.foreign,
            frozen=result.frozen,
            require_pending=require_pending,
        )
        return result

    def recover(self, **scan: Any) -> Result:
        """Clear the faults; the next cycle must leave exactly the desired state."""
        self.set_faults([])
        self.emulator.set_settings(latency_ms=0, throttle=None)
        result = self.scan(**scan)
        assert result.code == EXIT_OK, (result.code, result.stderr[-3000:])
        check_recovered(self.snapshot(), self.desired(), self.foreign)
        return result


# --- the daemon --------------------------------------------------------------------------------


class Daemon(DaemonProcess):
    """`discovery run` on the world's config and emulator, for the crash rows (log NAME.log)."""

    def __init__(self, world: World, *, env: Mapping[str, str] | None = None, name: str = "d"):
        world.write_config()
        super().__init__(
            world.emulator.url,
            world.workdir,
            world.config_path,
            log_path=world.workdir / f"{name}.log",
            env=env,
        )
        self.world = world
