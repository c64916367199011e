"""Running out of file descriptors, told as what it is.

At the fd limit every SQLite call (each opens its own connection) fails as "unable to open
database file", and every accept of an HTTP connection fails too: both read as something else
(a missing directory, a network fault) unless the process checks whether it can still open a
file at all.
"""

from __future__ import annotations

import errno
import os

EMFILE_HINT = "too many open files (raise LimitNOFILE / ulimit -n)"
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE})


# A failed open may have freed what it took (SQLite opens the database, then its -wal and -shm
# files): "out of fds" means fewer than this many are left, not none.
HEADROOM = 8


def out_of_fds() -> bool:
    """Whether this process is at (or within HEADROOM of) its file descriptor limit."""
    opened: list[int] = []
    try:
        for _ in range(HEADROOM):
            opened.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno in EXHAUSTED
    finally:
        for fd in opened:
            os.close(fd)
    return False
