#!/usr/bin/env python3
"""Set-up and checks with nothing but python3: `python3 tasks.py demo`, `test` and `setup`.

`python3 tasks.py soak [args]` runs the fault soak (`python -m tests.faults.soak`, see
docs/RELIABILITY.md; not part of `test`), e.g. `--cycles 1000 --backend postgres`.

`python3 tasks.py bench [args]` runs the fleet-scale benchmark (`python -m bench`, see
bench/RESULTS.md); arguments pass through, e.g. `--accounts 2 --no-peers`.

`python3 tasks.py lock` re-resolves requirements/*.lock from pyproject.toml (with uv, pinned
below); run it after changing a dependency and commit the locks with the change.

Creates `.venv` on first use (and again whenever pyproject.toml or the lock changes), installs
the locked, hash-checked dependencies (requirements/dev.lock) and then the project itself
without resolving anything, then runs the demo or the whole test suite plus the linters. `test`
first installs the tools some tests drive when they are missing: promtool into .cache/bin, and
Debian's chromium + chromium-driver (apt-get, as root) for the status page's browser test;
`setup` does the venv and chromium only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"
EXTRAS = "emulator,postgres,test"
TOOLS = ROOT / ".cache" / "bin"
LOCKS = ROOT / "requirements"
# What each lock holds: the image's runtime (core + postgres) and everything tasks.py installs.
LOCK_EXTRAS = {"runtime.lock": ["postgres"], "dev.lock": EXTRAS.split(",")}
UV = "uv==0.13.9"


def run(*cmd: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    if check and code != 0:
        sys.exit(code)
    return code


def ensure_venv() -> None:
    lock = LOCKS / "dev.lock"
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + lock.read_bytes() + EXTRAS.encode()
    ).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    create_venv()
    pip = (PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    run(*pip, "--upgrade", "pip")
    # Exactly the locked versions, each checked against its hash; then the project on top
    # without dependencies, so nothing is resolved here (tests/test_lock.py keeps lock and
    # pyproject.toml in agreement, `pip check` confirms the result).
    run(*pip, "--require-hashes", "-r", lock)
    run(*pip, "--no-deps", "-e", f".[{EXTRAS}]")
    STAMP.write_text(wanted)


def create_venv() -> None:
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)


def lock() -> int:
    """Re-resolve the locks from pyproject.toml: universal (any platform), hash-pinned."""
    create_venv()
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", UV)
    for name, extras in LOCK_EXTRAS.items():
        extra_args = [a for extra in extras for a in ("--extra", extra)]
        run(
            BIN / "uv", "pip", "compile", "--quiet", "pyproject.toml", *extra_args,
            "--generate-hashes", "--universal", "--python-version", "3.11",
            "--custom-compile-command", "python3 tasks.py lock", "-o", LOCKS / name,
        )  # fmt: skip
    print(f"wrote {', '.join(LOCK_EXTRAS)} in {LOCKS}")
    return 0


def ensure_promtool() -> None:
    """promtool (Prometheus' checker) from Debian's package, unpacked into .cache/bin.

    The tests check the metrics exposition and alert rules with it; there is no PyPI build.
    """
    target = TOOLS / "promtool"
    if target.exists() or shutil.which("promtool"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        if subprocess.call(["apt-get", "download", "prometheus"], cwd=tmp) != 0:
            # a fresh machine may have no package lists yet
            run("apt-get", "update", "-qq")
            subprocess.check_call(["apt-get", "download", "prometheus"], cwd=tmp)
        deb = next(Path(tmp).glob("prometheus_*.deb"))
        subprocess.check_call(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")])
        TOOLS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(tmp) / "x" / "usr" / "bin" / "promtool", target)
    print(f"installed {target}", flush=True)


def ensure_chromium() -> None:
    """Debian's headless Chromium and its WebDriver, for the status page's browser test.

    Installed with apt-get (CI runs as root on this machine). When it cannot be installed the
    browser test skips and says why; everything else still runs.
    """
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if not shutil.which("apt-get") or (hasattr(os, "geteuid") and os.geteuid() != 0):
        print("chromium not installed (needs root and apt-get): the browser test will skip")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    cmd.append("chromium-driver")
    if subprocess.call(cmd, env=env) != 0:
        # a fresh machine may have no package lists yet
        subprocess.call(["apt-get", "update", "-qq"], env=env)
        if subprocess.call(cmd, env=env) != 0:
            print("chromium could not be installed: the browser test will skip", flush=True)
            return
    print("installed chromium and chromium-driver", flush=True)


def test(extra: list[str]) -> int:
    failures: list[str] = []
    ensure_promtool()
    ensure_chromium()
    env_path = f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = env_path
    code = run(PY, "-m", "pytest", *extra, check=False)
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
    if code != 0:
        failures.append(f"pytest (exit {code})")
    checks = {
        "ruff check": [BIN / "ruff", "check", "discovery", "tests", "bench", "tasks.py"],
        "ruff format --check": [
            BIN / "ruff",
            "format",
            "--check",
            "discovery",
            "tests",
            "bench",
            "tasks.py",
        ],
        "mypy --strict discovery": [PY, "-m", "mypy", "--strict", "discovery"],
        # The layering contracts of pyproject.toml: no cycles, a pure core, nothing imports cli.
        "lint-imports": [BIN / "lint-imports", "--no-cache"],
        "pip check": [PY, "-m", "pip", "check"],
    }
    for name, cmd in checks.items():
        if run(*cmd, check=False) != 0:
            failures.append(name)
    if failures:
        print("FAILED: " + ", ".join(failures), file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench", "soak", "setup", "lock"}:
        print(
            "usage: python3 tasks.py demo | test [pytest args] | bench [bench args] "
            "| soak [soak args] | setup | lock",
            file=sys.stderr,
        )
        return 2
    if argv[0] == "lock":
        return lock()
    ensure_venv()
    if argv[0] == "demo":
        return run(BIN / "discovery", "demo", *argv[1:], check=False)
    if argv[0] == "test":
        return test(argv[1:])
    if argv[0] == "bench":
        return run(PY, "-m", "bench", *argv[1:], check=False)
    if argv[0] == "setup":
        ensure_chromium()
        return 0
    if argv[0] == "soak":
        return run(PY, "-m", "tests.faults.soak", *argv[1:], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
