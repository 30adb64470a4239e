"""
The tree's owner lock (ADR 0030), with real processes and real ``flock``s.

A new owner takes the lock; a stale holder is killed at once when it is stopped (paused) or an agent, after a
grace when it is a running process (a stale owner fencing itself), and not at all when it lets go in time. Agents
started in the tree inherit the owner's descriptor, so the lock outlives the owner while an agent it started lives.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicecoder.adapters.claude.process import CliProcess, proc_alive
from voicecoder.adapters.postgres.tree_fence import TreeFence, holders_of, lock_owners, lock_path

# Takes the lock of argv[1] (blocking), says so, then holds it for argv[2] seconds.
HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


@pytest.fixture(name="tree")
def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "h1" / "ws"
    tree.mkdir(parents=True)
    return tree


@pytest.fixture(name="holders")
def _holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def hold(tree: Path, holders: list[subprocess.Popen[str]], seconds: float) -> subprocess.Popen[str]:
    """A separate process holding *tree*'s lock (it has reported so when this returns)."""
    path = lock_path(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    holders.append(child)
    assert child.stdout is not None
    assert child.stdout.readline() == "locked\n"
    return child


def lock_is_free(tree: Path) -> bool:
    """Whether another open file description could take the lock now (it is let go at once if so)."""
    fd = os.open(lock_path(tree), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_free_lock_is_taken_and_let_go(tree: Path) -> None:
    fence = TreeFence(tree)

    assert fence.take() == []
    assert fence.held
    assert not lock_is_free(tree)
    assert fence.take() == []  # taking it again is a no-op
    fence.release()

    assert lock_is_free(tree)
    assert not (tree / lock_path(tree).name).exists()  # beside the tree, never in it


def test_a_paused_holder_is_killed_at_once(tree: Path, holders: list[subprocess.Popen[str]]) -> None:
    """A stale owner that is stopped (SIGSTOP, a long pause) never lets go: it is killed without waiting."""
    stale = hold(tree, holders, 600)
    stale.send_signal(signal.SIGSTOP)
    fence = TreeFence(tree)

    killed = fence.take(grace_s=600)

    assert killed == [stale.pid]
    assert stale.wait(timeout=10) == -signal.SIGKILL
    fence.release()


def test_the_kernel_names_the_process_that_took_the_lock(tree: Path, holders: list[subprocess.Popen[str]]) -> None:
    """
    ``/proc/locks`` gives the holder even when its descriptors cannot be read (a worker is non-dumpable, so another
    process of its user cannot list its /proc/PID/fd).
    """
    assert lock_owners(lock_path(tree)) == []
    stale = hold(tree, holders, 600)

    assert lock_owners(lock_path(tree)) == [stale.pid]


def test_a_running_holder_that_lets_go_in_time_is_not_killed(tree: Path, holders: list[subprocess.Popen[str]]) -> None:
    """A stale owner fencing itself releases the lock within the grace: nothing is killed."""
    stale = hold(tree, holders, 0.3)
    fence = TreeFence(tree)

    assert fence.take(grace_s=30) == []
    assert stale.wait(timeout=10) == 0
    fence.release()


def test_a_running_holder_is_killed_after_the_grace(tree: Path, holders: list[subprocess.Popen[str]]) -> None:
    stale = hold(tree, holders, 600)
    fence = TreeFence(tree)

    assert fence.take(grace_s=0.2) == [stale.pid]
    assert stale.wait(timeout=10) == -signal.SIGKILL
    fence.release()


async def test_an_agent_started_in_the_tree_holds_the_lock_after_its_owner_let_go(tree: Path) -> None:
    """
    The agent inherits the owner's descriptor wherever it goes: the lock stays held after the owner releases it,
    so the next owner kills the agent (here: one that left the tree, which the marker sweep cannot see).
    """
    owner = TreeFence(tree)
    owner.take()
    agent = await CliProcess.start(
        ["sh", "-c", "cd / && exec sleep 600"], cwd=tree, env={"PATH": os.environ["PATH"]}, session_id="s"
    )
    try:
        assert agent.pid in holders_of(lock_path(tree))
        owner.release()
        assert not lock_is_free(tree)

        successor = TreeFence(tree)
        assert successor.stop_agents() == []  # out of the tree: the sweep misses it
        killed = successor.take(grace_s=600)

        assert killed == [agent.pid]
        assert not proc_alive(agent.pid)
        successor.release()
    finally:
        await agent.close()
