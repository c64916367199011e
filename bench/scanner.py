"""One measured cycle in this process: `python -m bench.scanner ours|peers --config FILE`.

Run in a fresh process per cycle (as `discovery scan` from cron would be), so the CPU seconds
and the peak RSS printed are this scanner's alone. Prints one JSON object on stdout.

- `ours`: what `discovery scan` does (AWSSource, run_cycle with the source's account and
  region lister and the gone-accounts state file, the SQLite registry), with the registry
  wrapped to count the rows each apply writes.
- `peers`: the peers' call pattern (bench.peers); it only fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

from discovery import wiring
from discovery.cli.runtime import tune_gc
from discovery.core.journal import JournalEntry
from discovery.core.model import Changes, StoredResource
from discovery.reconcile.cycle import run_cycle
from discovery.registry.base import Registry
from discovery.wiring import load_config


class CountingRegistry:
    """A Registry that counts the rows each apply writes (created + updated + deleted)."""

    def __init__(self, inner: Registry) -> None:
        self.inner = inner
        self.rows_written = 0
        self.transactions = 0
        self.apply_s = 0.0
        self.list_s = 0.0

    async def list_resources(self) -> list[StoredResource]:
        started = time.perf_counter()
        try:
            return await self.inner.list_resources()
        finally:
            self.list_s += time.perf_counter() - started

    async def history(self, **filters: Any) -> list[JournalEntry]:
        return await self.inner.history(**filters)

    async def apply(self, changes: Changes) -> None:
        started = time.perf_counter()
        await self.inner.apply(changes)
        self.apply_s += time.perf_counter() - started
        self.transactions += 1
        self.rows_written += len(changes.create) + len(changes.update) + len(changes.delete)

    async def close(self) -> None:
        await self.inner.close()


async def _ours(config_path: Path) -> dict[str, Any]:
    config = load_config(config_path)
    registry = CountingRegistry(wiring.open_registry(config, config_path))
    try:
        # What `discovery scan` does (wiring.scan), minus rendering the report, with the
        # registry wrapped to count what it writes.
        async with wiring.open_source(config) as source:
            report = await run_cycle(
                config=config,
                source=source,
                registry=registry,
                lister=source.inventory,
                gone_state=wiring.account_state(config, config_path),
            )
    finally:
        await registry.close()
    plan = report.plan
    return {
        "scopes": len(report.scopes),
        "failed_scopes": report.failed_scopes,
        "errors": sorted({s.error for s in report.scopes if not s.ok})[:3],
        "resources": sum(len(s.resources) for s in report.scopes),
        "plan": {
            "create": len(plan.create),
            "update": len(plan.update),
            "delete": len(plan.delete),
            "unchanged": plan.unchanged,
            "withheld": len(plan.withheld),
        },
        "registry_writes": registry.rows_written,
        "registry_transactions": registry.transactions,
        "registry_list_s": round(registry.list_s, 3),
        "registry_apply_s": round(registry.apply_s, 3),
    }


async def _daemon(config_path: Path) -> dict[str, Any]:
    """What `discovery run` does across cycles: one source (clients, credentials) kept open.

    Two cycles in this process; the figures are the second's (the daemon's steady cycle),
    the first cycle's wall time is reported beside them, and peak RSS covers both.
    """
    config = load_config(config_path)
    registry = CountingRegistry(wiring.open_registry(config, config_path))
    try:
        async with wiring.open_source(config) as source:
            # As the daemon: the listings' caches (accounts, regions) live across cycles.
            listed: dict[str, Any] = {
                "lister": source.inventory,
                "gone_state": wiring.account_state(config, config_path),
            }
            started = time.perf_counter()
            await run_cycle(config=config, source=source, registry=registry, **listed)
            warmup_s = time.perf_counter() - started
            registry.rows_written = registry.transactions = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            report = await run_cycle(config=config, source=source, registry=registry, **listed)
            steady = {
                "steady_wall_s": round(time.perf_counter() - wall0, 3),
                "steady_cpu_s": round(time.process_time() - cpu0, 3),
            }
    finally:
        await registry.close()
    return {
        "scopes": len(report.scopes),
        "failed_scopes": report.failed_scopes,
        "errors": sorted({s.error for s in report.scopes if not s.ok})[:3],
        "resources": sum(len(s.resources) for s in report.scopes),
        "registry_writes": registry.rows_written,
        "daemon_first_wall_s": round(warmup_s, 3),
        **steady,
    }


async def _peers(config_path: Path, concurrency: int) -> dict[str, Any]:
    from bench.peers import scan_like_peers

    config = load_config(config_path)
    return await scan_like_peers(config, concurrency=concurrency)


def run_queue_wait_s() -> float | None:
    """How long this thread has waited for a CPU while runnable (Linux schedstat), or None.

    On a shared machine, other processes' load shows here and not as our own slowness.
    """
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return None
    return int(fields[1]) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scanner")
    parser.add_argument("mode", choices=["ours", "daemon", "peers", "boto3"])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--peers-concurrency", type=int, default=5)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the cycle here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

    async def cycle() -> dict[str, Any]:
        if args.mode == "ours":
            return await _ours(args.config)
        if args.mode == "daemon":
            return await _daemon(args.config)
        if args.mode == "boto3":
            from bench.threaded import scan_threaded

            return await asyncio.to_thread(scan_threaded, load_config(args.config))
        return await _peers(args.config, args.peers_concurrency)

    if args.mode in ("ours", "daemon"):
        tune_gc()  # as the `discovery` command does before any cycle
    gc_s = [0.0, 0.0]  # in the collector; when the current collection started

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_s[1] = time.process_time()
        else:
            gc_s[0] += time.process_time() - gc_s[1]

    gc.callbacks.append(gc_timer)
    gc_before = [s["collections"] for s in gc.get_stats()]
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wait0 = run_queue_wait_s()
    cpu0, loop0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
    result = asyncio.run(cycle())
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    loop_cpu = time.thread_time() - loop0  # the event loop's thread alone
    wait1 = run_queue_wait_s()
    waited = None if wait0 is None or wait1 is None else round(wait1 - wait0, 3)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    gc.callbacks.remove(gc_timer)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        gc_s=round(gc_s[0], 3),
        gc_collections=[
            s["collections"] - b for s, b in zip(gc.get_stats(), gc_before, strict=True)
        ],
        mode=args.mode,
        wall_s=round(wall, 3),
        cpu_s=round(cpu, 3),
        loop_cpu_s=round(loop_cpu, 3),
        run_queue_wait_s=waited,
        process_cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
