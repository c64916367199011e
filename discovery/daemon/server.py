"""The daemon's one HTTP server: `/` (the status page), `/metrics`, `/healthz`, `/readyz`,
`/status`.

It runs on the daemon's event loop (aiohttp), so a scrape never races a cycle's bookkeeping,
and a wedged loop shows up as a failing `/healthz`. What each endpoint answers is decided by
the daemon behind the narrow `Probe` seam; this module only speaks HTTP.

The loop is shared with the cycles, so the server bounds what clients can take from it (the
k8s liveness probe must get its `/healthz` within 5 s whatever else is asked):
- at most `server.max_connections` open connections: a new one closes the oldest (once its
  request in flight, if any, is answered), so idle clients cannot use up the process's file
  descriptors, and a new connection (the liveness probe's) is always served;
- at most that many requests in flight: one more is answered 503 at once, except `/healthz`;
- `/status` is text the daemon serialized once per cycle (`Probe.status_text`), not rebuilt
  per request, and `/` a page rendered from the same cached part (`Probe.status_page`);
- big bodies (`/status` and `/`, hundreds of KB) are written by at most `BIG_WRITERS` requests at a
  time, in `WRITE_CHUNK` pieces with a turn of the loop after each: one loop iteration never
  copies more than a few chunks into sockets, so a `/healthz` that arrives meanwhile waits for
  a few chunks, not for hundreds of whole documents (the measured cause of a slow `/healthz`:
  500 concurrent reads of 158 KB spent their time in `socket.send`, 64 of them per iteration);
  a reader that stops reading is cut off after `BIG_WRITE_TIMEOUT_S`, so it holds no slot;
- running out of file descriptors when accepting is logged once, as what it is, not once per
  attempt (asyncio retries every second).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from discovery.daemon.fds import EMFILE_HINT, EXHAUSTED
from discovery.output.metrics import Metrics

# An in-flight scrape gets this long to finish when the daemon stops; keep-alive connections
# are closed at once. Well inside the 5 s a SIGTERM may take.
SHUTDOWN_TIMEOUT_S = 1.0
# An idle keep-alive connection (or one that never sends a request) is closed after this long.
KEEPALIVE_TIMEOUT_S = 15.0
# A connection closed by the connection cap may finish the request in flight for this long.
EVICT_GRACE_S = 1.0
# Connections waiting in the kernel to be accepted.
LISTEN_BACKLOG = 128
EXEMPT_PATHS = frozenset({"/healthz"})  # never refused: the liveness probe
# Bodies larger than this are written in chunks by at most BIG_WRITERS requests at a time.
WRITE_CHUNK = 32 * 1024
BIG_WRITERS = 4
BIG_WRITE_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


class Probe(Protocol):
    def live(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...

    def status_text(self) -> str: ...

    def status_page(self) -> bytes: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_cap(limit: int) -> Any:
    """A middleware that answers 503 at once beyond `limit` requests in flight (not /healthz)."""
    in_flight = 0

    @web.middleware
    async def cap(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if in_flight >= limit and request.path not in EXEMPT_PATHS:
            response = web.Response(
                status=503,
                text=f"busy: {limit} requests in flight (server.max_connections); retry\n",
                headers={"Retry-After": "1"},
            )
            response.force_close()
            return response
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return cap


class BigWrites:
    """Writes a large body a chunk per turn of the loop, `writers` requests at a time."""

    def __init__(self, writers: int = BIG_WRITERS, *, timeout: float = BIG_WRITE_TIMEOUT_S) -> None:
        self._slots = asyncio.Semaphore(writers)
        self._timeout = timeout

    async def respond(
        self, request: web.Request, body: Callable[[], bytes], content_type: str
    ) -> web.StreamResponse:
        """Answer `request` with `body()` (built once a slot is free)."""
        async with self._slots:
            data = body()
            response = web.StreamResponse(headers={"Content-Type": content_type})
            response.content_length = len(data)
            try:
                async with asyncio.timeout(self._timeout):
                    await response.prepare(request)
                    view = memoryview(data if request.method != "HEAD" else b"")
                    for start in range(0, len(view), WRITE_CHUNK):
                        await response.write(view[start : start + WRITE_CHUNK])
                        await asyncio.sleep(0)  # let a /healthz in between two chunks
                    await response.write_eof()
            except TimeoutError:
                if request.transport is not None:
                    request.transport.abort()  # a reader that stopped reading: cut off
            except ConnectionError:
                pass  # the reader went away mid-body: nothing left to answer
            return response


def build_app(probe: Probe, metrics: Metrics, *, max_connections: int = 64) -> web.Application:
    big_writes = BigWrites()

    async def index(request: web.Request) -> web.StreamResponse:
        return await big_writes.respond(request, probe.status_page, "text/html; charset=utf-8")

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        ok, why = probe.live()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def readyz(request: web.Request) -> web.Response:
        ok, why = probe.ready()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def status(request: web.Request) -> web.StreamResponse:
        return await big_writes.respond(
            request,
            lambda: probe.status_text().encode(),
            "application/json; charset=utf-8",
        )

    app = web.Application(middlewares=[request_cap(max_connections)])
    app.router.add_get("/", index)
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    return app


class ConnectionCap:
    """The server's protocol factory: at most `limit` connections; a new one closes the oldest.

    Only connections open for at least `grace` seconds are closed (a fresh one, the liveness
    probe's among them, gets time to send its request); the oldest closes once its request in
    flight (if any) is answered (within EVICT_GRACE_S), an idle one at once. New connections
    are always accepted.
    """

    def __init__(
        self, server: web.Server, limit: int, *, grace: float = 2.0, clock: Any = time.monotonic
    ) -> None:
        self._server = server
        self._limit = limit
        self._grace = grace
        self._clock = clock
        # RequestHandler takes no weak references: both are pruned to the open connections.
        self._opened: dict[RequestHandler, float] = {}
        self._closing: set[RequestHandler] = set()
        self.evicted = 0

    def __call__(self) -> RequestHandler:
        now = self._clock()
        connections = self._server.connections
        self._opened = {h: self._opened.get(h, now) for h in connections}
        self._closing &= set(connections)
        open_ = [h for h in connections if h not in self._closing]
        excess = len(open_) + 1 - self._limit
        for handler in open_:
            if excess <= 0:
                break
            if now - self._opened.get(handler, now) < self._grace:
                continue
            self._closing.add(handler)
            handler.close()  # ends an idle wait for the next request at once...
            # ...a connection that never sent one, or a request still in flight, gets a moment
            asyncio.get_running_loop().call_later(EVICT_GRACE_S, handler.force_close)
            self.evicted += 1
            excess -= 1
        handler = self._server()
        self._opened[handler] = now
        return handler


class AcceptErrors:
    """The loop's exception handler: fd exhaustion on accept logged once, as what it is.

    asyncio logs every failed accept (and retries each second); at the fd limit that is a
    traceback per second for as long as it lasts. Everything else goes to the previous handler.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        self.reported = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in EXHAUSTED:
            if not self.reported:
                log.error("cannot accept HTTP connections: %s (%s)", EMFILE_HINT, exc)
            self.reported += 1
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def restore(self) -> None:
        self._loop.set_exception_handler(self._previous)


@dataclass(frozen=True)
class Server:
    runner: web.AppRunner
    listener: asyncio.Server
    url: str
    connections: ConnectionCap
    accept_errors: AcceptErrors

    async def close(self) -> None:
        self.listener.close()
        await self.runner.cleanup()
        self.accept_errors.restore()


async def start_server(
    app: web.Application, host: str, port: int, *, max_connections: int = 64
) -> Server:
    """Listen on host:port (host "" = every interface, port 0 = any free port).

    Raises OSError when the address cannot be bound.
    """
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        keepalive_timeout=KEEPALIVE_TIMEOUT_S,
    )
    await runner.setup()
    assert runner.server is not None  # set up
    loop = asyncio.get_running_loop()
    cap = ConnectionCap(runner.server, max_connections)
    try:
        listener = await loop.create_server(
            cap, host or None, port, backlog=LISTEN_BACKLOG, reuse_address=True
        )
    except BaseException:
        await runner.cleanup()
        raise
    accept_errors = AcceptErrors(loop)
    loop.set_exception_handler(accept_errors)
    bound_host, bound_port = listener.sockets[0].getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    return Server(
        runner=runner,
        listener=listener,
        url=f"http://{shown}:{bound_port}",
        connections=cap,
        accept_errors=accept_errors,
    )
