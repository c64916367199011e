"""`discovery registry list | export | history | migrate | copy | adopt`: read, migrate, copy
the registry, or move ownership."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from discovery import wiring
from discovery.cli.common import EXIT_OK, EXIT_RUNTIME, UsageError
from discovery.core.config import Config
from discovery.core.journal import JournalEntry
from discovery.core.model import Resource, is_owned
from discovery.output.history import render_history_json, render_history_text
from discovery.output.report import format_table
from discovery.registry.base import RegistryConflict, RegistryError
from discovery.registry.copy import copy_registry
from discovery.registry.export import EXPORT_FORMATS, export_yaml, list_json
from discovery.registry.open import configured_sqlite_path, open_spec
from discovery.wiring import load_config

__all__ = [
    "cmd_registry",
    "cmd_registry_adopt",
    "cmd_registry_copy",
    "cmd_registry_history",
    "cmd_registry_migrate",
]


async def _list_registry(config: Config, config_path: Path) -> list[dict[str, object]]:
    # A reader: a registry that does not exist is an error naming it, never created here.
    registry = wiring.open_registry(config, config_path, read_only=True)
    try:
        stored = await registry.list_resources()
    finally:
        await registry.close()
    return [s.resource.to_dict() for s in stored]


def cmd_registry(args: argparse.Namespace) -> int:
    """`registry list` (a table, or every resource as JSON or YAML, as `tctl get db` prints
    them) and `registry export` (YAML or a JSON stream for `tctl create -f`)."""
    config_path = Path(args.config)
    config = load_config(config_path)
    docs = asyncio.run(_list_registry(config, config_path))
    resources = [Resource.from_dict(d) for d in docs]
    if args.registry_command == "export":
        return _export(args, config, resources)
    if args.output != "text":
        # `tctl get db --format=json` prints one array; `tctl create` reads a stream instead
        # (that is `registry export --format json`).
        sys.stdout.write((list_json if args.output == "json" else export_yaml)(resources))
        return EXIT_OK
    rows = [
        [
            r.name,
            "yes" if is_owned(r, config.discovery_group) else "no",
            r.protocol,
            r.uri,
            r.aws.account_id,
            r.aws.region,
        ]
        for r in resources
    ]
    print("\n".join(format_table(rows, ["NAME", "OWNED", "PROTOCOL", "URI", "ACCOUNT", "REGION"])))
    print(f"{len(resources)} resource(s)")
    return EXIT_OK


def _export(args: argparse.Namespace, config: Config, resources: list[Resource]) -> int:
    selected = (
        resources if args.all else [r for r in resources if is_owned(r, config.discovery_group)]
    )
    if not selected:
        # tctl rejects an input without a resource ("no resources found, empty input?"), so an
        # empty file is not something to hand it: say why there is nothing, write nothing.
        what = (
            "the registry is empty"
            if not resources
            else f"no resource in the registry belongs to discovery group "
            f"{config.discovery_group!r} ({len(resources)} other(s); --all exports them)"
        )
        print(
            f"discovery: registry export: nothing to export: {what}; tctl create rejects an "
            "empty input ('no resources found, empty input?'), run 'discovery scan' first",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    sys.stdout.write(EXPORT_FORMATS[args.format](selected))
    return EXIT_OK


def cmd_registry_history(args: argparse.Namespace) -> int:
    """`registry history`: the most recent applies of the journal, newest first."""
    config_path = Path(args.config)
    config = load_config(config_path)
    if config.registry.backend == "sqlite":
        path = configured_sqlite_path(config, config_path)
        if not path.is_file():  # reading must not create an empty registry
            raise RegistryError(
                f"registry {path} does not exist: check registry.path in {config_path} "
                "(relative paths are taken from the config's folder)"
            )
    entries = asyncio.run(_history(config, config_path, limit=args.limit))
    render = render_history_json if args.output == "json" else render_history_text
    sys.stdout.write(render(entries))
    return EXIT_OK


async def _history(config: Config, config_path: Path, *, limit: int) -> list[JournalEntry]:
    registry = wiring.open_registry(config, config_path)
    try:
        return await registry.history(limit=limit)
    finally:
        await registry.close()


async def _migrate_registry(config: Config, config_path: Path) -> str:
    if config.registry.backend == "teleport":
        return "registry teleport: a Teleport cluster has no schema of ours; nothing to do"
    registry = wiring.open_registry(config, config_path)
    try:
        if config.registry.backend == "sqlite":
            from discovery.registry.sqlite import SCHEMA_VERSION

            await registry.list_resources()  # SQLite migrates its file on first use
            return f"registry {config.registry.path}: schema is at version {SCHEMA_VERSION}"
        # Only a postgres build gets here: open_registry has already imported psycopg.
        from discovery.registry.postgres import PostgresRegistry

        assert isinstance(registry, PostgresRegistry)
        done = await registry.migrate()
        if done.before == done.after:
            return (
                f"registry {registry.where}: schema {done.schema!r} is already at version "
                f"{done.after}; nothing to do"
            )
        return (
            f"registry {registry.where}: migrated schema {done.schema!r} from version "
            f"{done.before} to {done.after}"
        )
    finally:
        await registry.close()


def cmd_registry_migrate(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    print(asyncio.run(_migrate_registry(load_config(config_path), config_path)))
    return EXIT_OK


async def _copy_registry(source_spec: str, target_spec: str, *, replace: bool) -> str:
    source, source_name = open_spec(source_spec, flag="--from", source=True)
    try:
        target, target_name = open_spec(target_spec, flag="--to", source=False)
        try:
            result = await copy_registry(source, target, replace=replace, target_name=target_name)
        except RegistryConflict as exc:
            raise RegistryError(
                f"{target_name} changed while the copy ran ({exc}); nothing was copied, "
                "stop the writers of the target and copy again"
            ) from exc
        finally:
            await target.close()
    finally:
        await source.close()
    return (
        f"copied {result.copied} resource(s) from {source_name} to {target_name} "
        f"(created {result.created}, updated {result.updated}, deleted {result.deleted}, "
        f"unchanged {result.unchanged})"
    )


def cmd_registry_copy(args: argparse.Namespace) -> int:
    print(asyncio.run(_copy_registry(args.source, args.target, replace=args.replace)))
    return EXIT_OK


def cmd_registry_adopt(args: argparse.Namespace) -> int:
    """`registry adopt --from-group OLD`: ownership moves into this config's group, explicitly."""
    config_path = Path(args.config)
    config = load_config(config_path)
    if args.from_group == config.discovery_group:
        raise UsageError(
            f"--from-group {args.from_group!r} is already discovery_group in {config_path}: "
            "name the group the resources belong to now"
        )
    try:
        adoption = asyncio.run(
            wiring.adopt_group(
                config, config_path, from_group=args.from_group, dry_run=args.dry_run
            )
        )
    except RegistryConflict as exc:
        raise RegistryError(
            f"the registry changed while adopt ran ({exc}); nothing was adopted, run it again"
        ) from exc
    verb = "would adopt" if args.dry_run else "adopted"
    for item in adoption.adopted:
        source = f"group {item.from_group!r}" if item.from_group else "no group"
        print(f"{verb} {item.name} (from {source})")
    done = f"{verb} {len(adoption.adopted)} resource(s) into discovery group {adoption.to_group!r}"
    if args.dry_run:
        print(f"{done}; nothing was written (run again without --dry-run to apply)")
    else:
        # A Teleport cluster has no transactions: a partial adopt raises PartialApply (exit 1).
        print(done if config.registry.backend == "teleport" else f"{done}, in one transaction")
    return EXIT_OK
