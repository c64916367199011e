"""`discovery ...` as a test runs it: a subprocess, or the same `main` in this process.

A subprocess is the point where a test is about the process (its exit on a signal, its
environment, a crash); everywhere else `run_in_process` runs the same `main` with the same
environment, working directory, stdout and stderr as the subprocess would have, in a fraction
of the time (no interpreter start, no imports).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discovery.cli.main import main


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))


def run_subprocess(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> Result:
    """`python -m discovery ARGS` in a child process."""
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@contextlib.contextmanager
def _as_a_process(env: Mapping[str, str], cwd: Path) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """This process's environment, directory, streams and root logger, as a fresh process
    would have them, restored afterwards."""
    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    # main's logging setup (configure_logging) must install its own handler on the captured
    # stderr, as in a fresh process; pytest's capture handlers come back afterwards.
    root.handlers.clear()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def run_in_process(args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> Result:
    """`discovery ARGS` through `discovery.cli.main.main` in this process."""
    with _as_a_process(env, cwd) as (out, err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())
