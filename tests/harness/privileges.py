"""Making root respect file modes, for the tests about read-only registry files.

Root ignores file modes because it holds CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH). Such a
test used to become `nobody` instead; but `nobody` must then read everything the code still
loads (botocore's data files, lazily imported modules), and in a checkout under a private
directory (a home directory, `mktemp -d`) it cannot. Dropping those capabilities keeps root's
identity: it still reads its own files, and a file or directory without a write bit refuses
it as it would anyone else.
"""

from __future__ import annotations

import ctypes
import os

_VERSION_3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
_DROPPED = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def respect_file_modes() -> None:
    """From now on this process (not its parent) is refused what file modes refuse.

    Call it in a forked child: the capabilities cannot be taken back.
    """
    if os.geteuid() != 0:
        return  # an ordinary user is held to file modes already
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    mask = ~sum(1 << cap for cap in _DROPPED) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    probe = "/proc/self/status"
    with open(probe) as status:
        effective = next(line for line in status if line.startswith("CapEff:"))
    if int(effective.split()[1], 16) & (1 << _DROPPED[0]):
        raise AssertionError(f"CAP_DAC_OVERRIDE is still effective ({effective.strip()})")
