"""Builders and backends shared by the registry tests (and the worker script).

A backend joins the shared contract by adding one entry to `BACKENDS`: a factory that builds a
fresh, empty registry plus a probe of its registry-wide revision counter (which the Protocol
does not expose, yet the contract says an empty apply must not move), and what to clean up.
The PostgreSQL factory gives every test its own schema (see postgres_support), and skips only
when no PostgreSQL server can be found or started.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from discovery.core.model import AWSInfo, Resource
from discovery.registry.base import Registry
from discovery.registry.memory import MemoryRegistry
from discovery.registry.sqlite import SQLiteRegistry

OWNED_LABELS = {
    "teleport.dev/origin": "cloud",
    "teleport.dev/cloud": "AWS",
    "teleport.dev/discovery-type": "rdsproxy",
    "teleport.internal/discovery-group-name": "prod",
}


def make_resource(name: str, *, variant: int = 0, full: bool = False) -> Resource:
    """A db resource named `name`; `variant` changes its content, `full` sets every field."""
    resource = Resource(
        name=name,
        description=f"RDS Proxy in us-east-1 (variant {variant})",
        labels={**OWNED_LABELS, "account-id": "012345678901", "variant": str(variant)},
        protocol="postgres",
        uri=f"{name}.proxy-abc.us-east-1.rds.amazonaws.com:5432",
        aws=AWSInfo(
            region="us-east-1",
            account_id="012345678901",
            rdsproxy_name=name,
            rdsproxy_resource_id=f"prx-{variant:04d}",
        ),
    )
    if not full:
        return resource
    return replace(
        resource,
        labels={**resource.labels, "endpoint-type": "READ_ONLY", "team": "dbä ✓", "empty": ""},
        aws=replace(
            resource.aws,
            rdsproxy_custom_endpoint_name="reader",
            assume_role_arn="arn:aws:iam::012345678901:role/discovery",
            external_id="example-external-id",
        ),
        tls_server_name=f"{name}.proxy-abc.us-east-1.rds.amazonaws.com",
    )


def minimal_resource(name: str) -> Resource:
    """Every optional field empty: exercises the omitted-field path of to_dict/from_dict."""
    return Resource(
        name=name,
        description="",
        labels={},
        protocol="mysql",
        uri="h:3306",
        aws=AWSInfo(region="", account_id="", rdsproxy_name="", rdsproxy_resource_id=""),
    )


@dataclass(frozen=True, kw_only=True)
class Backend:
    registry: Registry
    revision_counter: Callable[[], Awaitable[int]]
    cleanup: Callable[[], None] = lambda: None


def _memory(tmp_path: Path) -> Backend:
    registry = MemoryRegistry()

    async def counter() -> int:
        return registry.revision

    return Backend(registry=registry, revision_counter=counter)


def sqlite_revision_counter(path: Path) -> int:
    """Read the registry-wide counter straight from the file, read-only (0 before first use)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
    finally:
        conn.close()
    return int(row[0])


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "registry.db"

    async def counter() -> int:
        return sqlite_revision_counter(path)

    return Backend(registry=SQLiteRegistry(path), revision_counter=counter)


def _postgres(tmp_path: Path) -> Backend:
    from discovery.registry.postgres import PostgresRegistry
    from tests.registry import postgres_support

    dsn, schema = postgres_support.new_schema()

    async def counter() -> int:
        return postgres_support.revision_counter(dsn)

    return Backend(
        registry=PostgresRegistry(dsn),
        revision_counter=counter,
        cleanup=lambda: postgres_support.drop_schema(schema),
    )


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}
