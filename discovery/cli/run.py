"""`discovery run`: check the command line, set up logging, run the daemon on the wiring.

`--once` runs one daemon cycle in the foreground and exits with scan's codes (0, 1, 3, 4);
`--dry-run` plans and reports every cycle and never applies (a shadow deployment: it takes no
leader lock, so it never keeps the real replicas from writing).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from discovery import wiring
from discovery.cli.common import EXIT_RUNTIME, UsageError
from discovery.cli.scan import exit_code_for
from discovery.core.config import Config, parse_listen
from discovery.output.logs import Redactor, configure_logging
from discovery.registry.base import Registry
from discovery.registry.leader import AlwaysLeader, Leadership
from discovery.wiring import load_config

__all__ = ["cmd_run"]


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here: the one-shot commands never load the scheduler and the HTTP server.
    from discovery.daemon.process import NotLeader, run_daemon, run_once

    config_path = Path(args.config)
    config = load_config(config_path)
    listen = args.listen or config.server.listen
    try:
        # Parsed once, here, so a bad address is a usage error (exit 2) before anything starts.
        address = parse_listen(listen)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    redactor = configure_logging(
        level=args.log_level,
        log_format=args.log_format,
        stream=sys.stderr,
        redactor=Redactor(i for m in config.aws for i in m.external_ids),
    )
    before_commit = args.before_commit
    dry_run = bool(args.dry_run)

    def open_backend(config: Config, config_path: Path, /) -> tuple[Registry, Leadership]:
        # A backend this build lacks, or no DSN: a ConfigError, exit 2. The registry's applies
        # are fenced on the elector: they commit only while this replica holds the leader lock.
        if dry_run:  # never applies, so it needs no lock, and must not keep the writer out
            return wiring.open_registry(config, config_path), AlwaysLeader()
        return wiring.open_backend(config, config_path, before_commit=before_commit)

    if args.once:
        try:
            outcome = asyncio.run(
                run_once(
                    config=config,
                    config_path=config_path,
                    open_backend=open_backend,
                    open_source=wiring.open_source,
                    dry_run=dry_run,
                )
            )
        except NotLeader as exc:
            print(f"discovery: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
        if outcome.report is None:  # stopped before its plan: the log line says why
            return EXIT_RUNTIME
        return exit_code_for(outcome.report)

    return asyncio.run(
        run_daemon(
            config=config,
            config_path=config_path,
            listen=address,
            listen_fixed=args.listen is not None,
            redactor=redactor,
            open_backend=open_backend,
            open_source=wiring.open_source,
            dry_run=dry_run,
        )
    )
