"""The daemon's one HTTP server: `/metrics`, `/healthz`, `/readyz`, `/status`.

It runs on the daemon's event loop (aiohttp), so a scrape never races a cycle's bookkeeping,
and a wedged loop shows up as a failing `/healthz`. What each endpoint answers is decided by
the daemon behind the narrow `Probe` seam; this module only speaks HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from discovery.output.metrics import Metrics

# An in-flight scrape gets this long to finish when the daemon stops; keep-alive connections
# are closed at once. Well inside the 5 s a SIGTERM may take.
SHUTDOWN_TIMEOUT_S = 1.0

INDEX = """rdsproxy discovery daemon
/metrics  Prometheus metrics
/healthz  200 while the process, its scheduler and its leader election are alive
/readyz   200 after the first completed cycle (a follower: once its election and the registry
          answer), 503 while the registry or the leader election's database is unreachable
/status   the role (leader or follower) and the last cycle as JSON
"""


class Probe(Protocol):
    def live(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...

    def status(self) -> dict[str, Any]: ...


def build_app(probe: Probe, metrics: Metrics) -> web.Application:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=INDEX)

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        ok, why = probe.live()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def readyz(request: web.Request) -> web.Response:
        ok, why = probe.ready()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def status(request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(probe.status(), indent=2) + "\n", content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    return app


@dataclass(frozen=True)
class Server:
    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(app: web.Application, host: str, port: int) -> Server:
    """Listen on host:port (host "" = every interface, port 0 = any free port).

    Raises OSError when the address cannot be bound.
    """
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host or None, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    return Server(runner=runner, url=f"http://{shown}:{bound_port}")
