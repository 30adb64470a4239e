"""The worktree scanner and writer against git: we see the tree `git add -A` would stage, and write it back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dulwich.repo import Repo

from tests.gitoracle import git_bytes, init_repo, porcelain, requires_git, worktree_tree
from voicecoder.adapters.git.index import GitIndex
from voicecoder.adapters.git.scan import Worktree
from voicecoder.adapters.git.trees import TreeStore

pytestmark = requires_git


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Path:
    return init_repo(
        tmp_path / "repo", {".gitignore": b"*.log\nbuild/\n", "a.txt": b"a\n", "src/b.py": b"b\n", "run.sh": b"r\n"}
    )


def scan(path: Path, *, durable: bool = True) -> dict[bytes, tuple[int, bytes]]:
    repo = Repo(str(path))
    try:
        return Worktree(os.fsencode(path)).scan(repo, GitIndex.load(repo.index_path()), durable=durable).entries
    finally:
        repo.close()


def git_sees(path: Path) -> dict[bytes, tuple[int, bytes]]:
    """Every file `git add -A` would stage, as {path: (mode, sha)}."""
    repo = Repo(str(path))
    try:
        return TreeStore().flatten(repo.object_store, worktree_tree(path).encode())
    finally:
        repo.close()


class TestScan:
    def test_sees_what_git_add_all_would_stage(self, path: Path) -> None:
        """Modified, untracked, executable, symlinked, non-UTF-8 and CRLF files; ignored ones and nested repos not."""
        (path / "a.txt").write_bytes(b"changed\r\n")
        (path / "run.sh").chmod(0o755)
        (path / "new").mkdir()
        (path / "new" / "file.txt").write_bytes(b"new\n")
        (path / "link").symlink_to("a.txt")
        (path / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"caf\xe9\n")
        (path / "debug.log").write_bytes(b"ignored\n")
        (path / "build").mkdir()
        (path / "build" / "out.o").write_bytes(b"ignored\n")
        init_repo(path / "vendor" / "lib", {"x.py": b"x\n"})
        (path / "src" / "b.py").unlink()

        seen = scan(path)

        git_view = git_sees(path)
        # git would stage the nested repository as an embedded one (with a warning); a turn leaves it out.
        assert git_view.pop(b"vendor/lib")[0] == 0o160000
        assert seen == git_view
        assert b"caf\xe9.txt" in seen
        assert b"debug.log" not in seen

    def test_a_same_size_edit_in_the_same_tick_is_seen(self, path: Path) -> None:
        """Racy git: an edit that keeps size and mtime second is hashed, not trusted from the index."""
        first = scan(path)
        (path / "a.txt").write_bytes(b"b\n")

        assert scan(path)[b"a.txt"] != first[b"a.txt"]
        assert scan(path) == git_sees(path)

    def test_scans_without_durability_store_nothing(self, path: Path) -> None:
        """A look at the tree (the diff) writes no objects."""
        (path / "new.txt").write_bytes(b"only looked at\n")
        objects = sorted(p for p in (path / ".git" / "objects").rglob("*") if p.is_file())

        seen = scan(path, durable=False)

        assert b"new.txt" in seen
        assert sorted(p for p in (path / ".git" / "objects").rglob("*") if p.is_file()) == objects


class TestWrite:
    def test_writes_files_modes_and_symlinks_as_git_would_check_them_out(self, path: Path) -> None:
        """Entries written back give a tree with exactly those entries (git agrees), and nothing else moves."""
        repo = Repo(str(path))
        before = scan(path)
        (path / "a.txt").write_bytes(b"agent\n")
        (path / "src" / "b.py").unlink()
        (path / "gone.txt").write_bytes(b"agent\n")
        (path / "notes.log").write_bytes(b"ignored, kept\n")
        worktree = Worktree(os.fsencode(path))
        current = worktree.scan(repo, GitIndex.load(repo.index_path()))
        targets = {b"a.txt": before[b"a.txt"], b"src/b.py": before[b"src/b.py"], b"gone.txt": None}

        worktree.write(targets, current, lambda sha: repo.object_store[sha].as_raw_string())  # type: ignore[index]

        assert scan(path) == before
        assert porcelain(path) == set()
        assert (path / "notes.log").read_bytes() == b"ignored, kept\n"
        repo.close()

    def test_a_file_becomes_a_directory_and_back(self, path: Path) -> None:
        """`src` (a directory) becomes a file and `a.txt` (a file) a directory, emptied directories removed."""
        repo = Repo(str(path))
        worktree = Worktree(os.fsencode(path))
        current = worktree.scan(repo, GitIndex.load(repo.index_path()))
        a_blob = current.entries[b"a.txt"]

        worktree.write(
            {b"src/b.py": None, b"src": a_blob, b"a.txt": None, b"a.txt/inner": a_blob},
            current,
            lambda sha: repo.object_store[sha].as_raw_string(),  # type: ignore[index]
        )

        assert (path / "src").read_bytes() == b"a\n"
        assert (path / "a.txt" / "inner").read_bytes() == b"a\n"
        assert git_bytes(path, "status", "--porcelain", "-uall").count(b"\n") == 4
        repo.close()

    def test_blocked_names_what_would_touch_other_files(self, path: Path) -> None:
        """A file cannot replace a directory holding other (even ignored) files, nor go below a symlink."""
        (path / "src" / "trace.log").write_bytes(b"ignored\n")
        (path / "ln").symlink_to("src")
        repo = Repo(str(path))
        worktree = Worktree(os.fsencode(path))
        current = worktree.scan(repo, GitIndex.load(repo.index_path()))
        entry = current.entries[b"a.txt"]

        blocked = worktree.blocked({b"src/b.py": None, b"src": entry, b"ln/x": entry, b"fine.txt": entry}, current)

        assert blocked == {b"src", b"ln/x"}
        repo.close()
