from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voicecoder.adapters.claude import host
from voicecoder.bootstrap import build_container, open_runtime
from voicecoder.config import Config

SECRET = "telegram-token-that-the-agent-must-not-read"

# The process that holds the secret: optionally hides its environment, says so, then waits for stdin to close.
TARGET = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("host", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
hidden = module.hide_own_environment() if sys.argv[2] == "hide" else False
print("hidden" if hidden else "visible", flush=True)
sys.stdin.read()
"""

# What an agent of the same user would try: read the other process's environment.
READER = """
import sys
try:
    data = open(f"/proc/{sys.argv[1]}/environ", "rb").read()
except PermissionError:
    print("denied")
else:
    print("read" if sys.argv[2].encode() in data else "not there")
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's")


def as_same_user() -> dict[str, Any]:
    """Both processes as one unprivileged user: root could read anything (CAP_SYS_PTRACE), so tests drop it."""
    return {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}


def attempt(mode: str) -> tuple[str, str]:
    """Start a target holding SECRET in *mode* ('hide' or 'keep'); return (its report, what a reader got)."""
    target = subprocess.Popen(
        [sys.executable, "-c", TARGET, host.__file__, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ["PATH"], "TELEGRAM_TOKEN": SECRET},
        cwd="/",
        **as_same_user(),
    )
    try:
        assert target.stdout is not None
        report = target.stdout.readline().strip()
        reader = subprocess.run(
            [sys.executable, "-c", READER, str(target.pid), SECRET],
            capture_output=True,
            text=True,
            check=True,
            cwd="/",
            **as_same_user(),
        )
        return report, reader.stdout.strip()
    finally:
        assert target.stdin is not None
        target.stdin.close()
        target.wait()
        assert target.stdout is not None
        target.stdout.close()


class TestHideOwnEnvironment:
    def test_a_same_user_process_cannot_read_it(self) -> None:
        """After hide_own_environment() another process of the same user cannot read /proc/<pid>/environ."""
        assert attempt("hide") == ("hidden", "denied")

    def test_without_it_the_environment_is_readable(self) -> None:
        """The control: without the call, the same reader reads the secret (so the test above can fail)."""
        assert attempt("keep") == ("visible", "read")

    async def test_the_service_hides_it_when_it_opens(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """open_runtime (serve, polling, the sandbox) makes the process non-dumpable before it opens anything."""
        calls: list[str] = []

        def hide() -> bool:
            calls.append("hidden")
            return True

        monkeypatch.setattr("voicecoder.bootstrap.runtime.hide_own_environment", hide)
        config = Config.from_mapping({"WORKSPACE_DIR": str(tmp_path / "ws"), "DATA_DIR": str(tmp_path / "data")})

        async with open_runtime(build_container(config), inbox=False):
            assert calls == ["hidden"]
