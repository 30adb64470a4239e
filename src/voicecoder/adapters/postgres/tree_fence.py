"""
The disk side of a workspace lease: never two agents in one git tree, on the host that holds the tree.

The agent runs in its own session and outlives a worker that is killed with -9 (or paused); before a new owner
touches the tree it therefore stops every
agent still working in it — any process whose environment carries the agent run marker (``VOICECODER_AGENT_RUN``,
which the agent's own children inherit) and whose working directory is inside the tree — by killing their process
groups, and waits until they are gone. The same sweep is how a worker fences itself when its lease deadline passes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import attrs

from voicecoder.adapters.claude.process import MARKER_VAR, proc_alive

__all__ = ["TreeFence", "agents_in"]

log = logging.getLogger(__name__)

_NEEDLE = f"{MARKER_VAR}=".encode()


def _inside(cwd: str, root: str) -> bool:
    return cwd == root or cwd.startswith(root.rstrip("/") + "/")


def agents_in(tree: Path) -> list[int]:
    """Live agent processes (run marker in their environment) working inside *tree*, this process excluded."""
    root = str(tree.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cwd = str((entry / "cwd").readlink())
        except OSError:
            continue
        if any(var.startswith(_NEEDLE) for var in environ.split(b"\0")) and _inside(cwd, root):
            pid = int(entry.name)
            if proc_alive(pid):
                found.append(pid)
    return found


@attrs.define
class TreeFence:
    """The agent sweep of one workspace tree on this host."""

    tree: Path

    def stop_agents(self, *, timeout_s: float = 10.0) -> list[int]:
        """
        Kill the process group of every agent working in the tree and wait until none is left; the pids stopped.

        Raises:
            TimeoutError: Some survived SIGKILL for *timeout_s* (a process stuck in the kernel).
        """
        stopped: list[int] = []
        deadline = time.monotonic() + timeout_s
        while pids := agents_in(self.tree):
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            stopped.extend(p for p in pids if p not in stopped)
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent processes {pids} in {self.tree} outlived SIGKILL")
            time.sleep(0.02)
        if stopped:
            log.warning("fence: stopped %d agent process(es) left in %s", len(stopped), self.tree)
        return stopped
