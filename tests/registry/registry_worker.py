"""A separate OS process that writes to a registry, for the multi-process tests.

Run from the repository root as `python -m tests.registry.registry_worker MODE ...`. PATH is an
SQLite file, or `postgres:DSN` for the PostgreSQL registry.

`writer PATH WORKER_ID ROUNDS START_FILE`: touches `ready-<ID>` next to START_FILE and waits for
START_FILE; then, ROUNDS times, reads the registry, creates `w<ID>-r<round>`, bumps the shared
counter resource by compare-and-swap and, every third round, deletes one of its own earlier
resources, retrying on conflict. Prints a JSON summary.

`bulk PATH COUNT`: prints `ready`, applies COUNT creates in one transaction, prints `done`. The
parent kills it part-way to simulate a crash mid-apply.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from discovery.registry.base import Changes, Registry, RegistryConflict, RegistryError, Update
from discovery.registry.sqlite import SQLiteRegistry
from tests.registry.registry_support import make_resource

SHARED = "shared"
MAX_ATTEMPTS = 10_000


def open_registry(path: str) -> Registry:
    if path.startswith("postgres:"):
        from discovery.registry.postgres import PostgresRegistry

        return PostgresRegistry(path.removeprefix("postgres:"))
    return SQLiteRegistry(Path(path))


async def writer(path: str, worker: int, rounds: int, start_file: Path) -> dict[str, object]:
    registry = open_registry(path)
    await registry.list_resources()
    start_file.with_name(f"ready-{worker}").touch()
    while not start_file.exists():
        time.sleep(0.001)
    created: list[str] = []
    deleted: list[str] = []
    conflicts = 0
    errors: list[str] = []
    for round_ in range(rounds):
        for _ in range(MAX_ATTEMPTS):
            rows = {stored.resource.name: stored for stored in await registry.list_resources()}
            shared = rows[SHARED]
            count = int(shared.resource.labels["count"])
            bumped = replace(
                shared.resource,
                labels={**shared.resource.labels, "count": str(count + 1), "by": f"w{worker}"},
            )
            own = f"w{worker}-r{round_}"
            stale_own = f"w{worker}-r{round_ - 3}"
            delete = (rows[stale_own],) if round_ % 3 == 0 and stale_own in rows else ()
            changes = Changes(
                create=(make_resource(own, variant=round_),),
                update=(Update(before=shared, after=bumped),),
                delete=delete,
            )
            try:
                await registry.apply(changes)
            except RegistryConflict:
                conflicts += 1
                continue
            except RegistryError as exc:
                errors.append(str(exc))
                continue
            created.append(own)
            deleted.extend(stored.resource.name for stored in delete)
            break
        else:
            raise SystemExit(f"worker {worker}: round {round_} never committed")
    await registry.close()
    return {"created": created, "deleted": deleted, "conflicts": conflicts, "errors": errors}


async def bulk(path: str, count: int) -> None:
    registry = open_registry(path)
    await registry.list_resources()  # schema ready: the kill lands in the apply, not in setup
    changes = Changes(create=tuple(make_resource(f"bulk-{i:05d}") for i in range(count)))
    print("ready", flush=True)
    await registry.apply(changes)
    print("done", flush=True)


def main(argv: list[str]) -> None:
    mode, path = argv[1], argv[2]
    if mode == "writer":
        summary = asyncio.run(writer(path, int(argv[3]), int(argv[4]), Path(argv[5])))
        print(json.dumps(summary))
    elif mode == "bulk":
        asyncio.run(bulk(path, int(argv[3])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
