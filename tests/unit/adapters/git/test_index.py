"""The index codec against git: what git writes we read, and what we write git reads."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest
from dulwich.objects import Blob
from dulwich.repo import Repo

from tests.gitoracle import git, git_bytes, init_repo, requires_git, write_clashing_index
from voicecoder.adapters.git.index import GitIndex
from voicecoder.domain.errors import WorkspaceError

pytestmark = requires_git


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    repo = init_repo(tmp_path / "repo", {"a.txt": b"a\n", "src/b.py": b"b\n", "src/deep/c.py": b"c\n"})
    (repo / "run.sh").write_bytes(b"#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("a.txt")
    git(repo, "add", "run.sh", "link")
    return repo


def index_path(repo: Path) -> str:
    return str(repo / ".git" / "index")


def ls_files(repo: Path) -> dict[bytes, tuple[int, bytes]]:
    """`git ls-files -s` as {path: (mode, hex sha)}."""
    out: dict[bytes, tuple[int, bytes]] = {}
    for line in git_bytes(repo, "ls-files", "-s", "-z").split(b"\0"):
        if line:
            meta, path = line.split(b"\t", 1)
            mode, sha, _ = meta.split()
            out[path] = (int(mode, 8), sha)
    return out


def _store(repo: Path, data: bytes) -> bytes:
    store = Repo(str(repo))
    obj = Blob.from_string(data)
    store.object_store.add_object(obj)
    store.close()
    return bytes(obj.id)


class TestGitIndex:
    def test_reads_what_git_wrote(self, repo: Path) -> None:
        """Entries, modes (executable, symlink) and the tracked directories agree with `git ls-files -s`."""
        index = GitIndex.load(index_path(repo))

        assert index.flat == ls_files(repo)
        assert index.tracked_dirs == {b"src": 2, b"src/deep": 1}
        assert index.flat[b"run.sh"][0] == 0o100755
        assert index.flat[b"link"][0] == 0o120000

    def test_patching_keeps_other_entries_byte_identical_and_git_reads_it(self, repo: Path) -> None:
        """Set one entry and remove one: git reads the result, and every other entry's bytes are unchanged."""
        before = GitIndex.load(index_path(repo))
        sha = _store(repo, b"new\n")

        data, parsed = before.patched({b"src/new.py": (0o100644, sha, None), b"a.txt": None})
        Path(index_path(repo)).write_bytes(data)

        assert ls_files(repo) == {
            **{k: v for k, v in before.flat.items() if k != b"a.txt"},
            b"src/new.py": (0o100644, sha),
        }
        kept = {name: raw for name, _, raw in before.raw if name != b"a.txt"}
        assert all(raw == kept[name] for name, _, raw in parsed.raw if name in kept)
        fresh = GitIndex.load(index_path(repo))
        assert attrs.evolve(parsed, key=fresh.key, mtime_ns=fresh.mtime_ns) == fresh
        git(repo, "write-tree")

    def test_patching_drops_entries_that_clash_as_file_and_directory(self, repo: Path) -> None:
        """Like `git add -A`: a file entry at src drops src/…, an entry below a.txt drops the file a.txt."""
        index = GitIndex.load(index_path(repo))
        sha = _store(repo, b"x\n")

        data, parsed = index.patched({b"src": (0o100644, sha, None), b"a.txt/inner": (0o100644, sha, None)})
        Path(index_path(repo)).write_bytes(data)

        assert set(ls_files(repo)) == {b"src", b"a.txt/inner", b"run.sh", b"link"}
        assert parsed.file_and_directory() == []
        git(repo, "write-tree")

    def test_stat_data_written_is_trusted_by_git(self, repo: Path) -> None:
        """An entry written with the file's lstat makes `git diff-files` see no change without re-reading it."""
        (repo / "a.txt").write_bytes(b"changed\n")
        sha = _store(repo, b"changed\n")
        index = GitIndex.load(index_path(repo))

        data, _ = index.patched({b"a.txt": (0o100644, sha, os.lstat(repo / "a.txt"))})
        Path(index_path(repo)).write_bytes(data)

        assert git(repo, "diff-files", "--name-only") == ""

    def test_a_file_and_directory_clash_is_refused_with_its_repair(self, repo: Path) -> None:
        """An index listing a name as a file and a directory is refused with the `git rm --cached` that fixes it."""
        write_clashing_index(repo, [b"clash", b"clash/inner.txt"], b"a\n")
        (repo / "clash").mkdir()
        index = GitIndex.load(index_path(repo))

        with pytest.raises(WorkspaceError, match=r"git rm --cached -q -- clash\b"):
            index.check_writable(os.fsencode(repo))

        assert index.file_and_directory() == [(b"clash", b"clash/inner.txt")]

    def test_the_repair_for_a_file_on_disk_removes_the_directory_entries(self, repo: Path) -> None:
        """When the name is a file on disk, the fix removes the entries below it instead."""
        write_clashing_index(repo, [b"clash", b"clash/inner.txt"], b"a\n")
        (repo / "clash").write_bytes(b"a\n")

        with pytest.raises(WorkspaceError, match=r"git rm -r --cached -q -- clash/"):
            GitIndex.load(index_path(repo)).check_writable(os.fsencode(repo))

    def test_a_corrupt_checksum_is_refused(self, repo: Path) -> None:
        """A flipped byte is reported with the command that repairs the index."""
        data = bytearray(Path(index_path(repo)).read_bytes())
        data[20] ^= 0xFF
        Path(index_path(repo)).write_bytes(bytes(data))

        with pytest.raises(WorkspaceError, match="git reset"):
            GitIndex.load(index_path(repo))

    def test_index_version_4_is_refused(self, repo: Path) -> None:
        """Format 4 (prefix-compressed names) is refused with the command that converts it."""
        git(repo, "update-index", "--index-version", "4")

        with pytest.raises(WorkspaceError, match="index-version 3"):
            GitIndex.load(index_path(repo))

    def test_a_missing_index_is_empty(self, tmp_path: Path) -> None:
        """A repository without an index file (no commit yet) has no entries."""
        index = GitIndex.load(str(tmp_path / "index"))

        assert (index.flat, index.raw, index.tracked_dirs) == ({}, [], {})
