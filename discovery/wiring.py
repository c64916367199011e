"""Where the pieces are put together: config → AWS source, registry, leadership; and `scan`.

Every entry point (the CLI's `scan` and `run`, the demo, the bench, the daemon's reload) gets
its pieces here, so a backend is chosen, fenced and reported on in one way, and no entry point
imports another. The pure decisions stay in `discovery.core` and `discovery.reconcile`; this
module only chooses and connects implementations.

`before_commit` is a seam for the fault tests (see `discovery.registry.sqlite`): production
callers never pass it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiobotocore.session import AioSession

from discovery.aws.calls import Caller, CallObserver
from discovery.aws.clients import AWSClients, AWSSettings, ThrottleObserver
from discovery.aws.rds_proxy import AWSSource
from discovery.aws.regions import known_regions
from discovery.core.adopt import Adoption, adopt
from discovery.core.config import Config, ConfigError, LoadedConfig, parse_config
from discovery.core.config_yaml import ConfigYAMLError, decode_config
from discovery.core.durations import (
    FLOOR_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
    check_range,
    format_duration,
    parse_duration,
)
from discovery.core.model import Scope
from discovery.core.summary import CycleReport
from discovery.reconcile.cycle import ScopeObserver, run_cycle
from discovery.registry.account_state import AccountStateFile, account_state_for
from discovery.registry.base import Registry, RegistryError
from discovery.registry.leader import AlwaysLeader, Leadership
from discovery.registry.open import (
    BeforeCommit,
    RegistrySpecError,
    configured_sqlite_path,
    open_configured,
)
from discovery.registry.sqlite_leader import RegistryLocked, SQLiteLeaderLock

__all__ = [
    "account_state",
    "adopt_group",
    "load_config",
    "open_backend",
    "open_clients",
    "open_leadership",
    "open_registry",
    "open_source",
    "read_config",
    "scan",
]

log = logging.getLogger(__name__)

# Tests only: lowers the shortest poll_interval a config may set (the product's is 10s) so a
# test daemon can cycle every second. Unset or empty: the product minimum.
MIN_POLL_INTERVAL_ENV = "DISCOVERY_MIN_POLL_INTERVAL"


def min_poll_interval(environ: Mapping[str, str] | None = None) -> float:
    """The shortest poll_interval accepted: $DISCOVERY_MIN_POLL_INTERVAL, else 10s."""
    text = (os.environ if environ is None else environ).get(MIN_POLL_INTERVAL_ENV, "").strip()
    if not text:
        return MIN_POLL_INTERVAL
    try:
        return check_range(parse_duration(text), low=FLOOR_POLL_INTERVAL, high=MIN_POLL_INTERVAL)
    except ValueError as exc:
        raise ConfigError(
            f"${MIN_POLL_INTERVAL_ENV}: {exc}; unset it (the minimum is then "
            f"{format_duration(MIN_POLL_INTERVAL)}) or set a duration such as 1s"
        ) from None


def read_config(path: str | Path) -> LoadedConfig:
    """Read and validate a config file (ours or a teleport.yaml), keeping the warnings."""
    source = str(path)
    floor = min_poll_interval()
    try:
        text = decode_config(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: no such file; pass --config with the path of your config"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory; pass --config with a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the file: {exc.strerror or exc}") from None
    except ConfigYAMLError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return parse_config(text, source=source, min_poll_interval=floor, known_regions=known_regions())


def load_config(path: str | Path) -> Config:
    """The config at `path`; whatever a teleport.yaml had that is ignored is logged."""
    loaded = read_config(path)
    for warning in loaded.warnings:
        log.warning("%s: %s", path, warning)
    return loaded.config


def open_registry(
    config: Config,
    config_path: Path,
    *,
    leadership: Leadership | None = None,
    before_commit: BeforeCommit | None = None,
    read_only: bool = False,
) -> Registry:
    """The configured registry; with `leadership` (the daemon's elector), fenced on it;
    `read_only`: never created or migrated (`registry list`, `registry export`,
    `print-iam --from-registry`).

    Errors name the config file: `ConfigError` for no or a malformed DSN (exit 2),
    `RegistrySpecError` when this build lacks the backend's extra (exit 2).
    """
    return open_configured(
        config,
        config_path,
        leadership=leadership,
        before_commit=before_commit,
        read_only=read_only,
    )


def open_leadership(
    config: Config,
    config_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    holder: str = "discovery run",
) -> Leadership:
    """The leader elector for `config`: an `flock` on `<registry.path>.lock` for SQLite (one
    process writes a file; `holder` says which kind in the lock file), a session advisory lock
    for PostgreSQL.

    Errors are those of `open_registry` (exit 2): no DSN or a malformed one names
    `registry.dsn`, a build without psycopg names the extra. Nothing connects or opens here.
    """
    if config.registry.backend == "sqlite":
        return SQLiteLeaderLock(configured_sqlite_path(config, config_path), holder=holder)
    if config.registry.backend != "postgres":
        return AlwaysLeader()
    try:
        dsn = config.registry.resolve_dsn(os.environ if environ is None else environ)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    try:
        from discovery.registry.postgres_leader import PostgresLeaderElector
    except ImportError as exc:
        raise RegistrySpecError(
            "leader election needs the 'postgres' extra: "
            f"pip install 'rdsproxy-discovery[postgres]' ({exc})"
        ) from None
    try:
        return PostgresLeaderElector(dsn, discovery_group=config.discovery_group)
    except RegistryError as exc:
        raise ConfigError(
            f"{config_path}: registry.dsn (or ${config.registry.dsn_env}): {exc}"
        ) from None


def open_backend(
    config: Config, config_path: Path, /, *, before_commit: BeforeCommit | None = None
) -> tuple[Registry, Leadership]:
    """The daemon's elector and its registry, fenced on it: they are opened (and swapped on a
    reload) together, because the fence is only as good as the elector it asks."""
    leadership = open_leadership(config, config_path)
    registry = open_registry(
        config, config_path, leadership=leadership, before_commit=before_commit
    )
    return registry, leadership


def account_state(config: Config, config_path: Path) -> AccountStateFile:
    """The "first seen gone" state file of `config` (see `registry.account_state`)."""
    return account_state_for(config, config_path)


def _no_call_observer(operation: str, outcome: str, retries: int) -> None:
    return None


def _no_throttle_observer(operation: str) -> None:
    return None


def open_source(
    config: Config,
    /,
    *,
    on_call: CallObserver = _no_call_observer,
    on_throttle: ThrottleObserver = _no_throttle_observer,
) -> AWSSource:
    """The AWS source for `config`'s `aws_client` settings; use it as an async context manager
    (it holds the sessions and clients, reused until it is closed)."""
    return AWSSource(
        settings=AWSSettings.from_config(config.aws_client),
        on_call=on_call,
        on_throttle=on_throttle,
    )


def open_clients(settings: AWSSettings, *, session: AioSession | None = None) -> AWSClients:
    """The AWS layer alone (sessions, clients, the call wrapper), for `doctor`: the same client
    cache, paging guards and error table as a cycle's, with `settings` from the config's
    `aws_client` section (doctor may override some). An async context manager."""
    caller = Caller(
        max_concurrency=settings.max_concurrency,
        per_key_concurrency=settings.max_concurrency_per_account_region,
    )
    return AWSClients(caller=caller, settings=settings, base_session=session)


async def scan(
    config: Config,
    config_path: Path,
    *,
    dry_run: bool,
    force: bool,
    accept_config_change: bool = False,
    scopes: Sequence[Scope] | None = None,
    on_scope: ScopeObserver | None = None,
    before_commit: BeforeCommit | None = None,
) -> CycleReport:
    """One cycle (`discovery scan`): fetch every scope, plan, and apply unless `dry_run`.

    `scopes` are the config's, when the caller has already expanded them (for its progress
    display): they are not expanded twice.

    With SQLite (and not `dry_run`) the scan holds the registry's lock file for its run, and
    its apply is fenced on it: if another process (a daemon, another scan) holds it, it raises
    `RegistryLocked` naming that process, before anything is fetched.
    """
    lock = await _take_write_lock(config, config_path, dry_run=dry_run)
    try:
        registry = open_registry(config, config_path, leadership=lock, before_commit=before_commit)
        try:
            async with open_source(config) as source:
                report = await run_cycle(
                    config=config,
                    source=source,
                    registry=registry,
                    dry_run=dry_run,
                    force=force,
                    accept_config_change=accept_config_change,
                    scopes=scopes,
                    on_scope=on_scope,
                    lister=source.inventory,
                    gone_state=account_state(config, config_path),
                )
        finally:
            await registry.close()
        _log_scopes_debug(report)
        return report
    finally:
        if lock is not None:
            await lock.release()


def _log_scopes_debug(report: CycleReport) -> None:
    """`--log-level debug`: what each scope gave (the report shows only the failed ones)."""
    for result in report.scopes:
        where = f"{result.account_id or '?'}/{result.scope.region}"
        if result.ok:
            log.debug(
                "scope %s: %d resource(s), %d skipped",
                where,
                len(result.resources),
                len(result.skipped),
            )
        else:
            log.debug("scope %s failed: %s", where, result.error)
    log.debug(
        "plan: %d create, %d update, %d delete, %d withheld; applied: %s",
        len(report.plan.create),
        len(report.plan.update),
        len(report.plan.delete),
        len(report.plan.withheld),
        report.applied,
    )


async def adopt_group(
    config: Config, config_path: Path, *, from_group: str, dry_run: bool
) -> Adoption:
    """`discovery registry adopt`: move `from_group`'s resources (and those of no group) into
    this config's group, in one transaction (nothing when `dry_run`).

    With SQLite it holds the registry's lock file like a writing scan: not while a daemon runs.
    """
    lock = await _take_write_lock(
        config, config_path, dry_run=dry_run, holder="discovery registry adopt"
    )
    try:
        registry = open_registry(config, config_path, leadership=lock)
        try:
            adoption = adopt(
                await registry.list_resources(),
                from_group=from_group,
                to_group=config.discovery_group,
            )
            if not dry_run and adoption.changes:
                await registry.apply(adoption.changes)
            return adoption
        finally:
            await registry.close()
    finally:
        if lock is not None:
            await lock.release()


async def _take_write_lock(
    config: Config, config_path: Path, *, dry_run: bool, holder: str = "discovery scan"
) -> SQLiteLeaderLock | None:
    """The SQLite lock a writing scan (or adopt) holds; None for a dry run (it writes nothing) or a
    PostgreSQL registry (its writes are compare-and-swap; its daemons elect a leader)."""
    if dry_run or config.registry.backend != "sqlite":
        return None
    lock = SQLiteLeaderLock(configured_sqlite_path(config, config_path), holder=holder)
    await lock.start()
    if not await lock.try_acquire():
        if lock.last_error:
            raise RegistryError(lock.last_error)
        raise RegistryLocked(lock.refusal())
    return lock
