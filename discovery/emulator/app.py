"""The emulator as an aiohttp application: the control API plus every other path as AWS.

botocore sends all three services to the one ``AWS_ENDPOINT_URL``; the dispatcher tells them
apart by the request itself (:meth:`.dispatch.Emulator.handle`), so the AWS routes are catch-alls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .control import add_control_routes
from .dispatch import EMULATOR_KEY, Emulator, FaultsArg, ThrottleArg
from .fleet import Fleet, parse_fleet

__all__ = ["build_app"]


async def _aws(request: web.Request) -> web.StreamResponse:
    return await request.app[EMULATOR_KEY].handle(request)


def build_app(
    fleet: Fleet | Mapping[str, Any] | str | bytes,
    *,
    faults: FaultsArg = (),
    latency_ms: float = 0,
    throttle: ThrottleArg = None,
) -> web.Application:
    """The emulator as an aiohttp application (raises EmulatorUnavailable without moto)."""
    emu = Emulator(parse_fleet(fleet), faults=faults, latency_ms=latency_ms, throttle=throttle)
    app = web.Application(client_max_size=1024**3)
    app[EMULATOR_KEY] = emu
    add_control_routes(app.router)
    app.router.add_route("POST", "/{tail:.*}", _aws)
    app.router.add_route("GET", "/{tail:.*}", _aws)
    return app
