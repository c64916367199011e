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


def out_of_fds() -> bool:
    """Whether this process cannot open one more file right now."""
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError as exc:
        return exc.errno in EXHAUSTED
    os.close(fd)
    return False
