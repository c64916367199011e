"""`python -m bench --shape org`: the organization fleet, measured, with its targets (issue 14).

Cycles, each in a fresh scanner process against one emulator process: ours, first cycle (empty
registry, a one-shot `scan`); the daemon, steady cycle (two cycles in one process, the second
measured: clients and credentials kept, as `discovery run` keeps them); the threaded-boto3
baseline (bench.threaded). Before each, the emulator's counters are zeroed and its buckets
refilled (EmulatorProcess.reset).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import yaml

from bench.emulator import EmulatorProcess
from bench.org import OrgShape, org_config, org_fleet, org_minimum_calls, org_resources

# Issue 14's targets for the org shape.
SCAN_WALL_S = 60.0
CPU_PER_SCOPE_MS = 2.0
STEADY_WALL_S = 30.0
MAX_RSS_MB = 500.0
MAX_CALL_RATIO = 1.05
MIN_SPEEDUP = 5.0


def run_org(args: argparse.Namespace, work: Path, host: dict[str, Any]) -> dict[str, Any]:
    from bench.run import run_scanner  # the one way a measured cycle is run

    shape = OrgShape(
        accounts=args.accounts or 1000,
        regions=args.regions or 17,
        populated=args.populated,
    )
    explicit = args.shape == "org-explicit"
    fleet_path = work / "fleet.json"
    fleet_path.write_text(json.dumps(org_fleet(shape)))
    for stale in work.glob("registry.db*"):
        stale.unlink()
    aws_client = {"max_concurrency": args.max_concurrency} if args.max_concurrency else {}
    config_path = work / "discovery.yaml"
    config_path.write_text(
        yaml.safe_dump(
            org_config(shape, str(work / "registry.db"), explicit=explicit, **aws_client)
        )
    )
    daemon_config = work / "daemon.yaml"
    daemon_config.write_text(
        yaml.safe_dump(org_config(shape, str(work / "daemon.db"), explicit=explicit, **aws_client))
    )
    burst, rate = (float(x) for x in args.throttle.split(","))
    latency = args.latency_ms if args.latency_ms is not None else 80.0
    print(f"fleet {shape.label()}: {org_resources(shape)} resources, {shape.scopes} scopes")
    cycles: dict[str, dict[str, Any]] = {}
    with EmulatorProcess(
        fleet=fleet_path, latency_ms=latency, throttle=(burst, rate), warm=not args.no_warm
    ) as emulator:
        print(f"emulator ready in {emulator.startup_s:.1f}s at {emulator.url}", flush=True)
        profile = _profiler(args.profile)
        cycles["first"] = run_scanner(emulator, "ours", config_path, profile("org-first"))
        print(f"first cycle (scan): {cycles['first']['wall_s']}s", flush=True)
        cycles["daemon"] = run_scanner(emulator, "daemon", daemon_config, profile("org-daemon"))
        print(f"daemon steady cycle: {cycles['daemon']['steady_wall_s']}s", flush=True)
        if not args.no_peers:
            cycles["boto3"] = run_scanner(emulator, "boto3", config_path, [])
            print(f"threaded boto3 baseline: {cycles['boto3']['wall_s']}s", flush=True)
    host["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return org_report(
        shape=shape, latency_ms=latency, machine=host, cycles=cycles, listings=not explicit
    )


def _profiler(directory: Path | None) -> Any:
    def profile(name: str) -> list[str]:
        if directory is None:
            return []
        directory.mkdir(parents=True, exist_ok=True)
        return ["--profile", str(directory / f"{name}.prof")]

    return profile


def _calls(stats: dict[str, Any]) -> tuple[int, int]:
    by_op = stats.get("by_operation", {})
    throttled = sum(int(c.get("throttled", 0)) for c in by_op.values())
    return int(stats.get("total", 0)), throttled


def org_report(
    *,
    shape: OrgShape,
    latency_ms: float,
    machine: dict[str, Any],
    cycles: dict[str, Any],
    listings: bool = True,
) -> dict[str, Any]:
    """The figures and targets (pure over the measured dicts). With `listings` (the
    organization matcher), the first cycle's minimum includes the Organizations and
    ListRegions listings; the daemon's steady cycle has them (and AssumeRole) from its caches."""
    minimum = org_minimum_calls(shape, listings=listings)
    minimum_total = sum(minimum.values())
    steady_minimum = sum(org_minimum_calls(shape, listings=False).values()) - shape.accounts
    rows: dict[str, dict[str, Any]] = {}
    for name, c in cycles.items():
        total, throttled = _calls(c["emulator"])
        if name == "daemon":
            # The emulator counted both cycles of the daemon process; the second is steady.
            wall, cpu = c["steady_wall_s"], c["steady_cpu_s"]
        else:
            wall, cpu = c["wall_s"], c["cpu_s"]
        rows[name] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_per_scope_ms": round(cpu / shape.scopes * 1000, 3),
            "peak_rss_mb": c["kernel_peak_rss_mb"],
            "emulator_cpu_s": c["emulator_cpu_s"],
            "api_calls": total,
            "throttled": throttled,
            "connections": c["emulator"].get("connections"),
            "resources": c["resources"],
            "failed_scopes": c["failed_scopes"],
            "run_queue_wait_s": c.get("run_queue_wait_s"),
            "gc_s": c.get("gc_s"),  # the whole process (the daemon's: both cycles)
            "gc_collections": c.get("gc_collections"),
            "by_operation": {
                op: sum(v.values()) for op, v in c["emulator"].get("by_operation", {}).items()
            },
        }
    first = rows["first"]
    for row in rows.values():
        row["api_calls_per_cycle"] = row["api_calls"]
    daemon = rows.get("daemon")
    if daemon is not None:
        # The daemon process ran two cycles and the emulator counted both; its first cycle
        # makes the same calls as the one-shot scan, so the steady cycle made the rest.
        daemon["api_calls_per_cycle"] = daemon["api_calls"] - first["api_calls"]
    baseline = rows.get("boto3")
    targets = [
        _target("scan wall (s)", first["wall_s"], SCAN_WALL_S),
        _target("scan CPU per scope (ms)", first["cpu_per_scope_ms"], CPU_PER_SCOPE_MS),
        _target("scan peak RSS (MB)", first["peak_rss_mb"], MAX_RSS_MB),
        _target("scan calls / minimum", first["api_calls"] / minimum_total, MAX_CALL_RATIO),
        _target("scan throttled calls", first["throttled"], 0),
    ]
    if daemon is not None:
        # Two cycles' calls were counted: per cycle, half (both cycles make the same calls).
        targets += [
            _target("daemon steady wall (s)", daemon["wall_s"], STEADY_WALL_S),
            _target("daemon peak RSS (MB)", daemon["peak_rss_mb"], MAX_RSS_MB),
            _target("daemon throttled calls", daemon["throttled"], 0),
            _target(
                "daemon steady calls / minimum",
                daemon["api_calls_per_cycle"] / steady_minimum,
                MAX_CALL_RATIO,
            ),
        ]
    if baseline is not None:
        targets.append(
            _target(
                "speed-up vs threaded boto3 (x)",
                baseline["wall_s"] / first["wall_s"],
                MIN_SPEEDUP,
                at_most=False,
            )
        )
    return {
        "shape": {
            "label": shape.label(),
            "accounts": shape.accounts,
            "regions": shape.regions,
            "scopes": shape.scopes,
            "populated_scopes": len(shape.layout()),
            "resources": org_resources(shape),
            "latency_ms": latency_ms,
        },
        "machine": machine,
        "minimum_calls": {**minimum, "total": minimum_total, "steady_total": steady_minimum},
        "listings": listings,
        "rows": rows,
        "targets": targets,
        "complete": all(r["failed_scopes"] == 0 for r in rows.values()),
    }


def _target(name: str, value: float, limit: float, *, at_most: bool = True) -> dict[str, Any]:
    met = value <= limit if at_most else value >= limit
    return {"target": name, "value": round(value, 3), "limit": limit, "met": met}


def render_org(report: dict[str, Any]) -> str:
    rows = report["rows"]
    names = list(rows)
    fields = [
        ("wall (s)", "wall_s"),
        ("scanner CPU (s)", "cpu_s"),
        ("CPU per scope (ms)", "cpu_per_scope_ms"),
        ("peak RSS (MB)", "peak_rss_mb"),
        ("emulator CPU (s)", "emulator_cpu_s"),
        ("API calls per cycle", "api_calls_per_cycle"),
        ("throttled", "throttled"),
        ("connections opened", "connections"),
        ("resources", "resources"),
        ("failed scopes", "failed_scopes"),
        ("waiting for a CPU (s)", "run_queue_wait_s"),
        ("in the garbage collector (s)", "gc_s"),
        ("collections (young, middle, full)", "gc_collections"),
    ]
    out = [
        f"## {report['shape']['label']}: {report['shape']['scopes']} scopes, "
        f"{report['shape']['resources']} resources, {report['shape']['latency_ms']:g} ms",
        "",
        f"load average before {report['machine'].get('load_before')}, "
        f"after {report['machine'].get('load_after')}; minimum calls per cycle "
        f"{report['minimum_calls']['total']}",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for label, key in fields:
        out.append(f"| {label} | " + " | ".join(str(rows[n].get(key)) for n in names) + " |")
    out += ["", "| target | value | limit | met |", "| --- | ---: | ---: | --- |"]
    for t in report["targets"]:
        out.append(
            f"| {t['target']} | {t['value']} | {t['limit']} | {'yes' if t['met'] else 'NO'} |"
        )
    return "\n".join(out) + "\n"
