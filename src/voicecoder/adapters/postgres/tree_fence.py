"""
The disk side of a workspace lease: never two agents in one git tree, on the host that holds the tree.

The agent runs in its own session and outlives a worker that is killed with -9 (or paused); before a new owner
touches the tree it therefore stops every
agent still working in it — any process whose environment carries the agent run marker (``VOICECODER_AGENT_RUN``,
which the agent's own children inherit) and whose working directory is inside the tree — by killing their process
groups, and waits until they are gone. The same sweep is how a worker fences itself when its lease deadline passes.

The sweep misses an agent that left the tree (``cd /tmp``) and, above all, a stale *owner*: a worker paused past
its lease that would, when it wakes, finish an Approve or a turn in the tree in the few steps before its watchdog
fires. So the tree also has a **lock** (ADR 0030): the owner holds an exclusive ``flock`` on a file beside the tree
(``.<tree>.owner.lock``) for its whole ownership period, and every agent it starts in the tree inherits that
descriptor. The lock is free only when the owner and all its agents are gone. A new owner sweeps, then takes the
lock (`TreeFence.take`); whatever still holds it — the process that took it, from ``/proc/locks`` (readable even
when that worker made itself non-dumpable), and every process with the file open, from ``/proc/*/fd`` (its
agents) — is a stale owner or an orphan on this host: agents and stopped (paused) processes are killed at once,
a running owner gets a short grace to finish fencing itself and is then killed too (STONITH on the host that holds
the tree). The workers of one host must therefore share a PID namespace (``pid: host`` in the compose file).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from pathlib import Path

import attrs

from voicecoder.adapters.claude.process import MARKER_VAR, lend_to_agents, proc_alive, proc_state

__all__ = ["TreeFence", "agents_in", "holders_of", "lock_owners", "lock_path"]

log = logging.getLogger(__name__)

_NEEDLE = f"{MARKER_VAR}=".encode()


def _inside(cwd: str, root: str) -> bool:
    return cwd == root or cwd.startswith(root.rstrip("/") + "/")


def _is_agent(pid: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(var.startswith(_NEEDLE) for var in environ.split(b"\0"))


def lock_path(tree: Path) -> Path:
    """The owner lock of *tree*: beside it, so git never sees it and it exists before the tree is cloned."""
    return tree.parent / f".{tree.name}.owner.lock"


def lock_owners(path: Path) -> list[int]:
    """The processes ``/proc/locks`` names as holding a lock on *path* (those that took it, not who inherited it)."""
    try:
        target = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return []
    where = f"{os.major(target.st_dev):02x}:{os.minor(target.st_dev):02x}:{target.st_ino}"
    owners = []
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF" (a blocked waiter's line has "->" after the number)
        if fields[1:2] == ["->"]:
            continue
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where and fields[4].isdigit():
            owners.append(int(fields[4]))
    return owners


def holders_of(path: Path) -> list[int]:
    """Live processes other than this one that hold *path*'s lock or have *path* open."""
    try:
        target = path.stat()
    except OSError:
        return []
    found = [pid for pid in lock_owners(path) if pid != os.getpid() and proc_alive(pid)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                st = fd.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                if proc_alive(int(entry.name)) and int(entry.name) not in found:
                    found.append(int(entry.name))
                break
    return found


def agents_in(tree: Path) -> list[int]:
    """Live agent processes (run marker in their environment) working inside *tree*, this process excluded."""
    root = str(tree.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = str((entry / "cwd").readlink())
        except OSError:
            continue
        pid = int(entry.name)
        if _inside(cwd, root) and _is_agent(pid) and proc_alive(pid):
            found.append(pid)
    return found


@attrs.define
class TreeFence:
    """The agent sweep and the owner lock of one workspace tree on this host."""

    tree: Path
    _fd: int | None = attrs.field(default=None, init=False)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self, *, grace_s: float = 2.0, timeout_s: float = 10.0) -> list[int]:
        """
        Take the tree's owner lock for this process (its agents inherit it); the pids killed to get it.

        Holders that are agents or stopped are killed at once; a running one (a stale owner fencing itself) gets
        *grace_s* to let go, then is killed. Taking it again while held is a no-op.

        Raises:
            TimeoutError: The lock was still held *timeout_s* after the holders were killed.
            OSError: The lock file cannot be created or locked.
        """
        if self._fd is not None:
            return []
        path = lock_path(self.tree)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            killed = _lock_killing_holders(fd, path, grace_s=grace_s, timeout_s=timeout_s)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        lend_to_agents(self.tree, fd)
        if killed:
            log.warning("fence: killed %d stale holder(s) of the lock of %s: %s", len(killed), self.tree, killed)
        return killed

    def release(self) -> None:
        """Let go of the owner lock (the end of an ownership period, after the agents are stopped)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            lend_to_agents(self.tree, None)
            os.close(fd)

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


def _lock_killing_holders(fd: int, path: Path, *, grace_s: float, timeout_s: float) -> list[int]:
    killed: list[int] = []
    start = time.monotonic()
    while not _try_lock(fd):
        waited = time.monotonic() - start
        if waited > grace_s + timeout_s:
            raise TimeoutError(f"the owner lock {path} is still held by {holders_of(path)} after SIGKILL")
        for pid in holders_of(path):
            if pid not in killed and (_is_agent(pid) or proc_state(pid) in {"T", "t"} or waited > grace_s):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.02)
    return killed


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
