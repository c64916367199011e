"""The TCP reachability probe of `doctor`: connect and close, like `nc -zv host port`.

Name resolution is a parameter so that tests answer it themselves: no test may ask the
machine's resolver about a name (a DNS query could leave the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

HOSTS_FILE = Path("/etc/hosts")


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    ok: bool
    code: str = ""
    message: str = ""
    seconds: float = 0.0


Probe = Callable[[str, int, float], Awaitable[ProbeResult]]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → the addresses to try, in order; raises `socket.gaierror` for unknown names."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The machine's resolver (getaddrinfo), as `asyncio.open_connection` would use it."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _connect(host: str, port: int, resolve: Resolver) -> asyncio.StreamWriter:
    addresses = await resolve(host, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    last: OSError | None = None
    for address in addresses:  # in order, like open_connection given the name
        try:
            _, writer = await asyncio.open_connection(address, port)
        except OSError as exc:
            last = exc
            continue
        return writer
    assert last is not None
    raise last


async def tcp_probe(
    host: str, port: int, timeout: float, *, resolve: Resolver = system_resolver
) -> ProbeResult:
    """Open a TCP connection and close it again, like `nc -zv host port`."""
    started = time.monotonic()
    try:
        writer = await asyncio.wait_for(_connect(host, port, resolve), timeout)
    except TimeoutError:
        return ProbeResult(ok=False, code="tcp-timeout", message=f"timed out after {timeout:g}s")
    except socket.gaierror as exc:
        return ProbeResult(
            ok=False, code="tcp-dns", message=f"cannot resolve {host}: {exc.strerror or exc}"
        )
    except ConnectionRefusedError:
        return ProbeResult(ok=False, code="tcp-refused", message="connection refused")
    except OSError as exc:
        return ProbeResult(ok=False, code="tcp-error", message=exc.strerror or str(exc))
    elapsed = time.monotonic() - started
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(ok=True, seconds=elapsed)


def hosts_file_names(path: Path = HOSTS_FILE) -> frozenset[str]:
    """The names the hosts file answers (lower case), so no DNS query is needed for them."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        names.update(name.lower().rstrip(".") for name in fields[1:])
    return frozenset(names)


def resolves_locally(host: str, local_names: frozenset[str]) -> bool:
    """An IP address, or a name the hosts file has: connecting to it asks no DNS server."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower().rstrip(".") in local_names
    return True
