"""
`DulwichWorkspace` leaves the process umask alone (an embedding process has other threads that create files), and
the files it writes back get the mode that umask implies, as git's checkout does.

Only the public name and the `Workspace` port are used, so this holds wherever the adapter's module lives.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicecoder.adapters import DulwichWorkspace
from voicecoder.domain.model import TurnId


def current_umask() -> int:
    # Reading the umask means setting it; a test is the one place where that is harmless.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(before)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


async def test_constructing_and_opening_keep_the_umask(tmp_path: Path, umask: int) -> None:
    workspace = DulwichWorkspace(tmp_path / "ws")
    assert current_umask() == umask

    await workspace.open()
    await workspace.status()

    assert current_umask() == umask


async def test_restored_files_get_the_mode_the_umask_implies(tmp_path: Path, umask: int) -> None:
    """Reject puts back a deleted file and an executable one: 0666 and 0777 minus the process umask."""
    repo = tmp_path / "ws"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "notes.txt").write_text("notes\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "run.sh").chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init")
    workspace = DulwichWorkspace(repo)
    await workspace.open()

    baseline = await workspace.begin_turn(TurnId("t1"))
    (repo / "notes.txt").unlink()
    (repo / "run.sh").unlink()
    await workspace.restore_turn(baseline)

    assert stat.S_IMODE((repo / "notes.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((repo / "run.sh").stat().st_mode) == 0o777 & ~umask
    assert (repo / "notes.txt").read_text() == "notes\n"
    assert git(repo, "status", "--porcelain") == ""
    assert current_umask() == umask
