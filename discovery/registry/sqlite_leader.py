"""Leader election over SQLite: an exclusive `flock` on a sidecar file, `<registry.path>.lock`.

Why: SQLite orders transactions but does not say who owns the file. Two daemons on one
`registry.path` (or a daemon and a cron `scan` with an older config) would each plan against
the other's writes and undo them every cycle, all cycles "ok". With this lock one process leads
(and writes); a second daemon follows, as PostgreSQL replicas do, and a `scan` refuses to run.

Why `flock` on a file of its own, not a lock on the database: SQLite takes POSIX (`fcntl`)
locks on the database file, and those belong to the whole process, so closing any descriptor
of the file drops them all. An `flock` belongs to its open file description, which this object
alone holds, and the kernel drops it when that description is closed, i.e. when the process
exits (`kill -9` included): a follower's next `try_acquire` takes over, no stale lock to clean.
The lock file is never deleted (deleting it would let a newcomer lock a new file while the
leader holds the old one); the leader writes its pid in it, so a refused process can name it.

Fencing: `held()` is what the registry checks inside each apply's transaction, just before the
commit: this object still holds the lock, and the path still names the file it locked (should
someone delete or replace the lock file, another process could lock the new one).

Local files only, like the registry itself (WAL mode needs a local file system).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from contextlib import suppress
from pathlib import Path

from discovery.registry.base import RegistryError

__all__ = ["RegistryLocked", "SQLiteLeaderLock", "lock_path"]

log = logging.getLogger(__name__)

_HOLDER_MAX_BYTES = 256


class RegistryLocked(RegistryError):
    """Another process holds the registry's lock file: this one may not write (exit 1)."""


def lock_path(registry_path: Path) -> Path:
    """The sidecar lock file of an SQLite registry: `<registry.path>.lock`."""
    return registry_path.with_name(registry_path.name + ".lock")


class SQLiteLeaderLock:
    """`Leadership` of the processes sharing one SQLite registry file, through `flock`.

    `holder` says what this process is (`discovery run`, `discovery scan`); it is written in the
    lock file with the pid while this process leads. The calls are short, non-blocking system
    calls on a local file, so they run on the event loop; a mutex orders them with `held()`,
    which the registry calls from its worker thread.
    """

    def __init__(self, registry_path: Path, *, holder: str = "discovery run") -> None:
        self._registry_path = registry_path
        self._path = lock_path(registry_path)
        self._holder = holder
        self._fd: int | None = None
        self._leader = False
        # Leading a lock file that cannot exist (see `_take`): cycles run, `held()` is False.
        self._vacant = False
        self._open_error = ""
        self._last_error = ""
        self._other = ""  # who holds the lock, as its file said at our last refused try
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteLeaderLock({str(self._path)!r})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def other_holder(self) -> str:
        """Who holds the lock (`pid 1234 (discovery run)`) as last seen by a refused try, or ""."""
        return self._other

    def refusal(self) -> str:
        """The one line a refused `scan` prints: who holds the lock, and what to do."""
        who = self._other or "another process (its pid is not written yet)"
        return (
            f"registry {self._registry_path} is in use: {who} holds its lock file {self._path}, "
            "so this process may not write to it and wrote nothing; a daemon on this file "
            "already keeps it in step: stop that process first, or point registry.path at "
            "another file (scan --dry-run needs no lock)"
        )

    def held(self) -> bool:
        """This process holds the lock on the file the path names now (the registry's fence)."""
        with self._mutex:
            return (
                self._leader
                and not self._vacant
                and self._fd is not None
                and self._same_file(self._fd)
            )

    async def start(self) -> None:
        """Open (create) the lock file if it can be; `try_acquire` says what came of it."""
        with self._mutex:
            if self._fd is None:
                self._open()

    async def try_acquire(self) -> bool:
        with self._mutex:
            if self._leader:
                return self._check()
            return self._take()

    async def check(self) -> bool:
        with self._mutex:
            return self._check()

    async def release(self) -> None:
        """Unlock and close: a follower's next `try_acquire` takes over."""
        with self._mutex:
            if self._leader and not self._vacant and self._fd is not None:
                # Closing below drops the lock regardless of an error here.
                with suppress(OSError):
                    os.ftruncate(self._fd, 0)  # nobody's pid: nobody holds it
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                log.info("released the lock of registry %s", self._path)
            self._leader = self._vacant = False
            self._close()

    # --- internals (called with the mutex held) ----------------------------------------------

    def _take(self) -> bool:
        """Try to lock; True if this process leads now (held, or vacant: see `_vacant`)."""
        self._last_error = ""
        if (self._fd is None or not self._same_file(self._fd)) and not self._open():
            if os.path.lexists(self._path):  # it exists, but cannot be opened: holder unknown
                self._leader = self._vacant = False
                self._last_error = self._open_error
                return False
            # The lock file cannot be created (its directory is missing or not writable), so
            # nobody holds it: lead "vacantly", so that the cycle runs and fails at the
            # registry with its own precise error, while `held()` refuses every apply.
            if not self._vacant:
                log.info("%s; this process leads but writes nothing until it can", self._open_error)
            self._leader = self._vacant = True
            return True
        assert self._fd is not None
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._leader = self._vacant = False
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                self._last_error = f"cannot lock {self._path}: {exc.strerror or exc}"
                return False
            self._observe_other(_read_holder(fd))
            return False
        if not self._same_file(fd):  # replaced between open and lock: try afresh next time
            self._leader = self._vacant = False
            self._close()
            return False
        self._other = ""
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self._holder}\n".encode(), 0)
        except OSError as exc:  # the lock is ours all the same; only the note is missing
            log.warning("cannot write this process's pid in %s: %s", self._path, exc)
        self._leader, self._vacant = True, False
        log.info("took the lock %s (%s, pid %d)", self._path, self._holder, os.getpid())
        return True

    def _check(self) -> bool:
        if not self._leader:
            return False
        if self._vacant:  # the lock file may exist now: take it, or find who did
            return self._take()
        if self._fd is not None and self._same_file(self._fd):
            return True
        # The lock file was deleted or replaced: the lock held is on a file the path no longer
        # names. Take the one it names now at once (or lead vacantly if none can exist there);
        # if another process got there first, step down.
        self._close()
        what = f"the lock file {self._path} was deleted or replaced while this process held it"
        if self._take():
            log.warning("%s; it holds the new one; leave the lock file alone", what)
            return True
        self._last_error = self._last_error or (
            f"{what}, and another process holds the new one; leave the lock file alone"
        )
        log.warning("lost the lock of registry %s: %s", self._registry_path, self._last_error)
        return False

    def _open(self) -> bool:
        """Open (create) the lock file; False (and `_open_error` says why) if it cannot be."""
        self._close()
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            with suppress(OSError):  # someone else's file: reading is enough to lock it
                self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
                self._open_error = ""
                return True
            self._open_error = (
                f"cannot open the lock file {self._path} of registry {self._registry_path} "
                f"({exc.strerror or exc}): make its directory writable by the user running "
                "discovery, or point registry.path at a writable place"
            )
            return False
        self._open_error = ""
        return True

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with suppress(OSError):
                os.close(fd)

    def _same_file(self, fd: int) -> bool:
        try:
            mine, now = os.fstat(fd), os.stat(self._path)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

    def _observe_other(self, other: str) -> None:
        if other != self._other:
            log.info(
                "registry %s is locked by %s: this process follows",
                self._path,
                other or "another process",
            )
        self._other = other


def _read_holder(fd: int) -> str:
    """`pid 1234 (discovery run)` from the lock file's note, or "" while it is not written."""
    try:
        note = os.pread(fd, _HOLDER_MAX_BYTES, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    pid, _, what = note.partition(" ")
    if not pid.isdigit():
        return ""
    return f"pid {pid} ({what})" if what else f"pid {pid}"
