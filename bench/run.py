"""`python -m bench`: build the fleet, start the emulator, measure the cycles, report.

Order of a run: ours, first cycle (empty registry → everything created); ours, steady-state
cycle (nothing changed); the peers' pattern (fetch only). Each cycle runs in a fresh scanner
process against the same emulator process; before each, the emulator's counters are zeroed and
its token buckets refilled (see EmulatorProcess.reset).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.emulator import EmulatorProcess
from bench.report import build_report, render_markdown
from bench.shape import (
    Shape,
    build_fleet,
    critical_path_calls,
    minimum_calls,
    peers_bound_calls,
    scanner_config,
    throttle_bound_s,
)

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark a full discovery cycle against the emulated fleet, side by side "
        "with the peers' call pattern (defaults: the issue's medium fleet, 20,000 resources).",
    )
    p.add_argument(
        "--shape",
        choices=["medium", "org", "org-explicit"],
        default="medium",
        help="medium: the default fleet below; org: 1,000 accounts x 17 regions, 5%% populated, "
        "behind an Organizations listing (one organization matcher, regions [*]); "
        "org-explicit: the same fleet with one assume_role_arn matcher per account",
    )
    p.add_argument("--accounts", type=int, help="default 10 (org: 1000)")
    p.add_argument("--regions", type=int, help="default 10 (org: 17)")
    p.add_argument("--populated", type=float, default=0.05, help="org: scopes holding proxies")
    p.add_argument("--proxies", type=int, default=100, help="proxies per account and region")
    p.add_argument("--endpoints", type=int, default=1, help="custom endpoints per proxy")
    p.add_argument("--latency-ms", type=float, help="added to every call (default 25; org: 80)")
    p.add_argument(
        "--throttle",
        default="300,12",
        metavar="BURST,RATE",
        help="token bucket per service, account and region (default AWS-like 300,12)",
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        metavar="N",
        help="aws_client.max_concurrency for our scanner (default: the product's default)",
    )
    p.add_argument(
        "--tags-fallback",
        action="store_true",
        help="deny tag:GetResources, so tags come from one ListTagsForResource per proxy",
    )
    p.add_argument("--no-peers", action="store_true", help="skip the peers' baseline")
    p.add_argument("--peers-concurrency", type=int, default=5)
    p.add_argument("--no-warm", action="store_true", help="let the emulator serialize lazily")
    p.add_argument("--profile", type=Path, metavar="DIR", help="cProfile each of our cycles")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report here")
    p.add_argument("--workdir", type=Path, help="keep fleet, config and registry here")
    return p


def _child_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
    )
    return env


def run_scanner(
    emulator: EmulatorProcess, mode: str, config: Path, extra: list[str]
) -> dict[str, Any]:
    """One cycle in a fresh process; its own report plus the emulator's view of it."""
    emulator.reset()
    emulator_cpu0 = emulator.cpu_seconds()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.scanner", mode, "--config", str(config), *extra],
        stdout=subprocess.PIPE,
        env=_child_env(emulator.url),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    # wait4: the child's own rusage (CPU, peak RSS) as the kernel counted it.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    process_wall = time.perf_counter() - started
    proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"the {mode} scanner failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out)
    result["process_wall_s"] = round(process_wall, 3)
    result["kernel_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
    result["kernel_peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["emulator_cpu_s"] = round(emulator.cpu_seconds() - emulator_cpu0, 3)
    result["emulator"] = emulator.stats()
    return result


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.shape in ("org", "org-explicit"):
        return _org_main(args)
    args.accounts = args.accounts or 10
    args.regions = args.regions or 10
    args.latency_ms = 25.0 if args.latency_ms is None else args.latency_ms
    burst, rate = (float(x) for x in args.throttle.split(","))
    shape = Shape(
        accounts=args.accounts, regions=args.regions, proxies=args.proxies, endpoints=args.endpoints
    )
    host = machine()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        fleet_path = work / "fleet.json"
        fleet_path.write_text(build_fleet(shape).model_dump_json(exclude_defaults=True))
        registry = work / "registry.db"
        for stale in work.glob("registry.db*"):
            stale.unlink()
        config_path = work / "discovery.yaml"
        config = scanner_config(shape, str(registry), max_concurrency=args.max_concurrency)
        config_path.write_text(yaml.safe_dump(config))
        print(
            f"fleet {shape.label()}: {shape.resources} resources, {shape.scopes} scopes", flush=True
        )

        def profile(name: str) -> list[str]:
            if args.profile is None:
                return []
            args.profile.mkdir(parents=True, exist_ok=True)
            return ["--profile", str(args.profile / f"{name}.prof")]

        faults_path = None
        if args.tags_fallback:
            faults_path = work / "faults.json"
            faults_path.write_text(
                json.dumps([{"operation": "GetResources", "code": "AccessDeniedException"}])
            )
        with EmulatorProcess(
            fleet=fleet_path,
            latency_ms=args.latency_ms,
            throttle=(burst, rate),
            warm=not args.no_warm,
            faults=faults_path,
        ) as emulator:
            print(f"emulator ready in {emulator.startup_s:.1f}s at {emulator.url}", flush=True)
            cycles: dict[str, dict[str, Any]] = {}
            cycles["first"] = run_scanner(emulator, "ours", config_path, profile("first"))
            print(f"first cycle: {cycles['first']['wall_s']}s", flush=True)
            cycles["steady"] = run_scanner(emulator, "ours", config_path, profile("steady"))
            print(f"steady cycle: {cycles['steady']['wall_s']}s", flush=True)
            if not args.no_peers:
                cycles["peers"] = run_scanner(
                    emulator,
                    "peers",
                    config_path,
                    ["--peers-concurrency", str(args.peers_concurrency)],
                )
                print(f"peers' pattern: {cycles['peers']['wall_s']}s", flush=True)
    host["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report = build_report(
        shape=shape,
        latency_ms=args.latency_ms,
        throttle=(burst, rate),
        machine=host,
        emulator_startup_s=emulator.startup_s,
        cycles=cycles,
        minimum=minimum_calls(shape, tags_fallback=args.tags_fallback),
        critical_path_calls=critical_path_calls(shape, tags_fallback=args.tags_fallback),
        throttle_bound_s=throttle_bound_s(
            shape, burst=burst, rate=rate, tags_fallback=args.tags_fallback
        ),
        tags_fallback=args.tags_fallback,
        peers_bound_calls=peers_bound_calls(shape, args.peers_concurrency),
        max_concurrency=args.max_concurrency,
        command=" ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(render_markdown(report))
    return 0 if report["complete"] else 1


def _org_main(args: argparse.Namespace) -> int:
    from bench.org_run import render_org, run_org

    host = machine()
    with tempfile.TemporaryDirectory(prefix="bench-org-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = run_org(args, work, host)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(render_org(report))
    return 0 if report["complete"] else 1
