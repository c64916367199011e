"""A stored resource written before `spec.aws.assume_role_arn`/`external_id` were registered
still reads back, from a real SQLite file and from PostgreSQL, with the fields empty (the next
cycle then updates it: tests/reconcile/test_cycle_connection_role.py)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

from discovery.core.model import Changes
from discovery.registry.postgres import PostgresRegistry
from discovery.registry.sqlite import SQLiteRegistry
from tests.registry.postgres_support import fresh_schema, sql
from tests.registry.registry_support import make_resource

WITH_ROLE = make_resource("orders", full=True)
WITHOUT_ROLE = replace(WITH_ROLE, aws=replace(WITH_ROLE.aws, assume_role_arn="", external_id=""))


def _legacy(document: dict[str, object]) -> dict[str, object]:
    aws = document["spec"]["aws"]  # type: ignore[index]
    del aws["assume_role_arn"], aws["external_id"]
    return document


async def test_sqlite_reads_a_document_without_the_role(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    registry = SQLiteRegistry(path)
    await registry.apply(Changes(create=(WITH_ROLE,)))
    with sqlite3.connect(path) as conn:
        (text,) = conn.execute("SELECT document FROM resources").fetchone()
        assert "assume_role_arn" in text
        conn.execute("UPDATE resources SET document = ?", (json.dumps(_legacy(json.loads(text))),))

    (stored,) = await registry.list_resources()
    await registry.close()
    assert stored.resource == WITHOUT_ROLE


async def test_postgres_reads_a_document_without_the_role() -> None:
    with fresh_schema() as dsn:
        registry = PostgresRegistry(dsn)
        try:
            await registry.apply(Changes(create=(WITH_ROLE,)))
            sql(
                dsn,
                "UPDATE discovery_resources SET document = document "
                "#- '{spec,aws,assume_role_arn}' #- '{spec,aws,external_id}'",
            )
            (stored,) = await registry.list_resources()
        finally:
            await registry.close()
    assert stored.resource == WITHOUT_ROLE
