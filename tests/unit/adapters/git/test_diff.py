"""The diff renderer against git: the same stats as `git diff --numstat`, and `git apply` takes every diff."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dulwich.objects import Blob
from dulwich.repo import Repo

from tests.gitoracle import git, init_repo, requires_git
from voicecoder.adapters.git.diff import file_diff
from voicecoder.adapters.git.trees import Entry
from voicecoder.domain.model import ChangeKind, Ownership

pytestmark = requires_git

CASES: dict[str, tuple[bytes | None, bytes | None]] = {
    "modified.txt": (
        b"".join(b"line %d\n" % i for i in range(20)),
        b"".join(b"line %d\n" % (i * 2) for i in range(20)),
    ),
    "added.txt": (None, b"new\nfile\n"),
    "deleted.txt": (b"old\n", None),
    "no-newline.txt": (b"a\nb", b"a\nc"),
    "crlf.txt": (b"a\r\nb\r\n", b"a\r\nB\r\n"),
    "latin1.txt": (b"caf\xe9\n", b"caf\xe9 cr\xe8me\n"),
    "binary.bin": (b"\x00\x01", b"\x00\x02"),
    "empty.txt": (None, b""),
    # Names git has to quote in a diff header, and ones it leaves alone.
    "new\nline.txt": (b"a\n", b"b\n"),
    "tab\there.txt": (None, b"b\n"),
    'quote".txt': (b"a\n", None),
    "back\\slash.txt": (b"a\n", b"b\n"),
    "sp ace.txt": (b"a\n", b"b\n"),
    "-rf": (b"a\n", b"b\n"),
    "ünï.txt": (b"a\n", b"b\n"),
}


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


def hash_object(data: bytes) -> bytes:
    """git's own id for *data* as a blob."""
    done = subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True)
    return done.stdout.strip()


def entry(repo: Repo, data: bytes | None, mode: int = 0o100644) -> Entry | None:
    if data is None:
        return None
    blob = Blob.from_string(data)
    repo.object_store.add_object(blob)
    return (mode, bytes(blob.id))


class TestFileDiff:
    @pytest.mark.parametrize("name", sorted(CASES))
    def test_git_applies_it_and_counts_the_same(self, repo: Path, name: str) -> None:
        """`git apply` of the rendered diff turns the old file into the new; the stats are git's numstat."""
        old, new = CASES[name]
        store = Repo(str(repo))
        before, after = entry(store, old), entry(store, new)
        text, change = file_diff(name.encode(), before, after, lambda sha: store.object_store[sha].as_raw_string())  # type: ignore[index]
        store.close()
        if old is not None:
            (repo / name).write_bytes(old)
        (repo.parent / "turn.patch").write_bytes(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", "before")

        if change.binary:
            assert b"Binary files" in text
            assert (change.additions, change.deletions) == (0, 0)
        else:
            git(repo, "apply", str(repo.parent / "turn.patch"))
            assert (repo / name).read_bytes() == new if new is not None else not (repo / name).exists()
            git(repo, "add", "-A")
            added, deleted, _ = git(repo, "diff", "--cached", "--numstat", "HEAD").split("\t")
            assert (change.additions, change.deletions) == (int(added), int(deleted))
        expected = ChangeKind.ADDED if old is None else ChangeKind.DELETED if new is None else ChangeKind.MODIFIED
        assert change.kind is expected

    def test_mode_only_changes_have_mode_lines(self, repo: Path) -> None:
        """A chmod is a mode-only change, rendered like git's `old mode`/`new mode`."""
        store = Repo(str(repo))
        before = entry(store, b"#!/bin/sh\n")
        assert before is not None
        text, change = file_diff(b"run.sh", before, (0o100755, before[1]), lambda sha: b"", owner=Ownership.BOTH)
        store.close()

        assert text == b"diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
        assert (change.kind, change.owner, change.new_mode) == (ChangeKind.MODE_CHANGED, Ownership.BOTH, 0o100755)

    def test_the_index_line_names_gits_blob_ids(self, repo: Path) -> None:
        """The abbreviated ids are the blobs' as git names them."""
        store = Repo(str(repo))
        before, after = entry(store, b"a\n"), entry(store, b"b\n")
        text, _ = file_diff(b"f", before, after, lambda sha: store.object_store[sha].as_raw_string())  # type: ignore[index]
        store.close()

        ids = [hash_object(data) for data in (b"a\n", b"b\n")]
        assert b"index %s..%s 100644\n" % (ids[0][:7], ids[1][:7]) in text

    @pytest.mark.parametrize("name", ["new\nline.txt", "tab\there.txt", 'quote".txt', "back\\slash.txt", "ünï.txt"])
    def test_names_are_quoted_as_git_quotes_them(self, repo: Path, name: str) -> None:
        """The headers are git's own (with core.quotePath=false: names in any script stay readable)."""
        (repo / name).write_bytes(b"a\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "before")
        (repo / name).write_bytes(b"b\n")
        store = Repo(str(repo))
        before, after = entry(store, b"a\n"), entry(store, b"b\n")
        text, _ = file_diff(name.encode(), before, after, lambda sha: store.object_store[sha].as_raw_string())  # type: ignore[index]
        store.close()

        headers = [line for line in git(repo, "diff").splitlines() if line.startswith(("diff --git", "---", "+++"))]
        ours = text.decode().splitlines()
        assert [ours[0], ours[2], ours[3]] == headers
