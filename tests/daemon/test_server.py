"""The daemon's HTTP server under load, and the scheduler's watchdog: the real `Daemon` and
server in-process (fake AWS source, in-memory registry), clients over loopback HTTP from
threads of their own."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from discovery.core.config import Config
from discovery.daemon.daemon import Daemon
from discovery.daemon.scheduler import JOB_ID, WATCHDOG_INTERVALS
from discovery.daemon.server import BigWrites, Server, build_app, start_server
from discovery.daemon.status import brief_error
from discovery.output.logs import Redactor
from discovery.output.metrics import Metrics
from discovery.registry.memory import MemoryRegistry
from tests.daemon.inprocess import ROLE, FakeSource, a_proxy, eventually, make_config, no_registry
from tests.daemon.openers import backend_opener

# The k8s liveness probe's timeout: /healthz must answer well inside it.
LIVENESS_TIMEOUT_S = 5.0


def many_scopes(count: int, **overrides: Any) -> Config:
    """`count` matchers of one region each: a /status of hundreds of KB."""
    matchers = [
        {"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}
        for _ in range(count)
    ]
    return make_config(aws=matchers, **overrides)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def started(
    config: Config, *, monotonic: Any = time.monotonic, source: FakeSource | None = None
) -> Daemon:
    daemon = Daemon(
        config=config,
        config_path=Path("unused.yaml"),
        source=source or FakeSource(tuple(a_proxy(f"p{i}") for i in range(3))),
        registry=MemoryRegistry(),
        open_backend=backend_opener(no_registry),
        metrics=Metrics(),
        redactor=Redactor(),
        monotonic=monotonic,
    )
    await daemon.start()
    await eventually(lambda: daemon.ready()[0], timeout=30, what="the first cycle")
    return daemon


@pytest.fixture
async def served() -> AsyncIterator[list[tuple[Daemon, Server]]]:
    running: list[tuple[Daemon, Server]] = []
    yield running
    for daemon, server in running:
        await daemon.stop()
        await server.close()


async def serve(daemon: Daemon, running: list[tuple[Daemon, Server]]) -> Server:
    cap = daemon.config.server.max_connections
    app = build_app(daemon, Metrics(), max_connections=cap)
    server = await start_server(app, "127.0.0.1", 0, max_connections=cap)
    running.append((daemon, server))
    return server


def get(url: str) -> tuple[int, float]:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (ConnectionError, urllib.error.URLError):
        status = 0  # closed by the connection cap: refused, like a 503
    return status, time.monotonic() - t0


class LoopBusy:
    """The event loop's longest busy stretch: its thread's CPU time between two turns of a
    ticker. Unlike a wall-clock figure it leaves out the time the OS gives other processes
    (other tests on 2 shared cores): it is what the server's own work costs a /healthz."""

    def __init__(self) -> None:
        self.turns: list[float] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def worst(self) -> float:
        return max(self.turns, default=0.0)

    @property
    def p99(self) -> float:
        turns = sorted(self.turns)
        return turns[int(len(turns) * 0.99)] if turns else 0.0

    async def _tick(self) -> None:
        while True:
            before = time.thread_time()
            await asyncio.sleep(0.001)
            self.turns.append(time.thread_time() - before)

    def __enter__(self) -> LoopBusy:
        # As `discovery run` does at start: the heap so far (here pytest's and earlier tests')
        # is frozen, so that a full collection of it is not counted against the server.
        gc.collect()
        gc.freeze()
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        gc.unfreeze()


# The target for /healthz under that load (issue 12, hole 10): no turn of the loop may take
# it all, and 99% of the turns take a fifth of it at most (before: turns of 50-80 ms).
HEALTHZ_TARGET_S = 0.1
LOOP_BUSY_P99_S = 0.02


@pytest.mark.parametrize(("scopes", "least"), [(400, 150_000), (1300, 500_000)])
async def test_healthz_answers_fast_under_hundreds_of_concurrent_large_status_reads(
    served: list[tuple[Daemon, Server]], scopes: int, least: int
) -> None:
    daemon = await started(many_scopes(scopes))
    server = await serve(daemon, served)
    size = len(daemon.status_text())
    assert size > least, size
    readers, health = 500, []

    def load() -> list[int]:
        with ThreadPoolExecutor(64) as pool:
            return [s for s, _ in pool.map(get, [server.url + "/status"] * readers)]

    def probe_while(load_done: Any) -> None:
        while not load_done.done():
            health.append(get(server.url + "/healthz"))
            time.sleep(0.05)

    loop = asyncio.get_running_loop()
    with LoopBusy() as busy:
        load_done = loop.run_in_executor(None, load)
        await loop.run_in_executor(None, probe_while, load_done)
        statuses = await load_done
    assert statuses.count(200) > 0 and set(statuses) <= {200, 503, 0}
    assert health and all(status == 200 for status, _ in health)
    seconds = sorted(seconds for _, seconds in health)
    worst, median = seconds[-1], seconds[len(seconds) // 2]
    print(
        f"/status {size} bytes x {readers}: /healthz worst {worst * 1000:.0f} ms, median "
        f"{median * 1000:.0f} ms ({len(seconds)} probes); loop busy at most "
        f"{busy.worst * 1000:.0f} ms, p99 {busy.p99 * 1000:.1f} ms of {len(busy.turns)} turns"
    )
    assert worst < LIVENESS_TIMEOUT_S / 5, worst  # 1 s: a generous bound on 2 shared cores
    # The target holds where the server decides it: no turn of the loop is busy for long, and
    # a typical probe is answered inside it. (The worst probe also waits whenever the OS runs
    # other processes: see docs/RELIABILITY.md for the figures measured here.)
    assert busy.p99 < LOOP_BUSY_P99_S, busy.p99
    assert busy.worst < HEALTHZ_TARGET_S, busy.worst
    assert median < HEALTHZ_TARGET_S, median


async def test_status_is_serialized_once_per_cycle(served: list[tuple[Daemon, Server]]) -> None:
    daemon = await started(many_scopes(5))
    first = daemon.status_text()
    for _ in range(20):
        assert json.loads(daemon.status_text())["last_cycle"] == json.loads(first)["last_cycle"]
    assert daemon._status.builds == 1


async def test_idle_connections_beyond_the_cap_are_closed_and_healthz_still_answers(
    served: list[tuple[Daemon, Server]],
) -> None:
    daemon = await started(many_scopes(1, server={"max_connections": 16}))
    server = await serve(daemon, served)
    host, port = server.url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()

    def connect() -> socket.socket:
        return socket.create_connection((host, int(port)), timeout=10)

    with ThreadPoolExecutor(16) as pool:
        idle = await asyncio.gather(*(loop.run_in_executor(pool, connect) for _ in range(300)))
    health: list[tuple[int, float]] = []

    async def probed_until_evicted() -> bool:
        health.append(await loop.run_in_executor(None, get, server.url + "/healthz"))
        return server.connections.evicted >= 300 - 16

    try:
        deadline = time.monotonic() + 30
        while not await probed_until_evicted():
            assert time.monotonic() < deadline, "idle connections beyond the cap were not closed"
            await asyncio.sleep(0.1)
        assert all(status == 200 for status, _ in health), health
        assert max(seconds for _, seconds in health) < LIVENESS_TIMEOUT_S / 5
        assert server.runner.server is not None
        await eventually(
            lambda: len(server.runner.server.connections) <= 17,  # type: ignore[union-attr]
            timeout=30,
            what="the closed connections to go",
        )
    finally:
        for sock in idle:
            sock.close()


def test_status_summary_drops_aws_messages_but_keeps_the_action_code_and_fix() -> None:
    raw = (
        "sts:AssumeRole failed: AccessDenied: User: arn:aws:sts::000000000000:assumed-role/ci/x "
        "is not authorized to perform: sts:AssumeRole — check the role's trust policy"
    )
    brief = brief_error(raw)
    assert "arn:aws" not in brief and "000000000000" not in brief
    assert brief.startswith("sts:AssumeRole failed: AccessDenied — check the role's trust policy")
    assert "server.status_detail: full" in brief
    assert "arn:aws" not in brief_error("unexpected: arn:aws:iam::1:role/r went away")
    assert brief_error("registry unreachable: gone") == "registry unreachable: gone"


async def test_a_backward_clock_step_trips_the_watchdog_and_the_job_is_re_armed(
    served: list[tuple[Daemon, Server]],
) -> None:
    clock, source = FakeClock(), FakeSource()
    config = make_config(poll_interval="1m", poll_jitter="0s")
    daemon = await started(config, monotonic=clock, source=source)
    await serve(daemon, served)
    assert daemon.live() == (True, "ok")
    runs = source.started
    # What a backward step of the wall clock does to APScheduler: its next run, kept in wall
    # time, moves a day away while the monotonic clock goes on.
    assert daemon.scheduler is not None
    daemon.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC) + timedelta(days=1))
    clock.now += WATCHDOG_INTERVALS * 60 - 1
    assert daemon.live() == (True, "ok")
    clock.now += 2
    ok, why = daemon.live()
    assert not ok and "scheduler is stalled" in why and "re-armed" in why
    await eventually(lambda: source.started > runs, timeout=30, what="the re-armed run")
    await eventually(lambda: daemon.live() == (True, "ok"), timeout=30, what="healthz again")


async def test_a_big_body_reader_that_stops_reading_is_cut_off_and_frees_its_slot() -> None:
    body = b"x" * (32 * 1024 * 1024)  # far more than the socket buffers hold
    writes = BigWrites(writers=1, timeout=0.5)

    async def big(request: web.Request) -> web.StreamResponse:
        return await writes.respond(request, lambda: body, "application/octet-stream")

    app = web.Application()
    app.router.add_get("/big", big)
    server = await start_server(app, "127.0.0.1", 0)
    host, port = server.url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    stalled = socket.socket()
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await loop.run_in_executor(None, stalled.connect, (host, int(port)))
        stalled.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # ...and never reads

        def fetch() -> int:
            with urllib.request.urlopen(server.url + "/big", timeout=30) as response:
                return len(response.read())

        t0 = time.monotonic()
        assert await loop.run_in_executor(None, fetch) == len(body)  # the slot came free
        assert time.monotonic() - t0 < 20
    finally:
        stalled.close()
        await server.close()


async def test_big_bodies_answer_head_and_a_reader_gone_mid_body_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = b"y" * (8 * 1024 * 1024)
    writes = BigWrites()

    async def big(request: web.Request) -> web.StreamResponse:
        return await writes.respond(request, lambda: body, "application/json; charset=utf-8")

    app = web.Application()
    app.router.add_get("/big", big)
    server = await start_server(app, "127.0.0.1", 0)
    host, port = server.url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()

    def head() -> tuple[int, str, bytes]:
        request = urllib.request.Request(server.url + "/big", method="HEAD")
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Length"], response.read()

    def leave_mid_body() -> None:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")

    try:
        with caplog.at_level(logging.DEBUG):
            assert await loop.run_in_executor(None, head) == (200, str(len(body)), b"")
            await loop.run_in_executor(None, leave_mid_body)
            await eventually(
                lambda: server.runner.server is not None and not server.runner.server.connections,
                timeout=30,
                what="the abandoned connection to close",
            )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    finally:
        await server.close()
