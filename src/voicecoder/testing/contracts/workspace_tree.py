"""
Hands on the working tree behind a `Workspace`: what the agent and the developer do to it in the contract.

`WorkspaceTree` is the protocol; `DiskTree` serves any adapter whose working tree is a git checkout on disk
(it stages and reads the index with the git CLI, as a developer would); `voicecoder.testing.fakes` has
`FakeWorkspaceTree` for `FakeWorkspace`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Final, Protocol

import attrs

from voicecoder.domain.model import CommitInfo, CommitMessage, TurnId
from voicecoder.domain.ports import Workspace

__all__ = ["MESSAGE", "SEED", "DiskTree", "WorkspaceTree", "commit_files"]

MESSAGE: Final = CommitMessage("Apply changes from Claude", "Prompt: add a greeting", (("Change-Id", "0123abcd"),))
SEED: Final = {"README.md": b"# demo\n", "src/app.py": b"def main():\n    return 1\n", "src/util.py": b"X = 1\n"}


class WorkspaceTree(Protocol):
    """Edits the working tree behind a workspace, as the coding agent or the developer would."""

    def write(self, path: str, data: bytes, *, executable: bool = False) -> None:
        """Create or overwrite the file *path* (slash-separated, relative), making way for it like `mkdir -p`."""
        ...

    def symlink(self, path: str, target: str) -> None:
        """Make *path* a symbolic link to *target*."""
        ...

    def delete(self, path: str) -> None:
        """Remove the file *path*, or the directory *path* with everything below it."""
        ...

    def chmod(self, path: str, *, executable: bool) -> None:
        """Set or clear the executable bit of *path*."""
        ...

    def stage(self, path: str = "") -> None:
        """`git add -A -- path`: the index takes the working tree's state of *path* (everything for "")."""
        ...

    def read(self, path: str) -> bytes:
        """The content of *path*."""
        ...

    def staged(self, path: str) -> bytes | None:
        """The content the index holds for *path* (None: not in the index)."""
        ...

    def committed(self, path: str) -> bytes | None:
        """The content HEAD holds for *path* (None: not in HEAD)."""
        ...

    def exists(self, path: str) -> bool:
        """Whether the file *path* exists."""
        ...

    def is_executable(self, path: str) -> bool:
        """Whether *path* has its executable bit set."""
        ...

    def is_symlink(self, path: str) -> bool:
        """Whether *path* is a symbolic link."""
        ...


_GIT_ENV: Final = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "developer",
    "GIT_AUTHOR_EMAIL": "developer@localhost",
    "GIT_COMMITTER_NAME": "developer",
    "GIT_COMMITTER_EMAIL": "developer@localhost",
}


@attrs.define
class DiskTree:
    """A `WorkspaceTree` over a git checkout on disk; the index is read and written with the git CLI."""

    root: Path

    def _path(self, path: str) -> Path:
        return self.root.joinpath(*path.split("/"))

    def _git(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
        git = shutil.which("git")
        if git is None:
            raise RuntimeError("DiskTree stages and reads the index with the git CLI: install git.")
        done = subprocess.run(
            [git, "-C", str(self.root), *args], capture_output=True, env={**os.environ, **_GIT_ENV}, check=False
        )
        if done.returncode not in ok:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
        return done

    def _make_way(self, target: Path) -> None:
        for parent in reversed(target.relative_to(self.root).parents):
            folder = self.root / parent
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                folder.unlink()
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)

    def write(self, path: str, data: bytes, *, executable: bool = False) -> None:
        target = self._path(path)
        self._make_way(target)
        target.write_bytes(data)
        self.chmod(path, executable=executable)

    def symlink(self, path: str, target: str) -> None:
        link = self._path(path)
        self._make_way(link)
        link.symlink_to(target)

    def delete(self, path: str) -> None:
        target = self._path(path)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()

    def chmod(self, path: str, *, executable: bool) -> None:
        target = self._path(path)
        mode = stat.S_IMODE(target.stat().st_mode)
        target.chmod(mode | 0o111 if executable else mode & ~0o111)

    def stage(self, path: str = "") -> None:
        if path and any((self.root / parent).is_symlink() for parent in Path(path).parents):
            # Below a symlink nothing exists for git; `git add` refuses such a pathspec, so drop the entry.
            self._git("update-index", "--force-remove", "--", path)
            return
        if path and not os.path.lexists(self._path(path)) and not self._git("ls-files", "--", path).stdout:
            return  # neither on disk nor in the index: `git add` would refuse the pathspec
        self._git("add", "-A", "--", path or ".")

    def read(self, path: str) -> bytes:
        target = self._path(path)
        return os.fsencode(target.readlink()) if target.is_symlink() else target.read_bytes()

    def staged(self, path: str) -> bytes | None:
        done = self._git("cat-file", "blob", f":{path}", ok=(0, 128))
        return done.stdout if done.returncode == 0 else None

    def committed(self, path: str) -> bytes | None:
        done = self._git("cat-file", "blob", f"HEAD:{path}", ok=(0, 128))
        return done.stdout if done.returncode == 0 else None

    def exists(self, path: str) -> bool:
        target = self._path(path)
        return target.is_symlink() or target.is_file()

    def is_executable(self, path: str) -> bool:
        return os.access(self._path(path), os.X_OK)

    def is_symlink(self, path: str) -> bool:
        return self._path(path).is_symlink()


async def commit_files(
    workspace: Workspace, tree: WorkspaceTree, files: dict[str, bytes], *, turn: str = "seed"
) -> CommitInfo:
    """Write *files* in a turn of their own and commit it: the usual way to give a test a history."""
    baseline = await workspace.begin_turn(TurnId(turn))
    for path, data in files.items():
        tree.write(path, data)
    baseline = (await workspace.end_turn(baseline)).baseline
    diff = await workspace.changes_since(baseline)
    commit = await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=CommitMessage(f"Add {turn}"))
    await workspace.release_turn(baseline)
    return commit
