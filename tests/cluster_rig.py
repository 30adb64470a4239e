"""Cluster roles as real subprocesses (`voicecoder serve --role …`) against the session's PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

from tests.loopback import free_port

WEBHOOK_PATH = "/tg/cluster-hook-path-0123456789"
WEBHOOK_SECRET = "cluster-secret-token-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@attrs.define
class RoleProcess:
    """One `serve --role …` process; its output goes to a file, read by `output`."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hook(self) -> str:
        return self.url + WEBHOOK_PATH

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: a crash, nothing runs after it."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: a graceful stop; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def role_environment(tmp_path: Path, database_url: str | None, port: int, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "WORKSPACE_DIR": str(tmp_path / "ws"),
        "LOG_LEVEL": "INFO",
        "LISTEN_PORT": str(port),
        "WEBHOOK_PATH": WEBHOOK_PATH,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HF_HUB_OFFLINE": "1",
        "DATABASE_URL": database_url or "",
        **extra,
    }
    return {k: v for k, v in env.items() if v}


@contextlib.contextmanager
def running_role(
    tmp_path: Path,
    role: str,
    database_url: str | None,
    *,
    name: str,
    extra_args: tuple[str, ...] = (),
    **extra: str,
) -> Iterator[RoleProcess]:
    """Start `voicecoder serve --role ROLE` in *tmp_path*/*name*; stopped (SIGTERM, then SIGKILL) on exit."""
    home = tmp_path / name
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "output.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicecoder.entrypoints.cli", "serve", "--role", role, *extra_args],
            env=role_environment(home, database_url, port, **extra),
            cwd=home,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    handle = RoleProcess(process, log, port)
    try:
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
