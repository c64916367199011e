"""``discovery emulator``: serve the AWS emulator from a fleet file until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from .fleet import Fault, Fleet, FleetError, Throttle, load_fleet, parse_faults, parse_throttle
from .thread import serve
from .wire import EmulatorUnavailable, require_moto

__all__ = ["DEMO_FLEET", "main"]

DEMO_FLEET = Path(__file__).resolve().parent.parent / "demo" / "fleet.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="discovery emulator",
        description=(
            "Serve an AWS emulator (STS, RDS Proxy, Resource Groups Tagging API) for tests, "
            "demos and benchmarks. Point clients at it with AWS_ENDPOINT_URL."
        ),
    )
    p.add_argument(
        "--fleet",
        metavar="FILE",
        help=f"fleet file (YAML or JSON); default: the demo fleet ({DEMO_FLEET.name})",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=4566, help="listen port, 0 for a free one (default 4566)"
    )
    p.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="N", help="latency added to every call"
    )
    p.add_argument(
        "--throttle",
        metavar="BURST,RATE",
        help="token bucket per service, account and region, e.g. 300,12 (AWS-like)",
    )
    p.add_argument("--faults", metavar="FILE", help="fault list (YAML or JSON)")
    p.add_argument(
        "--warm",
        action="store_true",
        help="serialize every listing page (100 per page) before listening, so that even the "
        "first discovery cycle is answered from the cache (for benchmarks)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed by argparse
        return int(e.code) if isinstance(e.code, int) else 2
    if args.latency_ms < 0 or not 0 <= args.port <= 65535:
        print("error: --latency-ms must be >= 0 and --port in 0..65535", file=sys.stderr)
        return 2
    try:
        require_moto()
        fleet: Fleet = load_fleet(args.fleet or DEMO_FLEET)
        faults: list[Fault] = []
        if args.faults:
            try:
                text = Path(args.faults).read_text(encoding="utf-8")
            except OSError as e:
                raise FleetError(f"cannot read faults file {args.faults}: {e}") from e
            faults = parse_faults(text)
        throttle: Throttle | None = parse_throttle(args.throttle) if args.throttle else None
    except EmulatorUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except FleetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(fleet, args.host, args.port, faults, args.latency_ms, throttle, args.warm))
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _run(
    fleet: Fleet,
    host: str,
    port: int,
    faults: list[Fault],
    latency_ms: float,
    throttle: Throttle | None,
    warm: bool = False,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # non-main thread/Windows
            loop.add_signal_handler(sig, stop.set)

    def ready(url: str) -> None:
        print(f"emulator listening on {url}", flush=True)

    await serve(
        fleet,
        host=host,
        port=port,
        faults=faults,
        latency_ms=latency_ms,
        throttle=throttle,
        ready=ready,
        stop=stop,
        warm=warm,
    )
