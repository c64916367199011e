"""SIGHUP: re-read the config file, validate it in full, and take it or keep the running one.

A bad config is rejected with one log line and the running one stays. A good one applies from
the next cycle (what it leaves behind, config-change deletes and a renamed group's orphans, is
logged from the registry by `discovery.daemon.config_change`); a new `registry` or
`discovery_group` opens a new backend (registry and elector), offered to the `BackendSlot`
and swapped in between two cycles. `aws_client` is the exception: the AWS clients are built
once, at start, so a change to it applies only when the daemon restarts, and the reload says
so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from discovery.core.config import Config, ConfigError
from discovery.daemon.backend import Backend, BackendOpener, BackendSlot, needs_new_backend
from discovery.output.logs import Redactor
from discovery.output.metrics import Metrics
from discovery.wiring import load_config

log = logging.getLogger(__name__)

ConfigChanged = Callable[[Config, Config], None]


class Reloader:
    """The running config, and how a reload replaces it."""

    def __init__(
        self,
        *,
        config: Config,
        config_path: Path,
        open_backend: BackendOpener,
        slot: BackendSlot,
        metrics: Metrics,
        redactor: Redactor,
        listen_fixed: bool,
        on_change: ConfigChanged,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.loaded_at = clock()
        self._open_backend = open_backend
        self._slot = slot
        self._metrics = metrics
        self._redactor = redactor
        self._listen_fixed = listen_fixed  # --listen given: server.listen is not ours to follow
        self._on_change = on_change
        self._clock = clock

    def reload(self) -> bool:
        """Re-read the config file. True if the new config was taken.

        Never raises (it runs in the SIGHUP callback): whatever goes wrong is a rejected reload,
        logged and counted, with the running config, backend and schedule as they were.
        """
        try:
            return self._reload()
        except Exception as exc:
            log.exception("config reload failed unexpectedly")
            return self._reject(f"unexpected error: {type(exc).__name__}: {exc}")

    def _reload(self) -> bool:
        path = self.config_path
        try:
            new = load_config(path)
        except ConfigError as exc:
            return self._reject(str(exc))
        old = self.config
        backend: Backend | None = None
        if needs_new_backend(old, new, self._slot.current):
            try:
                backend = Backend.of(*self._open_backend(new, path))
            except Exception as exc:  # whatever the backend says, the running config stays
                return self._reject(f"{path}: registry: {exc}")
        changed = [name for name in Config.model_fields if getattr(old, name) != getattr(new, name)]
        if backend is not None:
            self._slot.offer(backend)
        try:
            self._on_change(old, new)  # e.g. the schedule: the last step that can fail
        except Exception as exc:
            if backend is not None:
                self._slot.withdraw(backend)
            log.exception("applying the reloaded config failed; nothing of it was taken")
            return self._reject(f"{path}: cannot apply it: {type(exc).__name__}: {exc}")
        self._redactor.add(i for m in new.aws for i in m.external_ids)
        self.config = new
        self.loaded_at = self._clock()
        if new.server.listen != old.server.listen and not self._listen_fixed:
            log.warning(
                "server.listen changed to %s; the HTTP server moves only when the daemon restarts",
                new.server.listen,
            )
        if new.aws_client != old.aws_client:
            log.warning(
                "aws_client changed; it applies only when the daemon restarts (the AWS clients "
                "are built once, at start): restart it to use the new settings"
            )
        if new.discovery_group != old.discovery_group:
            log.warning(
                "discovery_group changed from %r to %r: resources owned by %r are no longer "
                "managed by this daemon and stay in the registry as they are; to keep managing "
                "them, move them: discovery registry adopt --from-group %s",
                old.discovery_group,
                new.discovery_group,
                old.discovery_group,
                old.discovery_group,
            )
        self._metrics.poll_interval.set(new.poll_interval)
        self._metrics.observe_reload(ok=True)
        restart_only = [name for name in changed if name == "aws_client"]
        log.info(
            "config reloaded from %s (%s); it applies from the next cycle%s",
            path,
            "changed: " + ", ".join(changed) if changed else "no changes",
            ", except aws_client (from the next restart)" if restart_only else "",
        )
        return True

    def _reject(self, why: str) -> bool:
        self._metrics.observe_reload(ok=False)
        log.error("config reload rejected, the running config stays in effect: %s", why)
        return False
