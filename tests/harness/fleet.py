"""Building and editing emulator fleet documents (see discovery/emulator/fleet.py).

Each suite keeps its own base fleet (the data its assertions are about); these are the pieces
they are built from and the edits tests make to them.
"""

from __future__ import annotations

from typing import Any


def proxy(
    name: str, *, family: str = "POSTGRESQL", tags: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A proxy tagged env=prod with one reader endpoint `NAME-ro` (names are unique per area)."""
    doc: dict[str, Any] = {
        "name": name,
        "engine_family": family,
        "tags": tags if tags is not None else {"env": "prod"},
        "endpoints": [{"name": f"{name}-ro", "target_role": "READ_ONLY"}],
    }
    doc.update(extra)
    return doc


def find_proxy(fleet: dict[str, Any], account: str, region: str, name: str) -> dict[str, Any]:
    """The live proxy document, so that a test can edit the fleet in place."""
    for acct in fleet["accounts"]:
        if acct["id"] == account:
            for p in acct["regions"][region]["proxies"]:
                if p["name"] == name:
                    return p
    raise KeyError(name)


def remove_proxy(fleet: dict[str, Any], account: str, region: str, name: str) -> None:
    for acct in fleet["accounts"]:
        if acct["id"] == account:
            proxies = acct["regions"][region]["proxies"]
            acct["regions"][region]["proxies"] = [p for p in proxies if p["name"] != name]
            return
    raise KeyError(account)


def resource_name(proxy_name: str, region: str, account: str) -> str:
    return f"{proxy_name}-rdsproxy-{region}-{account}"


def fleet_names(fleet: dict[str, Any]) -> set[str]:
    """The names discovery should hold for `fleet` (every proxy and its custom endpoints)."""
    names = set()
    for account in fleet["accounts"]:
        for region, spec in account["regions"].items():
            for p in spec["proxies"]:
                names.add(resource_name(p["name"], region, account["id"]))
                for e in p.get("endpoints", []):
                    names.add(resource_name(f"{p['name']}-{e['name']}", region, account["id"]))
    return names
