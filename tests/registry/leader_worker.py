"""A separate process that becomes leader and then just holds on, for the kill -9 test.

`python -m tests.registry.leader_worker DSN GROUP`: prints `leader` once it leads, then sleeps
until killed.
"""

from __future__ import annotations

import asyncio
import sys

from discovery.registry.postgres_leader import PostgresLeaderElector


async def lead(dsn: str, group: str) -> None:
    elector = PostgresLeaderElector(dsn, discovery_group=group)
    await elector.start()
    while not await elector.try_acquire():
        await asyncio.sleep(0.05)
    print("leader", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(lead(sys.argv[1], sys.argv[2]))
