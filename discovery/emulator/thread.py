"""Running the emulator: :func:`serve` on the caller's event loop (``discovery emulator``), or
:class:`EmulatorThread` in a background thread with its own loop (tests, the demo).

The thread's control methods run on the emulator's loop, so a test can change the fleet,
faults or settings while clients are talking to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from aiohttp import web

from .app import build_app
from .dispatch import EMULATOR_KEY, Emulator, FaultsArg, ThrottleArg
from .fleet import Fleet, parse_faults, parse_fleet, parse_throttle

__all__ = ["EmulatorThread", "serve"]


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            bound = int(addr[1])
            break
    return runner, bound


def _format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    fleet: Fleet | Mapping[str, Any] | str | bytes,
    *,
    host: str = "127.0.0.1",
    port: int = 4566,
    faults: FaultsArg = (),
    latency_ms: float = 0,
    throttle: ThrottleArg = None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    warm: bool = False,
) -> None:
    """Serve until ``stop`` is set or the task is cancelled; ``ready(url)`` once listening.

    ``warm`` pre-serializes every listing page before listening (see ``Emulator.warm``).
    """
    app = build_app(fleet, faults=faults, latency_ms=latency_ms, throttle=throttle)
    if warm:
        app[EMULATOR_KEY].warm()
    runner, bound = await _start(app, host, port)
    try:
        if ready is not None:
            ready(_format_url(host, bound))
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        await runner.cleanup()


class EmulatorThread:
    """Runs the emulator on 127.0.0.1 (a free port) in a background thread with its own loop.

    Use as a context manager; ``url`` is the endpoint for ``AWS_ENDPOINT_URL``.
    """

    def __init__(
        self,
        fleet: Fleet | Mapping[str, Any] | str | bytes | None = None,
        *,
        faults: FaultsArg = (),
        latency_ms: float = 0,
        throttle: ThrottleArg = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._app = build_app(
            fleet if fleet is not None else Fleet(),
            faults=faults,
            latency_ms=latency_ms,
            throttle=throttle,
        )
        self.emulator: Emulator = self._app[EMULATOR_KEY]
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> EmulatorThread:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._thread = threading.Thread(target=self._run, name="aws-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the emulator did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"the emulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            runner, bound = await _start(self._app, self._host, self._port)
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self.port = bound
        self.url = _format_url(self._host, bound)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (thread-safe: runs on the emulator's loop) ---------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        loop = self._loop
        if loop is None or self._thread is None:
            return fn()

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=60)

    def set_fleet(self, fleet: Fleet | Mapping[str, Any] | str | bytes) -> None:
        parsed = parse_fleet(fleet)  # validate in the caller's thread
        self._call(lambda: self.emulator.set_fleet(parsed))

    def set_faults(self, faults: FaultsArg) -> None:
        parsed = parse_faults(faults)
        self._call(lambda: self.emulator.set_faults(parsed))

    def set_settings(self, **settings: Any) -> None:
        """``latency_ms=...`` and/or ``throttle={"burst", "rate"} | (burst, rate) | None``."""
        if "throttle" in settings:
            t = parse_throttle(settings["throttle"])
            settings["throttle"] = t.model_dump() if t is not None else None
        self._call(lambda: self.emulator.update_settings(settings))

    def settings(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call(self.emulator.settings))

    def stats(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call(self.emulator.stats.snapshot))

    def reset_stats(self) -> None:
        self._call(self.emulator.stats.reset)

    def warm(self, page_size: int = 100) -> int:
        """Pre-serialize all listing pages (see ``Emulator.warm``); returns the count."""
        return cast(int, self._call(lambda: self.emulator.warm(page_size)))

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """Environment for a client process pointed at this emulator with dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
