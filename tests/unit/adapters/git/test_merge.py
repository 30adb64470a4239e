"""The three-way hunk logic against `git merge-file`."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.gitoracle import requires_git
from voicecoder.adapters.git.merge import OVERLAP, merge3, merge_versions, split_lines

pytestmark = requires_git

REGULAR = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000


def git_merge_file(base: bytes, ours: bytes, theirs: bytes) -> bytes | None:
    """git's own three-way merge of one file: the result, or None on a conflict."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_bytes(data)
            paths.append(str(path))
        done = subprocess.run(["git", "merge-file", "-p", *paths], capture_output=True, check=False)
    if done.returncode < 0 or done.returncode > 127:
        pytest.fail(f"git merge-file failed: {done.stderr!r}")
    return done.stdout if done.returncode == 0 else None


class _Store:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def put(self, data: bytes) -> bytes:
        sha = hashlib.sha1(data).hexdigest().encode()
        self.data[sha] = data
        return sha

    def read(self, sha: bytes) -> bytes:
        return self.data[sha]


@st.composite
def edited(draw: st.DrawFn, base: list[bytes], tag: str) -> list[bytes]:
    """*base* with a few lines deleted, replaced or inserted (new lines are unique, so alignment is unambiguous)."""
    out = list(base)
    for n in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        fresh = [f"{tag}{n}.{i}\n".encode() for i in range(draw(st.integers(1, 2)))]
        if kind == "insert" or at == len(out):
            out[at:at] = fresh
        elif kind == "delete":
            del out[at : at + draw(st.integers(1, 2))]
        else:
            out[at : at + 1] = fresh
    return out


BASES = st.integers(0, 8).map(lambda n: [f"line {i}\n".encode() for i in range(n)])


class TestMerge3:
    def test_disjoint_edits_merge_like_git(self) -> None:
        """Edits far apart merge, and the result is git's."""
        base = b"".join(b"%d\n" % i for i in range(10))
        ours = base.replace(b"1\n", b"one\n", 1)
        theirs = base.replace(b"8\n", b"eight\n")

        merged = merge3(base, ours, theirs)

        assert merged == git_merge_file(base, ours, theirs)
        assert merged is not None
        assert b"one\n" in merged
        assert b"eight\n" in merged

    def test_overlapping_edits_are_refused_like_git(self) -> None:
        """Both sides changing one line is an overlap, for git too."""
        base, ours, theirs = b"a\nb\nc\n", b"a\nB1\nc\n", b"a\nB2\nc\n"

        assert merge3(base, ours, theirs) is None
        assert git_merge_file(base, ours, theirs) is None

    def test_touching_edits_combine_where_git_refuses(self) -> None:
        """The issue's case 2: a deleted line next to an appended one; git calls it a conflict, we combine."""
        base, head, agent = b"one\nuser-edit\n", b"one\n", b"one\nuser-edit\nagent-line\n"

        assert merge3(base, head, agent) == b"one\nagent-line\n"
        assert git_merge_file(base, head, agent) is None

    def test_two_insertions_at_one_place_overlap(self) -> None:
        """Which goes first is unknowable: refused."""
        assert merge3(b"a\nb\n", b"a\nX\nb\n", b"a\nY\nb\n") is None

    def test_the_same_edit_on_both_sides_counts_once(self) -> None:
        """Identical hunks are one change (git agrees)."""
        base, both = b"a\nb\nc\n", b"a\nB\nc\n"
        ours = both + b"d\n"

        assert merge3(base, ours, both) == ours
        assert git_merge_file(base, ours, both) == ours

    def test_crlf_and_missing_final_newline_are_kept(self) -> None:
        """CR stays part of a line and a last line without LF stays without it."""
        base = b"a\r\nb\r\nc"
        ours = b"A\r\nb\r\nc"
        theirs = b"a\r\nb\r\nC"

        assert merge3(base, ours, theirs) == b"A\r\nb\r\nC"
        assert merge3(base, ours, theirs) == git_merge_file(base, ours, theirs)

    def test_binary_content_never_merges(self) -> None:
        """Two different edits of a binary file are an overlap."""
        assert merge3(b"\x00a", b"\x00b", b"\x00c") is None
        assert merge3(b"\x00a", b"\x00a", b"\x00c") == b"\x00c"

    @given(data=st.data(), base=BASES)
    def test_agrees_with_git_wherever_git_merges(self, data: st.DataObject, base: list[bytes]) -> None:
        """
        On random edits: where git merges cleanly we produce git's result; where we merge and git does not,
        our result still holds every line each side added and none either side deleted.
        """
        ours = data.draw(edited(base, "o"))
        theirs = data.draw(edited(base, "t"))
        b, o, t = (b"".join(lines) for lines in (base, ours, theirs))

        mine = merge3(b, o, t)
        gits = git_merge_file(b, o, t)

        if gits is not None:
            assert mine == gits
        elif mine is not None:
            lines = split_lines(mine)
            for side in (ours, theirs):
                assert all(line in lines for line in side if line not in base)
                assert all(line not in lines for line in base if line not in side)


class TestMergeVersions:
    def test_one_sided_changes_need_no_content(self) -> None:
        """Whole-path changes on one side only: that side wins, nothing is read."""
        a, b = (REGULAR, b"a"), (EXECUTABLE, b"b")

        def read(_: bytes) -> bytes:
            raise AssertionError("nothing to read")

        assert merge_versions(a, a, b, read=read, store=read) == b
        assert merge_versions(a, b, a, read=read, store=read) == b
        assert merge_versions(a, None, None, read=read, store=read) is None
        assert merge_versions(None, a, a, read=read, store=read) == a

    def test_delete_against_edit_and_symlinks_overlap(self) -> None:
        """Deleting a file the other side edited, or two different symlink targets, cannot be merged."""
        store = _Store()
        base = (REGULAR, store.put(b"x\n"))
        edit = (REGULAR, store.put(b"y\n"))
        links = [(SYMLINK, store.put(target)) for target in (b"a", b"b", b"c")]

        assert merge_versions(base, None, edit, read=store.read, store=store.put) is OVERLAP
        assert merge_versions(None, base, edit, read=store.read, store=store.put) is OVERLAP
        assert merge_versions(*links, read=store.read, store=store.put) is OVERLAP

    def test_mode_and_content_merge_separately(self) -> None:
        """One side sets the executable bit, the other edits a line: both survive."""
        store = _Store()
        base = (REGULAR, store.put(b"a\nb\nc\nd\n"))
        ours = (EXECUTABLE, store.put(b"a\nb\nc\nd\n"))
        theirs = (REGULAR, store.put(b"a\nb\nc\nD\n"))

        merged = merge_versions(base, ours, theirs, read=store.read, store=store.put)

        assert merged == (EXECUTABLE, store.put(b"a\nb\nc\nD\n"))

    def test_conflicting_modes_overlap(self) -> None:
        """A regular file turned into a symlink on one side and edited on the other overlaps."""
        store = _Store()
        base = (REGULAR, store.put(b"a\n"))

        assert (
            merge_versions(
                base, (SYMLINK, store.put(b"t")), (REGULAR, store.put(b"b\n")), read=store.read, store=store.put
            )
            is OVERLAP
        )
