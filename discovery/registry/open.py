"""Registry specs → registries: the one place that knows how a backend is chosen and built.

Two kinds of spec name a registry: a config's `registry` section (what `scan`, `run` and the
`registry` commands use) and a `sqlite:PATH` / `postgres:DSN` / `teleport:[AUTH_SERVER]` string
(`registry copy`, which moves data between two registries no config describes). Both end here,
so a relative SQLite
path, the DSN's environment variable, the `postgres` extra and their error messages are handled
once. psycopg is imported only when a PostgreSQL registry is asked for, so an SQLite-only
install never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from discovery.core.config import DEFAULT_DSN_ENV, Config, ConfigError
from discovery.registry.base import Registry, RegistryError
from discovery.registry.sqlite import SQLiteRegistry

if TYPE_CHECKING:
    from discovery.registry.leader import Leadership
    from discovery.registry.postgres import PostgresRegistry
    from discovery.registry.postgres_conn import Fence
    from discovery.registry.teleport import TeleportRegistry

__all__ = [
    "BeforeCommit",
    "RegistrySpecError",
    "configured_sqlite_path",
    "open_configured",
    "open_spec",
    "postgres_registry",
]

TCTL_ENV = "DISCOVERY_TCTL"
TELEPORT_IDENTITY_ENV = "DISCOVERY_TELEPORT_IDENTITY"

BeforeCommit = Callable[[], None]
"""A test seam run inside each apply's transaction just before it commits (see the backends)."""


class RegistrySpecError(Exception):
    """A registry spec this build cannot open: malformed, or it needs a missing extra.

    A usage problem (exit 2), not a registry failure: nothing was read or written.
    """


def open_configured(
    config: Config,
    config_path: Path,
    *,
    leadership: Leadership | None = None,
    before_commit: BeforeCommit | None = None,
    environ: Mapping[str, str] | None = None,
    read_only: bool = False,
) -> Registry:
    """The registry of `config` (read from `config_path`).

    `read_only` (the `registry list`/`export` readers): never created nor migrated; a missing
    SQLite file or an absent or outdated PostgreSQL schema is a `RegistryError` naming it.

    A relative SQLite path is taken against the config's folder. With `leadership` (the
    daemon's elector, or the lock a `scan` holds), the registry is fenced: each apply commits
    only while that elector still holds the leader lock (PostgreSQL: its session's advisory
    lock; SQLite: the `flock` on the registry's lock file).
    """
    if config.registry.backend == "teleport":
        return teleport_registry(config, config_path)
    if config.registry.backend == "sqlite":
        from discovery.registry.sqlite_leader import SQLiteLeaderLock

        fence = leadership.held if isinstance(leadership, SQLiteLeaderLock) else None
        return SQLiteRegistry(
            configured_sqlite_path(config, config_path),
            before_commit=before_commit,
            fence=fence,
            read_only=read_only,
        )
    try:
        dsn = config.registry.resolve_dsn(os.environ if environ is None else environ)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    try:
        return postgres_registry(
            dsn,
            migrate=not read_only,
            fence=_fence_of(leadership),
            before_commit=before_commit,
        )
    except RegistryError as exc:
        raise ConfigError(
            f"{config_path}: registry.dsn (or ${config.registry.dsn_env}): {exc}"
        ) from None


def teleport_registry(config: Config, config_path: Path) -> TeleportRegistry:
    """The config's Teleport cluster, through tctl; relative paths against the config's folder.

    Not fenced: tctl has no conditional write, so one replica writes a cluster (see README).
    """
    from discovery.registry.teleport import TeleportRegistry
    from discovery.registry.teleport_tctl import TctlSettings

    section = config.registry
    journal = Path(section.journal) if section.journal else None
    if journal is not None and not journal.is_absolute():
        journal = config_path.parent / journal
    return TeleportRegistry(
        TctlSettings.resolved(
            tctl=section.tctl,
            auth_server=section.auth_server,
            identity=section.identity,
            timeout=section.timeout,
            base=config_path.parent,
        ),
        journal=journal,
    )


def configured_sqlite_path(config: Config, config_path: Path) -> Path:
    """The config's `registry.path`, a relative one taken against the config's folder."""
    path = Path(config.registry.path)
    return path if path.is_absolute() else config_path.parent / path


def open_spec(
    spec: str, *, flag: str, source: bool, environ: Mapping[str, str] | None = None
) -> tuple[Registry, str]:
    """`sqlite:PATH`, `postgres:DSN` (or a `postgresql://` URI) → a registry and its name.

    `postgres:` with nothing after it takes the DSN from $DISCOVERY_REGISTRY_DSN, which keeps
    the password out of the shell history and the process list. A source is never created
    or migrated: copying from a path or schema that holds no registry is an error. `flag`
    (e.g. `--from`) starts every error message.
    """
    if spec.startswith(("postgresql://", "postgres://")):
        kind, rest = "postgres", spec
    elif ":" in spec:
        kind, rest = spec.split(":", 1)
    else:
        kind, rest = "", spec
    if kind == "sqlite":
        if not rest:
            raise RegistrySpecError(f"{flag}: sqlite: needs a path, e.g. sqlite:discovery.db")
        path = Path(rest)
        if source and not path.is_file():
            raise RegistrySpecError(f"{flag}: {path} does not exist (or is not a file)")
        return SQLiteRegistry(path), f"sqlite {path}"
    if kind in ("postgres", "postgresql"):
        env = os.environ if environ is None else environ
        dsn = rest.strip() or env.get(DEFAULT_DSN_ENV, "").strip()
        if not dsn:
            raise RegistrySpecError(
                f"{flag}: postgres: needs a DSN (postgres:'host=... dbname=...') or, with "
                f"nothing after the colon, the DSN in ${DEFAULT_DSN_ENV}"
            )
        try:
            registry = postgres_registry(dsn, migrate=not source)
        except RegistryError as exc:
            raise RegistrySpecError(f"{flag}: {exc}") from None
        return registry, registry.where
    if kind == "teleport":
        return _teleport_spec(rest.strip(), flag=flag, environ=environ)
    raise RegistrySpecError(
        f"{flag}: {spec!r}: write sqlite:PATH or postgres:DSN (or teleport:[AUTH_SERVER])"
    )


def _teleport_spec(
    auth_server: str, *, flag: str, environ: Mapping[str, str] | None
) -> tuple[Registry, str]:
    """`teleport:[AUTH_SERVER]`: tctl from $DISCOVERY_TCTL (default `tctl` on PATH), the
    identity file from $DISCOVERY_TELEPORT_IDENTITY; both are passed as the config's
    `registry.tctl` / `registry.identity` would be."""
    from discovery.registry.teleport import TeleportRegistry
    from discovery.registry.teleport_tctl import TctlSettings

    env = os.environ if environ is None else environ
    identity = env.get(TELEPORT_IDENTITY_ENV, "").strip()
    if identity and not auth_server:
        raise RegistrySpecError(
            f"{flag}: teleport: with ${TELEPORT_IDENTITY_ENV} needs the auth server, "
            "e.g. teleport:teleport.example.com:443"
        )
    settings = TctlSettings.resolved(
        tctl=env.get(TCTL_ENV, "").strip() or "tctl",
        auth_server=auth_server,
        identity=identity,
        timeout=30.0,
        base=Path.cwd(),
    )
    registry = TeleportRegistry(settings)
    return registry, registry.where


def postgres_registry(
    dsn: str,
    *,
    migrate: bool = True,
    fence: Fence | None = None,
    before_commit: BeforeCommit | None = None,
) -> PostgresRegistry:
    """A `PostgresRegistry`, or a `RegistrySpecError` naming the extra when psycopg is missing.

    A malformed DSN raises `RegistryError` (no connection is made here).
    """
    try:
        from discovery.registry.postgres import PostgresRegistry
    except ImportError as exc:
        raise RegistrySpecError(
            "the postgres registry needs the 'postgres' extra: "
            f"pip install 'rdsproxy-discovery[postgres]' ({exc})"
        ) from None
    return PostgresRegistry(dsn, migrate=migrate, fence=fence, before_commit=before_commit)


def _fence_of(leadership: Leadership | None) -> Fence | None:
    """The elector's `held_lock` when it is a PostgreSQL one; None for no or another elector."""
    if leadership is None:
        return None
    from discovery.registry.postgres_leader import PostgresLeaderElector

    return leadership.held_lock if isinstance(leadership, PostgresLeaderElector) else None
