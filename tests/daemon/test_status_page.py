"""The status page (`GET /`): served by a real `discovery run` subprocess against the emulator,
escaped, saying dry-run when it is one; and, in-process, rendered once per cycle from the
`/status` cache, with a bounded memory of past cycles."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from discovery.core.summary import CycleSummary
from discovery.daemon.daemon import Daemon
from discovery.daemon.runner import CycleOutcome
from discovery.daemon.status import CycleBook, brief_reason
from discovery.emulator import EmulatorThread
from discovery.output.logs import Redactor
from discovery.output.metrics import Metrics
from discovery.output.page import HISTORY_LIMIT
from discovery.registry.memory import MemoryRegistry
from tests.daemon.conftest import ACCOUNT_A, base_config
from tests.daemon.inprocess import FakeSource, a_proxy, eventually, make_config, no_registry
from tests.daemon.openers import backend_opener
from tests.harness.daemon import DaemonProcess

Daemons = Callable[..., DaemonProcess]
EVIL = '<script>alert("pwned")</script>'


def test_page_is_html_and_escapes_what_aws_returns(
    daemons: Daemons, emulator: EmulatorThread, fleet: dict[str, Any]
) -> None:
    # Whoever can tag a proxy writes this value; it reaches the page through the skip reason.
    proxies = fleet["accounts"][0]["regions"]["us-east-1"]["proxies"]
    proxies[0]["tags"] = {"env": "prod", "TeleportDatabaseName": EVIL}
    emulator.set_fleet(fleet)
    daemon = daemons(base_config())
    daemon.wait_ready()

    status = daemon.status()
    assert status["dry_run"] is False
    reasons = [k["reason"] for s in status["last_cycle"]["scopes"] for k in s["skipped"]]
    assert any(EVIL in r for r in reasons), reasons  # /status (JSON) has it as it is

    code, page, content_type = daemon.get("/")
    assert code == 200 and content_type.startswith("text/html"), (code, content_type)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert '<meta http-equiv="refresh"' in page
    assert '<strong id="role">leader</strong>' in page
    assert '<svg id="cycle-chart"' in page
    assert f"<td>{ACCOUNT_A}</td><td>us-east-1</td>" in page
    assert "/metrics" in page  # the endpoints are linked from it


def test_dry_run_daemon_plans_every_cycle_writes_nothing_and_says_so(daemons: Daemons) -> None:
    daemon = daemons(base_config())
    daemon.wait_ready()
    # A shadow deployment next to the writer, on the same registry: it plans, never applies,
    # and takes no leader lock, so the writer keeps leading.
    shadow = DaemonProcess(
        daemon.endpoint,
        daemon.workdir,
        daemon.config_path,
        log_path=daemon.workdir / "shadow.log",
        args=["--dry-run"],
    )
    shadow.start()
    try:
        status = shadow.wait_completed(2)
        assert status["dry_run"] is True
        last = status["last_cycle"]
        assert last["applied"] is False and last["counts"]["created"] == 0
        assert last["result"] == "ok"
        code, page, _ = shadow.get("/")
        assert code == 200 and 'id="dry-run"' in page
        assert "dry-run: every cycle plans and reports" in shadow.log()
        assert "would create 0" in shadow.log()  # the writer created them all
        metrics = shadow.scrape()
        assert metrics.value("rdsproxy_discovery_changes_applied_total", action="create") == 0
        daemon.wait_cycles(1)
        writer = daemon.status()
        assert writer["role"] == "leader" and writer["dry_run"] is False
    finally:
        shadow.kill()


def test_a_fresh_dry_run_daemon_writes_no_resource_and_takes_no_lock(daemons: Daemons) -> None:
    daemon = daemons(base_config())
    daemon.wait_ready()
    daemon.stop()
    for name in ("registry.db", "registry.db-wal", "registry.db-shm", "registry.db.lock"):
        (daemon.workdir / name).unlink(missing_ok=True)
    shadow = DaemonProcess(
        daemon.endpoint,
        daemon.workdir,
        daemon.config_path,
        log_path=daemon.workdir / "shadow.log",
        args=["--dry-run"],
    )
    shadow.start()
    try:
        status = shadow.wait_completed(1)
        assert status["last_cycle"]["counts"]["created"] == 0
        assert "would create 16" in shadow.log()
        assert shadow.registry() == {}
        assert not (daemon.workdir / "registry.db.lock").exists()  # no leader lock taken
    finally:
        shadow.kill()


def _outcome(i: int) -> CycleOutcome:
    return CycleOutcome(
        cycle_id=f"c{i}",
        started_at=float(i),
        finished_at=i + 0.5,
        result="ok",
        error="",
        report=None,
        summary=CycleSummary(scopes=(), planned=True, to_create=i),
    )


def test_cycle_history_is_bounded() -> None:
    book = CycleBook()
    for i in range(HISTORY_LIMIT * 3):
        book.record(_outcome(i))
    assert len(book.history) == HISTORY_LIMIT
    assert book.history[0].cycle_id == f"c{HISTORY_LIMIT * 2}"
    assert book.history[-1].changes == HISTORY_LIMIT * 3 - 1


async def test_page_is_rendered_once_per_cycle() -> None:
    daemon = Daemon(
        config=make_config(),
        config_path=Path("unused.yaml"),
        source=FakeSource(tuple(a_proxy(f"p{i}") for i in range(3))),
        registry=MemoryRegistry(),
        open_backend=backend_opener(no_registry),
        metrics=Metrics(),
        redactor=Redactor(),
    )
    await daemon.start()
    try:
        await eventually(lambda: daemon.ready()[0], timeout=30, what="the first cycle")
        first = daemon.status_page()
        for _ in range(50):
            assert daemon.status_page() is first
        assert daemon._status.page_builds == 1
        assert json.loads(daemon.status_text())["last_cycle"]["id"].encode() in first
        builds = daemon._status.builds
        daemon._job.run_now()
        await eventually(
            lambda: daemon._status.builds > builds or daemon.status_text() is None,
            timeout=30,
            what="a second cycle",
        )
        await eventually(lambda: len(daemon._book.history) == 2, timeout=30, what="2 cycles")
        second = daemon.status_page()
        assert second != first and daemon._status.page_builds == 2
    finally:
        await daemon.stop()


def test_a_frozen_scopes_withheld_reason_drops_awss_message_at_summary() -> None:
    reason = (
        "scope 222222222222/eu-west-1 failed: rds:DescribeDBProxies failed: AccessDenied: "
        "User: arn:aws:sts::222222222222:assumed-role/discovery/x is not authorized "
        "— grant rds:DescribeDBProxies to the identity used for this matcher"
    )
    brief = brief_reason(reason)
    assert brief.startswith(
        "scope 222222222222/eu-west-1 failed: rds:DescribeDBProxies failed: AccessDenied — grant"
    )
    assert "User:" not in brief and "arn:aws" not in brief
    assert "arn:aws" not in brief_reason("scope in eu-west-1 failed: arn:aws:iam::1:role/r")


async def test_many_page_readers_cost_one_render_and_never_delay_healthz() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from discovery.daemon.server import build_app, start_server
    from tests.daemon.inprocess import ROLE

    matchers = [
        {"types": ["rdsproxy"], "regions": ["us-east-1"], "assume_role_arn": ROLE}
        for _ in range(200)
    ]
    daemon = Daemon(
        config=make_config(aws=matchers),
        config_path=Path("unused.yaml"),
        source=FakeSource(tuple(a_proxy(f"p{i}") for i in range(3))),
        registry=MemoryRegistry(),
        open_backend=backend_opener(no_registry),
        metrics=Metrics(),
        redactor=Redactor(),
    )
    await daemon.start()
    server = None
    try:
        await eventually(lambda: daemon.ready()[0], timeout=30, what="the first cycle")
        cap = daemon.config.server.max_connections
        server = await start_server(
            build_app(daemon, Metrics(), max_connections=cap), "127.0.0.1", 0, max_connections=cap
        )
        url = server.url

        def get(path: str) -> tuple[int, float]:
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(url + path, timeout=60) as response:
                    response.read()
                    code = response.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except (ConnectionError, urllib.error.URLError):
                code = 0  # closed by the connection cap
            return code, time.monotonic() - t0

        health: list[tuple[int, float]] = []

        def load() -> list[int]:
            with ThreadPoolExecutor(32) as pool:
                return [c for c, _ in pool.map(get, ["/"] * 300)]

        def probe_while(done: Any) -> None:
            while not done.done():
                health.append(get("/healthz"))
                time.sleep(0.05)

        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, load)
        await loop.run_in_executor(None, probe_while, done)
        codes = await done
        assert codes.count(200) > 0 and set(codes) <= {200, 503, 0}, set(codes)
        assert health and all(code == 200 for code, _ in health)
        assert max(seconds for _, seconds in health) < 1.0
        assert daemon._status.page_builds == 1  # one render for every reader of this cycle
    finally:
        await daemon.stop()
        if server is not None:
            await server.close()
