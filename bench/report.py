"""The benchmark report: figures per cycle, ratios against the references, targets met or not.

Pure functions over the measured figures (plain dicts), so the smoke test can check the report's
structure without timing anything.
"""

from __future__ import annotations

from typing import Any

from bench.shape import Shape

# Issue 5's targets, set for the medium fleet (10 x 10 x 100 x 1 = 20,000 resources).
MEDIUM = Shape(accounts=10, regions=10, proxies=100, endpoints=1)
FIRST_WALL_S = 20.0
STEADY_WALL_S = 10.0
MIN_SPEEDUP = 10.0
CRITICAL_PATH_FACTOR = 2.0
MAX_CALL_RATIO = 1.05
MAX_RSS_MB = 400.0
OURS = ("first", "steady")


def _calls(stats: dict[str, Any]) -> tuple[dict[str, int], int, int]:
    """(answered calls by operation, all requests incl. throttled/errors, throttled)."""
    by_op = stats.get("by_operation", {})
    ok = {op: int(c.get("ok", 0)) for op, c in by_op.items()}
    throttled = sum(int(c.get("throttled", 0)) for c in by_op.values())
    return ok, int(stats.get("total", 0)), throttled


def _target(
    name: str, value: float, limit: float, *, at_most: bool = True, unit: str = ""
) -> dict[str, Any]:
    met = value <= limit if at_most else value >= limit
    if met:
        miss = ""
    elif at_most:
        miss = (
            f"over by {value - limit:.3g}{unit} ({value / limit:.2f}x the target)"
            if limit
            else f"{value:g}{unit} instead of 0"
        )
    else:
        miss = f"short by {limit - value:.3g}{unit}"
    return {
        "target": name,
        "value": round(value, 3),
        "limit": limit,
        "comparison": "<=" if at_most else ">=",
        "met": met,
        "miss": miss,
    }


def build_report(
    *,
    shape: Shape,
    latency_ms: float,
    throttle: tuple[float, float],
    machine: dict[str, Any],
    emulator_startup_s: float,
    cycles: dict[str, dict[str, Any]],
    minimum: dict[str, int],
    critical_path_calls: int,
    peers_bound_calls: int,
    command: str,
    max_concurrency: int | None = None,
    throttle_bound_s: float = 0.0,
    tags_fallback: bool = False,
) -> dict[str, Any]:
    minimum_total = sum(minimum.values())
    # The critical path: the slowest scope's chain of dependent calls, or what the token
    # buckets allow if that is longer.
    critical_path_s = max(critical_path_calls * latency_ms / 1000, throttle_bound_s)
    peers_bound_s = peers_bound_calls * latency_ms / 1000
    peers = cycles.get("peers")
    figures: dict[str, dict[str, Any]] = {}
    for name, cycle in cycles.items():
        ok, requests, throttled = _calls(cycle["emulator"])
        figures[name] = {
            "wall_s": cycle["wall_s"],
            "process_wall_s": cycle["process_wall_s"],
            "cpu_s": cycle["cpu_s"],
            "loop_cpu_s": cycle.get("loop_cpu_s"),
            "run_queue_wait_s": cycle.get("run_queue_wait_s"),
            "process_cpu_s": cycle["kernel_cpu_s"],
            "peak_rss_mb": cycle["kernel_peak_rss_mb"],
            "emulator_cpu_s": cycle["emulator_cpu_s"],
            "resources": cycle["resources"],
            "failed_scopes": cycle["failed_scopes"],
            "calls_by_operation": dict(sorted(ok.items())),
            "requests": requests,
            "throttled": throttled,
            "registry_writes": cycle.get("registry_writes"),
            "plan": cycle.get("plan"),
            "registry_list_s": cycle.get("registry_list_s"),
            "registry_apply_s": cycle.get("registry_apply_s"),
            "registry_s": (
                f"{cycle['registry_list_s']:g} / {cycle['registry_apply_s']:g}"
                if "registry_list_s" in cycle
                else None
            ),
            "cpu_us_per_resource": round(1e6 * cycle["cpu_s"] / max(1, cycle["resources"]), 1),
            "calls_per_resource": round(requests / max(1, cycle["resources"]), 4),
        }
    targets: list[dict[str, Any]] = []
    for name in OURS:
        if name not in figures:
            continue
        f = figures[name]
        bound = CRITICAL_PATH_FACTOR * critical_path_s + f["cpu_s"]
        f["call_ratio"] = round(f["requests"] / minimum_total, 4)
        f["critical_path_ratio"] = (
            round(f["wall_s"] / critical_path_s, 2) if critical_path_s else None
        )
        f["bound_s"] = round(bound, 3)
        f["speedup_vs_peers_bound"] = round(peers_bound_s / f["wall_s"], 1)
        if peers is not None:
            f["speedup_vs_peers"] = round(figures["peers"]["wall_s"] / f["wall_s"], 1)
        limit = FIRST_WALL_S if name == "first" else STEADY_WALL_S
        targets.append(_target(f"{name}: wall time (s)", f["wall_s"], limit, unit=" s"))
        if peers is not None:
            targets.append(
                _target(
                    f"{name}: speed-up vs peers (x)",
                    f["speedup_vs_peers"],
                    MIN_SPEEDUP,
                    at_most=False,
                )
            )
        targets.append(
            _target(
                f"{name}: wall vs 2 x critical path + CPU floor (s)",
                f["wall_s"],
                round(bound, 3),
                unit=" s",
            )
        )
        if f["run_queue_wait_s"] is not None:
            # The same, less the time the event loop was runnable but other processes had the
            # CPUs: what the scanner would take on an otherwise idle machine.
            f["wall_net_of_load_s"] = round(f["wall_s"] - f["run_queue_wait_s"], 3)
            targets.append(
                _target(
                    f"{name}: same, net of waiting for a CPU (s)",
                    f["wall_net_of_load_s"],
                    round(bound, 3),
                    unit=" s",
                )
            )
        targets.append(_target(f"{name}: API calls / minimum", f["call_ratio"], MAX_CALL_RATIO))
        targets.append(_target(f"{name}: peak RSS (MB)", f["peak_rss_mb"], MAX_RSS_MB, unit=" MB"))
        if name == "steady":
            targets.append(_target("steady: registry writes", f["registry_writes"] or 0, 0))
            targets.append(_target("steady: throttled calls", f["throttled"], 0))
    complete = all(figures[n]["failed_scopes"] == 0 for n in figures) and all(
        figures[n]["resources"] == shape.resources for n in OURS if n in figures
    )
    return {
        "command": command,
        "machine": machine,
        "fleet": {
            "shape": shape.label(),
            "accounts": shape.accounts,
            "regions": shape.regions,
            "proxies_per_region": shape.proxies,
            "endpoints_per_proxy": shape.endpoints,
            "scopes": shape.scopes,
            "resources": shape.resources,
        },
        "emulator": {
            "latency_ms": latency_ms,
            "throttle": {"burst": throttle[0], "rate": throttle[1]},
            "startup_s": round(emulator_startup_s, 2),
        },
        "minimum_calls": {"by_operation": minimum, "total": minimum_total},
        "critical_path": {
            "calls": critical_path_calls,
            "throttle_bound_s": round(throttle_bound_s, 3),
            "seconds": critical_path_s,
        },
        "tags_fallback": tags_fallback,
        "peers_bound": {"calls": peers_bound_calls, "seconds": peers_bound_s},
        "max_concurrency": max_concurrency,
        "cycles": figures,
        "targets": targets,
        "targets_apply": shape == MEDIUM,
        "complete": complete,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    cycles = report["cycles"]
    names = [n for n in ("first", "steady", "peers") if n in cycles]
    headings = {
        "first": "ours: first cycle",
        "steady": "ours: steady state",
        "peers": "peers' pattern (fetch only)",
    }
    rows: list[tuple[str, str]] = [
        ("wall time (s)", "wall_s"),
        ("scanner CPU (s, the cycle)", "cpu_s"),
        ("scanner CPU (s, the cycle's event-loop thread)", "loop_cpu_s"),
        ("event loop waiting for a CPU (s, others' load)", "run_queue_wait_s"),
        ("scanner CPU (s, whole process)", "process_cpu_s"),
        ("scanner peak RSS (MB)", "peak_rss_mb"),
        ("emulator CPU (s)", "emulator_cpu_s"),
        ("resources", "resources"),
        ("API requests (all)", "requests"),
        ("throttled requests", "throttled"),
        ("registry writes (rows)", "registry_writes"),
        ("registry read / apply (s)", "registry_s"),
        ("CPU per resource (µs)", "cpu_us_per_resource"),
        ("API requests / minimum", "call_ratio"),
        ("wall / critical path", "critical_path_ratio"),
        ("2 x critical path + CPU floor (s)", "bound_s"),
        ("wall net of waiting for a CPU (s)", "wall_net_of_load_s"),
        ("speed-up vs peers (x)", "speedup_vs_peers"),
        ("speed-up vs the peers' zero-overhead bound (x)", "speedup_vs_peers_bound"),
    ]
    fleet, m, emu = report["fleet"], report["machine"], report["emulator"]
    minimum, path = report["minimum_calls"], report["critical_path"]
    out = [
        f"fleet {fleet['shape']} (accounts x regions x proxies x custom endpoints): "
        f"{fleet['resources']} resources in {fleet['scopes']} scopes; latency "
        f"{emu['latency_ms']:g} ms, throttle {emu['throttle']['burst']:g} burst "
        f"+ {emu['throttle']['rate']:g}/s",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"load {m['load_before']} before / {m['load_after']} after",
        f"minimum calls {minimum['total']} {minimum['by_operation']}; "
        f"critical path {path['calls']} calls (token buckets: >= {path['throttle_bound_s']:g} s) "
        f"= {path['seconds']:g} s; peers' zero-overhead "
        f"bound {report['peers_bound']['calls']} calls = {report['peers_bound']['seconds']:g} s; "
        f"aws_client.max_concurrency {report['max_concurrency'] or 'default'}"
        + (
            "; tag:GetResources denied (ListTagsForResource per proxy)"
            if report["tags_fallback"]
            else ""
        ),
        "",
        "| | " + " | ".join(headings[n] for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for label, key in rows:
        out.append(f"| {label} | " + " | ".join(_cell(cycles[n].get(key)) for n in names) + " |")
    ops = sorted({op for n in names for op in cycles[n]["calls_by_operation"]})
    for op in ops:
        out.append(
            f"| calls: {op} | "
            + " | ".join(_cell(cycles[n]["calls_by_operation"].get(op, 0)) for n in names)
            + " |"
        )
    out.append("")
    if not report["targets_apply"]:
        out.append(
            f"(the targets are set for the medium fleet {MEDIUM.label()}; "
            "for this fleet they are shown for reference only)"
        )
    out += ["| target | value | limit | met |", "| --- | ---: | ---: | --- |"]
    for t in report["targets"]:
        verdict = "yes" if t["met"] else f"**no**: {t['miss']}"
        out.append(
            f"| {t['target']} | {t['value']:g} | {t['comparison']} {t['limit']:g} | {verdict} |"
        )
    if not report["complete"]:
        out.append(
            "\n**incomplete**: a cycle failed scopes or missed resources; the figures do not count"
        )
    return "\n".join(out) + "\n"
