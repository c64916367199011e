"""The soak run: one `discovery run` daemon, many accelerated cycles, a changing fleet and injected
faults; the invariants after every step, the daemon's memory and open files throughout.

    .venv/bin/python -m tests.faults.soak --cycles 1000 [--backend sqlite|postgres] [--seed N]

Each step changes the fleet (proxies added, removed, re-tagged, put into a skipped status),
injects one fault (or none), waits for two completed cycles (the first may have straddled the
change; the second ran wholly under it) and checks, between the registry after the first and
after the second: nothing in a failed scope's area changed, no foreign resource changed,
everything else is exactly the desired state, no duplicates; after a step without a lasting
fault, the registry is exactly foreign + desired. Faults are deterministic for the length of a
step (persistent, or fewer than the daemon's retries), so every cycle of a step sees the same.

The daemon's RSS (VmRSS) and open file descriptors are sampled at every step; the run fails if,
after a warm-up of 10% of the cycles, RSS grows by more than `--max-rss-growth-mb` or the
descriptors by more than `--max-fd-growth`. A JSON summary goes to stdout (and `--report`).
`tests/faults/test_soak.py` runs a short soak in the default test run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discovery.emulator import EmulatorThread
from tests.faults.invariants import check_cycle, check_recovered, frozen_areas
from tests.faults.support import (
    ACCOUNT_A,
    ACCOUNT_B,
    AREAS,
    Daemon,
    World,
    make_config,
    make_fleet,
)

CREDENTIAL_SECONDS = 30  # short: refreshed at every call, so an unassumable role shows at once


@dataclass
class Fault:
    """One step's fault: emulator fault rules, a fleet tweak, or a registry lock."""

    name: str
    rules: list[dict[str, Any]] = field(default_factory=list)
    lasting: bool = False  # fails scopes for the whole step
    unassumable: str = ""  # an account whose role's trust changes for the step
    lock_registry: float = 0.0  # seconds the SQLite write lock is held at the step's start


def pick_fault(rng: random.Random) -> Fault:
    account, region = rng.choice(AREAS)
    where = {"account": account, "region": region}
    op = rng.choice(["DescribeDBProxies", "DescribeDBProxyEndpoints", "GetResources"])
    kind = rng.choices(
        [
            "none",
            "denied",
            "assume-role-denied",
            "tags-denied",
            "tags-fallback",
            "malformed",
            "throttled",
            "5xx",
            "slow",
            "unassumable",
            "registry-lock",
        ],
        weights=[30, 8, 4, 4, 4, 8, 10, 10, 8, 6, 8],
    )[0]
    if kind == "denied":
        return Fault(kind, [{"operation": op, "code": "AccessDenied", **where}], lasting=True)
    if kind == "assume-role-denied":
        role_account = rng.choice([ACCOUNT_A, ACCOUNT_B])
        rule = {"operation": "AssumeRole", "code": "AccessDenied", "account": role_account}
        return Fault(kind, [rule], lasting=True)
    if kind == "tags-denied":
        return Fault(
            kind,
            [
                {"operation": "GetResources", "code": "AccessDeniedException", **where},
                {"operation": "ListTagsForResource", "code": "AccessDenied", **where},
            ],
            lasting=True,
        )
    if kind == "tags-fallback":
        return Fault(kind, [{"operation": "GetResources", "code": "AccessDeniedException"}])
    if kind == "malformed":
        return Fault(kind, [{"operation": op, "code": "Malformed", **where}], lasting=True)
    if kind == "throttled":  # fewer than the daemon's 6 attempts: retried through
        return Fault(kind, [{"operation": "*", "code": "Throttling", "times": 3}])
    if kind == "5xx":
        return Fault(kind, [{"operation": op, "code": "InternalFailure", "times": 2}])
    if kind == "slow":  # a latency spike, under the daemon's 30 s read timeout
        return Fault(kind, [{"operation": op, "code": "Timeout", "delay_seconds": 0.3}])
    if kind == "unassumable":
        return Fault(kind, lasting=True, unassumable=rng.choice([ACCOUNT_A, ACCOUNT_B]))
    if kind == "registry-lock":
        return Fault(kind, lock_registry=0.5)
    return Fault("none")


def mutate(fleet: dict[str, Any], rng: random.Random, serial: int) -> None:
    """A few changes somewhere in the fleet (never the foreign resources' names)."""
    for index in range(rng.randint(1, 3)):
        account = rng.choice([a for a in fleet["accounts"] if a["regions"]])
        region = rng.choice(sorted(account["regions"]))
        proxies = account["regions"][region]["proxies"]
        change = rng.choice(["add", "remove", "retag", "status"])
        if change == "add" or not proxies:
            name = f"s{serial}-{index}"  # unique: proxy and endpoint names never repeat
            proxies.append(
                {
                    "name": name,
                    "engine_family": rng.choice(["POSTGRESQL", "MYSQL", "SQLSERVER"]),
                    "tags": {"env": rng.choice(["prod", "dev"]), "n": str(serial)},
                    "endpoints": [{"name": f"{name}-ro", "target_role": "READ_ONLY"}]
                    if rng.random() < 0.5
                    else [],
                }
            )
        elif change == "remove":
            proxies.remove(rng.choice(proxies))
        elif change == "retag":
            rng.choice(proxies).setdefault("tags", {})["rev"] = str(serial)
        else:
            proxy = rng.choice(proxies)
            proxy["status"] = (
                "creating" if proxy.get("status", "available") == "available" else "available"
            )


def with_trust_changed(fleet: dict[str, Any], account_id: str) -> dict[str, Any]:
    changed = copy.deepcopy(fleet)
    for account in changed["accounts"]:
        if account["id"] == account_id:
            account["roles"] = [{"name": "discovery", "external_id": "rotated"}]
    return changed


def process_sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of `pid`."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


@dataclass
class Summary:
    cycles: int = 0
    steps: int = 0
    seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    failed_scope_cycles: int = 0
    exact_checks: int = 0
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (cycles, rss KiB, fds)

    def figures(self, warmup_cycles: int) -> dict[str, Any]:
        after = [s for s in self.samples if s[0] >= warmup_cycles] or self.samples
        window = max(1, len(after) // 10)
        first, last = after[:window], after[-window:]
        rss_first = statistics.median(s[1] for s in first) / 1024
        rss_last = statistics.median(s[1] for s in last) / 1024
        fds_first = statistics.median(s[2] for s in first)
        fds_last = statistics.median(s[2] for s in last)
        return {
            "cycles": self.cycles,
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "faults": dict(sorted(self.faults.items())),
            "cycles_with_failed_scopes_checked": self.failed_scope_cycles,
            "exact_state_checks": self.exact_checks,
            "rss_mib": {
                "start": round(self.samples[0][1] / 1024, 1),
                "after_warmup": round(rss_first, 1),
                "end": round(rss_last, 1),
                "max": round(max(s[1] for s in self.samples) / 1024, 1),
                "growth_after_warmup": round(rss_last - rss_first, 1),
            },
            "open_fds": {
                "start": self.samples[0][2],
                "after_warmup": fds_first,
                "end": fds_last,
                "max": max(s[2] for s in self.samples),
                "growth_after_warmup": fds_last - fds_first,
            },
        }


def _nothing() -> None:
    return None


def run_soak(
    *,
    cycles: int,
    backend: str = "sqlite",
    seed: int = 1,
    poll_interval: str = "100ms",
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    summary = Summary()
    cleanup: Callable[[], None] = _nothing
    with EmulatorThread(make_fleet()) as emulator, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if backend == "postgres":
            from tests.registry import postgres_support

            dsn, schema = postgres_support.new_schema()
            spec, registry = f"postgres:{dsn}", {"backend": "postgres", "dsn": dsn}

            def cleanup() -> None:
                postgres_support.drop_schema(schema)

        else:
            spec = f"sqlite:{workdir / 'registry.db'}"
            registry = {"backend": "sqlite", "path": "registry.db"}
        world = World(
            emulator=emulator,
            workdir=workdir,
            registry_spec=spec,
            config=make_config(registry=registry),
        )
        world.config.pop("aws_client")  # the daemon uses its defaults (6 attempts, 30 s)
        world.config.update(poll_interval=poll_interval, poll_jitter="0s")
        world.config["safety"] = {"max_delete_fraction": 1.0}  # the guard has its own tests
        base = make_fleet(0, credential_duration_seconds=CREDENTIAL_SECONDS)
        world.fleet = copy.deepcopy(base)
        world.write_config()
        world.set_fleet(base)
        world.seed()
        fleet = copy.deepcopy(base)
        daemon = Daemon(world, name="soak").start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        started = time.monotonic()
        try:
            daemon.wait_completed(1)
            summary.samples.append((1, *process_sample(pid)))
            while summary.cycles < cycles:
                summary.steps += 1
                mutate(fleet, rng, summary.steps)
                fault = pick_fault(rng)
                summary.faults[fault.name] += 1
                served = (
                    with_trust_changed(fleet, fault.unassumable) if fault.unassumable else fleet
                )
                emulator.set_faults(fault.rules)
                emulator.set_fleet(served)
                world.fleet = copy.deepcopy(fleet)  # the desired state follows the real fleet
                lock = None
                if fault.lock_registry and backend == "sqlite":
                    lock = hold_write_lock(workdir / "registry.db", fault.lock_registry)
                done = daemon.completed()
                daemon.wait_completed(done + 1)
                middle = world.snapshot()
                status = daemon.wait_completed(done + 2)
                after = world.snapshot()
                if lock is not None:
                    lock.join()
                last = status["last_cycle"]
                assert last["result"] in ("ok", "partial"), last
                frozen = frozen_areas(last["scopes"])
                check_cycle(
                    before=middle,
                    after=after,
                    desired=world.desired(),
                    foreign=world.foreign,
                    frozen=frozen,
                    require_pending=False,
                )
                if frozen:
                    summary.failed_scope_cycles += 1
                    assert fault.lasting, (fault, last["scopes"])
                else:
                    check_recovered(after, world.desired(), world.foreign)
                    summary.exact_checks += 1
                summary.cycles = int(status["cycles"]["completed"])
                summary.samples.append((summary.cycles, *process_sample(pid)))
                if summary.steps % 25 == 0:
                    rss, fds = summary.samples[-1][1:]
                    progress(
                        f"step {summary.steps}: {summary.cycles} cycles, "
                        f"rss {rss / 1024:.1f} MiB, {fds} fds"
                    )
            emulator.set_faults([])
        finally:
            summary.seconds = time.monotonic() - started
            code = daemon.stop()
            cleanup()
        assert code == 0, daemon.log()[-3000:]
        assert "Traceback" not in daemon.log(), "the daemon logged a traceback"
    return summary.figures(warmup_cycles=max(1, cycles // 10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poll-interval", default="100ms")
    parser.add_argument("--max-rss-growth-mb", type=float, default=20.0)
    parser.add_argument("--max-fd-growth", type=int, default=4)
    parser.add_argument(
        "--report", type=Path, default=None, help="also write the JSON summary here"
    )
    args = parser.parse_args(argv)
    figures = run_soak(
        cycles=args.cycles,
        backend=args.backend,
        seed=args.seed,
        poll_interval=args.poll_interval,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    figures.update(backend=args.backend, seed=args.seed)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.report is not None:
        args.report.write_text(text + "\n")
    problems = []
    if figures["rss_mib"]["growth_after_warmup"] > args.max_rss_growth_mb:
        problems.append(f"RSS grew {figures['rss_mib']['growth_after_warmup']} MiB")
    if figures["open_fds"]["growth_after_warmup"] > args.max_fd_growth:
        problems.append(
            f"open file descriptors grew by {figures['open_fds']['growth_after_warmup']}"
        )
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
