"""The emulator's HTTP control API under ``/_emulator/``: fleet, faults, settings, stats, warm.

Tests and benchmarks in another process (``discovery emulator``) change the emulator through
it between requests; :class:`.thread.EmulatorThread` offers the same changes as Python calls.
A body that does not validate is answered 400 with ``{"ok": false, "error": ...}`` and changes
nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .dispatch import EMULATOR_KEY
from .fleet import FleetError, parse_fleet

__all__ = ["add_control_routes"]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _bad(message: str) -> web.Response:
    return _json({"ok": False, "error": message}, status=400)


async def _health(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def _put_fleet(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    try:
        fleet = parse_fleet(await request.read())
    except FleetError as e:
        return _bad(str(e))
    emu.set_fleet(fleet)
    return _json({"ok": True, "accounts": len(fleet.accounts), "proxies": fleet.proxy_count})


async def _get_fleet(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].fleet.model_dump(mode="json", exclude_defaults=True))


async def _put_faults(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    try:
        emu.set_faults(await request.read())
    except FleetError as e:
        return _bad(str(e))
    return _json({"ok": True, "faults": emu.faults.describe()})


async def _get_faults(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].faults.describe())


async def _put_settings(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        return _bad("invalid settings: body must be a JSON object")
    if not isinstance(data, dict):
        return _bad("invalid settings: body must be a JSON object")
    try:
        emu.update_settings(data)
    except FleetError as e:
        return _bad(str(e))
    return _json({"ok": True, **emu.settings()})


async def _get_settings(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].settings())


async def _get_stats(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].stats.snapshot())


async def _reset_stats(request: web.Request) -> web.Response:
    request.app[EMULATOR_KEY].stats.reset()
    return _json({"ok": True})


async def _warm(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR_KEY]
    size = request.query.get("page_size", "100")
    if not size.isdigit() or not 20 <= int(size) <= 100:
        return _bad("page_size must be between 20 and 100")
    t0 = time.perf_counter()
    pages = emu.warm(int(size))
    return _json({"ok": True, "pages": pages, "seconds": round(time.perf_counter() - t0, 3)})


def add_control_routes(router: web.UrlDispatcher) -> None:
    """Add the control routes; they must come before the AWS catch-all routes."""
    router.add_get("/_emulator/health", _health)
    router.add_get("/_emulator/fleet", _get_fleet)
    router.add_put("/_emulator/fleet", _put_fleet)
    router.add_get("/_emulator/faults", _get_faults)
    router.add_put("/_emulator/faults", _put_faults)
    router.add_get("/_emulator/settings", _get_settings)
    router.add_put("/_emulator/settings", _put_settings)
    router.add_get("/_emulator/stats", _get_stats)
    router.add_post("/_emulator/stats/reset", _reset_stats)
    router.add_post("/_emulator/warm", _warm)
