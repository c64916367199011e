"""The leader-election state machine of one replica: start, try, check, hold off after a loss.

Only the leader of a discovery group runs cycles (see `discovery.registry.leader` for the lock).
Each `step()` is one election step: a follower tries to take the lock, a leader checks that it
still holds it. A change of role is told to the `ElectionEvents` subscriber (the daemon: a new
leader runs a cycle at once, a lost one stops its cycle), and said in the log once. There is no
loop, no scheduler and no cycle in here: the daemon decides when a step runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from discovery.core.config import Config
from discovery.registry.base import RegistryError
from discovery.registry.leader import AlwaysLeader, Leadership

log = logging.getLogger(__name__)

# A follower tries to take over, and a leader checks that it still leads, this often at most.
ELECTION_INTERVAL_MAX_S = 10.0
# A replica that lost the leadership waits this many election intervals before it tries to take
# it back: its own connection is the suspect one, so a healthy follower gets a try first.
HOLD_OFF_INTERVALS = 1.5


def election_interval(config: Config) -> float:
    """Seconds between two election steps: half the poll interval, at most 10 s.

    Half, so that a follower notices a dead leader and starts its own cycle well within one
    poll interval; at most 10 s, so that with a poll interval of hours a dead leader is still
    replaced (and a leader that lost its lock still stops) within seconds.
    """
    return min(config.poll_interval / 2, ELECTION_INTERVAL_MAX_S)


class ElectionEvents(Protocol):
    """Who hears of a change of role."""

    def gained(self) -> None: ...

    def lost(self, reason: str) -> bool:
        """This replica no longer leads; True if that stopped a running cycle."""
        ...


class Election:
    """One replica's role in its discovery group, moved by `step()`."""

    def __init__(
        self,
        *,
        leadership: Leadership,
        config: Callable[[], Config],
        events: ElectionEvents,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leadership = leadership
        self._config = config  # the running config: interval and group follow reloads
        self._events = events
        self._clock = clock
        self._monotonic = monotonic
        self._started = False
        self.start_error = ""  # why the elector could not start
        self._said_error = ""  # the elector's last_error, as last logged
        self.leading: bool | None = None  # None: no step yet
        self.since = clock()
        self.lost_at: float | None = None
        self.lost_reason = ""
        self._retry_after = 0.0  # monotonic time before which this replica does not try

    @property
    def elected(self) -> bool:
        """Whether leadership is contended at all (False: `AlwaysLeader`, an in-process fake)."""
        return not isinstance(self._leadership, AlwaysLeader)

    @property
    def last_error(self) -> str:
        return self.start_error or self._leadership.last_error

    @property
    def reaches_database(self) -> bool:
        """The elector started and its last step reached its database."""
        return self._started and not self._leadership.last_error

    def use(self, leadership: Leadership) -> bool:
        """Elect with `leadership` from now on (a reload swapped it in, the old one released).

        Returns True if this replica led, and so now follows until its next step.
        """
        released = bool(self.leading) and self.elected
        self._leadership = leadership
        self._started, self.start_error, self._retry_after = False, "", 0.0
        if released:
            self.leading, self.since = False, self._clock()
        return released

    async def step(self) -> bool:
        """One election step: a leader checks, a follower tries. Returns whether it leads."""
        leadership = self._leadership
        if not self._started:
            try:
                await leadership.start()
            except RegistryError as exc:
                error = str(exc)
                if error != self.start_error:
                    log.error(
                        "leader election cannot start: %s; this replica does not lead and "
                        "tries again every %gs",
                        error,
                        election_interval(self._config()),
                    )
                self.start_error = error
                self._observe(False)
                return False
            if self.start_error:
                log.info("leader election started")
                self._said_error = ""  # said by the line above
            self._started, self.start_error = True, ""
        if not leadership.is_leader and self._monotonic() < self._retry_after:
            # Not trying yet; only reconnecting, to know (and say) whether the database answers.
            with suppress(RegistryError):
                await leadership.start()
            self._observe(False)
            return False
        try:
            leading = await (
                leadership.check() if leadership.is_leader else leadership.try_acquire()
            )
        except Exception:  # a bug in an elector: on doubt, never lead
            log.exception("leader election step failed; this replica does not lead meanwhile")
            leading = False
        self._observe(leading)
        return leading

    def _observe(self, leading: bool) -> None:
        was = self.leading
        error = self._leadership.last_error
        config = self._config()
        if leading != was:
            self.leading = leading
            self.since = self._clock()
            group = config.discovery_group
            if leading:
                if self.elected:
                    log.info(
                        "this replica is now the leader of discovery group %r: it runs the "
                        "cycles from now on",
                        group,
                    )
                self._events.gained()
            elif was:
                why = error or "its leader lock is no longer held"
                self.lost_at, self.lost_reason = self.since, why
                hold_off = HOLD_OFF_INTERVALS * election_interval(config)
                self._retry_after = self._monotonic() + hold_off
                aborted = self._events.lost(why)
                log.warning(
                    "this replica is no longer the leader of discovery group %r (%s): it "
                    "writes nothing from now on%s; it lets a follower take over and tries "
                    "again in %gs",
                    group,
                    why,
                    "; its running cycle is stopped" if aborted else "",
                    hold_off,
                )
            elif not error and not self.start_error:
                log.info(
                    "discovery group %r is led by another replica: this one follows and "
                    "tries to take over every %gs",
                    group,
                    election_interval(config),
                )
        # The elector's trouble reaching its database, logged when it starts and when it ends
        # (the elector itself says it only at debug level, once per try); not twice when the
        # line about a failed start or a lost leadership already said it.
        said = bool(self.start_error) or bool(was and not leading)
        if error and error != self._said_error and not said:
            log.warning(
                "leader election cannot reach its database: %s; this replica does not lead "
                "until it can",
                error,
            )
        elif not error and self._said_error:
            log.info("leader election reaches its database again")
        self._said_error = error
