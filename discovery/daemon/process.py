"""`discovery run`: the cycle of `scan`, on a schedule, observable, and safe to stop or reload.

- Schedule: one APScheduler (3.x, AsyncIOScheduler) interval job. The first cycle runs at once,
  then every `poll_interval` plus a random 0..`poll_jitter`. Never two cycles at once: a run that
  comes due while a cycle is still going is skipped and counted, not queued.
- Leadership (see `discovery.registry.leader`): only the leader of the discovery group runs
  cycles. Every scheduled run first checks (leader) or tries to take (follower) the leadership;
  between runs an election loop does the same every `election_interval` (at most 10 s, at most
  half the poll interval), so a follower takes over within one poll interval of the leader's
  death and runs its first cycle at once. A leader that finds its lock gone stops its cycle before
  it writes (result `fenced`), and the registry's fence refuses an apply that was already under
  way. A follower only reads the registry once per poll interval, to know it can reach it.
  With SQLite the lock is an `flock` on `<registry.path>.lock` (`SQLiteLeaderLock`).
- One AWS source (assumed sessions and clients reused across cycles) and one registry and
  elector for the daemon's life; a reload that changes `registry` or `discovery_group` swaps
  them between two cycles (the old elector released, the new one started).
- Stop (SIGTERM/SIGINT): a cycle's AWS fetches are cancelled at once; an apply already handed to
  the registry runs to its end (commit or rollback) before the leadership is released and the
  process exits.
- Reload (SIGHUP): the new config is validated in full first. A bad one is rejected with one
  log line and the running one stays; a good one applies from the next cycle.
- `--dry-run` (a shadow deployment next to the real one): every cycle plans and reports, none
  applies; it takes no leader lock (the caller opens it with `AlwaysLeader`), so it never
  stands in the way of the replicas that write. `--once` (`run_once`): one cycle in the
  foreground, no HTTP server, no schedule; the caller maps its outcome to scan's exit codes.
- What an operator sees: the status page `/`, `/metrics`, `/healthz`, `/readyz` and `/status` (see
  `discovery.daemon.server`, `discovery.daemon.status`), and log lines tagged with the cycle id
  and scope (see `discovery.output.logs`).

The parts, each with one job: `election` (the role), `runner` (one cycle, an outcome value),
`backend` (the registry slot), `reload`, `status`, `scheduler` (the APScheduler job), `daemon`
(the `Daemon` that wires them) and `server` (HTTP). This module is the process: it gets the
AWS source and the backend from openers its caller injects (`discovery.wiring`), and imports
no entry point.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from discovery import __version__
from discovery.aws.rds_proxy import AWSSource, ProxySource
from discovery.core.config import Config
from discovery.core.scopes import expand_scopes
from discovery.daemon.backend import BackendOpener, GuardedRegistry
from discovery.daemon.daemon import Daemon
from discovery.daemon.election import election_interval
from discovery.daemon.runner import CycleOutcome, CycleRunner
from discovery.daemon.server import build_app, start_server
from discovery.output.logs import Redactor
from discovery.output.metrics import Metrics
from discovery.registry.account_state import account_state_for
from discovery.registry.leader import AlwaysLeader
from discovery.registry.sqlite_leader import SQLiteLeaderLock

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_RUNTIME = 1


class SourceOpener(Protocol):
    """An async context manager yielding the daemon's one `ProxySource`, counting its calls."""

    def __call__(
        self,
        config: Config,
        /,
        *,
        on_call: Callable[[str, str, int], None],
        on_throttle: Callable[[str], None],
    ) -> AbstractAsyncContextManager[ProxySource]: ...


async def run_daemon(
    *,
    config: Config,
    config_path: Path,
    listen: tuple[str, int],
    listen_fixed: bool,
    redactor: Redactor,
    open_backend: BackendOpener,
    open_source: SourceOpener,
    dry_run: bool = False,
) -> int:
    """Serve HTTP, run cycles until SIGTERM/SIGINT, then stop cleanly. Returns the exit code.

    `listen` is the parsed (host, port) and `redactor` is already seeded with the config's
    external ids: the CLI did both once, before logging started.

    The first backend is opened here, before anything starts: what `open_backend` raises for a
    bad config (a backend this build lacks, no DSN) reaches the caller as it is. The daemon
    starts the elector itself, and a database it cannot reach yet is retried, not fatal.
    """
    registry, leadership = open_backend(config, config_path)
    metrics = Metrics()
    host, port = listen
    loop = asyncio.get_running_loop()
    # One source for the daemon's life: sessions and clients are reused across cycles, so the
    # aws_client settings take effect at start (a SIGHUP reload does not rebuild the clients).
    async with open_source(
        config, on_call=metrics.observe_call, on_throttle=metrics.observe_throttle
    ) as source:
        daemon = Daemon(
            config=config,
            config_path=config_path,
            source=source,
            registry=registry,
            leadership=leadership,
            open_backend=open_backend,
            metrics=metrics,
            redactor=redactor,
            listen_fixed=listen_fixed,
            dry_run=dry_run,
            lister=source.inventory if isinstance(source, AWSSource) else None,
        )
        try:
            cap = config.server.max_connections
            app = build_app(daemon, metrics, max_connections=cap)
            server = await start_server(app, host, port, max_connections=cap)
        except OSError as exc:
            log.error(
                "cannot listen on %s:%d: %s; choose another address with --listen or server.listen",
                host,
                port,
                exc,
            )
            await daemon.stop()
            return EXIT_RUNTIME
        log.info("listening on %s (/ /metrics /healthz /readyz /status)", server.url)
        stop_signals = (signal.SIGTERM, signal.SIGINT)
        for sig in stop_signals:
            loop.add_signal_handler(sig, daemon.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, daemon.reload)
        # The startup heap (modules, config, clients) lives as long as the process: full
        # collections skip it, so their pauses, which stall /healthz, stay short.
        gc.collect()
        gc.freeze()
        try:
            await daemon.start()
            log.info(
                "discovery %s running: discovery group %r, %d scope(s), a cycle every %gs "
                "plus up to %gs of jitter",
                __version__,
                config.discovery_group,
                len(expand_scopes(config)),
                config.poll_interval,
                config.poll_jitter_seconds,
            )
            if dry_run:
                log.info(
                    "dry-run: every cycle plans and reports, nothing is written to the registry "
                    "and no leader lock is taken"
                )
            elif not isinstance(leadership, AlwaysLeader):
                log.info(
                    "leader election on: only the leader of discovery group %r runs cycles; "
                    "the others follow and check every %gs",
                    config.discovery_group,
                    election_interval(config),
                )
            await daemon.wait_for_stop_request()
        finally:
            for sig in (*stop_signals, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await daemon.stop()
            await server.close()
    log.info("stopped")
    return EXIT_OK


class NotLeader(Exception):
    """`run --once`: another replica leads the discovery group, so this one ran no cycle."""


async def run_once(
    *,
    config: Config,
    config_path: Path,
    open_backend: BackendOpener,
    open_source: SourceOpener,
    dry_run: bool = False,
) -> CycleOutcome:
    """`run --once`: one daemon cycle in the foreground (no HTTP server, no schedule).

    It takes the leadership first, like a scheduled run; if another replica holds it, it
    raises `NotLeader` before anything is fetched.
    """
    registry, leadership = open_backend(config, config_path)
    guarded = GuardedRegistry(registry)
    try:
        await leadership.start()
        if not await leadership.try_acquire():
            if isinstance(leadership, SQLiteLeaderLock) and not leadership.last_error:
                raise NotLeader(f"run --once ran no cycle: {leadership.refusal()}")
            why = leadership.last_error or "another replica holds its leader lock"
            raise NotLeader(
                f"run --once ran no cycle: this process is not the leader of discovery group "
                f"{config.discovery_group!r} ({why}); stop the replica that leads, or use "
                "--dry-run, which takes no lock"
            )
        metrics = Metrics()
        async with open_source(
            config, on_call=metrics.observe_call, on_throttle=metrics.observe_throttle
        ) as source:
            runner = CycleRunner(
                source=source,
                dry_run=dry_run,
                lister=source.inventory if isinstance(source, AWSSource) else None,
                gone_state=lambda cfg: account_state_for(cfg, config_path),
            )
            return await runner.run(
                config=config,
                registry=guarded,
                still_leading=leadership.check,
                stopping=lambda: False,
            )
    finally:
        await guarded.drain()
        await leadership.release()
        await guarded.close()
