"""
`DulwichWorkspace`: every agent turn is a transaction on a real git repository, done with dulwich.

A turn starts with a *checkpoint*: the working tree (tracked and untracked-but-not-ignored files) is
written as git objects and recorded as a commit under ``refs/voicecoder/checkpoints/<turn_id>``. Its
first parent is HEAD; when the index differs from HEAD a second parent records the index, so the
checkpoint survives a restart and Reject can put the index entries back too. The user's index is never
touched by a checkpoint.

The working tree is read with one ``scandir`` walk. A file whose lstat (mtime, ctime, size, inode, mode)
matches its index entry, and is not racily clean, takes the sha from the index; every other file is
hashed once and remembered in an in-memory stat cache under a similar rule. The index (v2/v3) is read
and patched as raw entries. Trees are built incrementally from HEAD's or the index's tree, rewriting
only the directories on changed paths.

dulwich is blocking: every operation runs in a worker thread behind one `anyio.Lock` per workspace.
"""

# The working tree is handled as bytes paths through `os` (file names need not be UTF-8), not pathlib.
# ruff: noqa: PTH103, PTH105, PTH106, PTH108, PTH112, PTH114, PTH115, PTH116, PTH120, PTH123, PTH211

from __future__ import annotations

import bisect
import contextlib
import difflib
import functools
import hashlib
import logging
import os
import stat
import struct
import time
from binascii import hexlify
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
import attrs
from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked, GitFile
from dulwich.ignore import IgnoreFilterManager
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from voicecoder.domain.errors import (
    NotARepositoryError,
    StaleChangeError,
    VoicecoderError,
    WorkspaceConflictError,
    WorkspaceError,
)
from voicecoder.domain.model import (
    Baseline,
    ChangeKind,
    CommitInfo,
    CommitMessage,
    Diagnostic,
    Diff,
    FileChange,
    TurnId,
    WorkspaceStatus,
)

__all__ = ["CHECKPOINT_PREFIX", "DulwichWorkspace"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CHECKPOINT_PREFIX = b"refs/voicecoder/checkpoints/"
_HEAD = Ref(b"HEAD")
_REGULAR = 0o100644
_EXECUTABLE = 0o100755
_SYMLINK = 0o120000
_GITLINK = 0o160000
_DIRECTORY = 0o040000
_NULL_SHA = b"0" * 40
# A file is trusted from a stat cache only if its mtime is this much older than the moment we looked:
# kernels stamp files with a coarse clock, so two writes within one tick can share an mtime.
_RACY_NS = 100_000_000
_MEMO_LIMIT = 200_000
_FLAT_CACHE_LIMIT = 16
_BINARY_SNIFF = 8000
_EMPTY_TREE = Tree().id
_FRESH_LIMIT = 1 << 20
_FRESH_FILES = 256  # at most 256 MiB held in memory by one scan; beyond that, contents go to the store
_EXACT_DIFF_LINES = 20_000

Entry = tuple[int, bytes]
"""(git mode, hex sha) of one path."""
Flat = dict[bytes, Entry]
"""A tree as a map from slash-separated byte path to entry."""
Change = tuple[Entry | None, Entry | None]
"""(before, after) of one path; None means absent."""
IndexUpdates = dict[bytes, tuple[int, bytes, os.stat_result | None] | None]
"""Index entries to set (mode, hex sha, stat or None for "unknown") or to remove (None)."""


@attrs.frozen
class _Scan:
    """The working tree as git would see it, with the lstat of every file that was read."""

    entries: Flat
    stats: dict[bytes, os.stat_result]
    fresh: dict[bytes, bytes] = attrs.field(factory=dict)
    """Content of files hashed but not written to the object store (scans that need no durability)."""


_ENTRY = struct.Struct(">10L20sH")
_M32 = 0xFFFFFFFF
_FLAG_EXTENDED = 0x4000
_SKIP_WORKTREE = 0x4000
_NAME_MASK = 0xFFF


@attrs.define
class _GitIndex:
    """
    The index file (versions 2 and 3), parsed just enough for us and patched in place.

    dulwich's `Index` reads and writes every entry through Python objects (about 60 ms each way at 10k
    entries); here entries are kept as raw byte slices, so changing a few entries rewrites the file in
    a few milliseconds and leaves every other entry byte-identical.
    """

    key: tuple[int, int, int]
    mtime_ns: int
    version: int
    stat: dict[bytes, tuple[int, int, int, int, bytes, int]]
    """Stage-0 entries: path -> (mtime_ns, size & 0xffffffff, inode & 0xffffffff, mode, hex sha, ctime_ns)."""
    raw: list[tuple[bytes, int, bytes]]
    """Every entry in file order: (path, stage, raw bytes)."""
    extensions: list[tuple[bytes, bytes]]
    conflicted: frozenset[bytes]
    skip_worktree: frozenset[bytes]
    flat: Flat
    tracked_dirs: dict[bytes, int]
    """Every directory holding index entries, with the number of entries below it."""

    @classmethod
    def load(cls, path: str) -> _GitIndex:
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return cls.parse(b"", (0, 0, 0), 0)
        return cls.parse(data, (st.st_mtime_ns, st.st_size, st.st_ino), st.st_mtime_ns)

    @classmethod
    def parse(cls, data: bytes, key: tuple[int, int, int], mtime_ns: int) -> _GitIndex:
        if not data:
            return cls(key, mtime_ns, 2, {}, [], [], frozenset(), frozenset(), {}, {})
        signature, version, count = struct.unpack_from(">4sLL", data, 0)
        if signature != b"DIRC" or version not in (2, 3):
            raise WorkspaceError(
                f"The git index uses format version {version}, which voicecoder cannot update safely. "
                "Run `git update-index --index-version 3` in the workspace."
            )
        if hashlib.sha1(data[:-20]).digest() != data[-20:]:  # noqa: S324 - git's own checksum
            raise WorkspaceError("The git index is corrupt (bad checksum). Run `git reset` in the workspace.")
        unpack = _ENTRY.unpack_from
        find = data.index
        offset = 12
        stat_map: dict[bytes, tuple[int, int, int, int, bytes, int]] = {}
        flat: Flat = {}
        raw: list[tuple[bytes, int, bytes]] = []
        append = raw.append
        conflicted: set[bytes] = set()
        skip: set[bytes] = set()
        per_dir: dict[bytes, int] = {}
        for _ in range(count):
            (c_s, c_ns, m_s, m_ns, _, ino, mode, _, _, size, sha, flags) = unpack(data, offset)
            name_at = offset + 62
            if flags & _FLAG_EXTENDED:
                (extended,) = struct.unpack_from(">H", data, name_at)
                name_at += 2
                if extended & _SKIP_WORKTREE:
                    skip.add(data[name_at : find(b"\0", name_at)])
            length = flags & _NAME_MASK
            end = find(b"\0", name_at) if length == _NAME_MASK else name_at + length
            name = data[name_at:end]
            size_of = (end - offset + 8) & ~7
            stage = (flags >> 12) & 3
            append((name, stage, data[offset : offset + size_of]))
            offset += size_of
            directory = name.rpartition(b"/")[0]
            if directory:
                per_dir[directory] = per_dir.get(directory, 0) + 1
            if stage:
                conflicted.add(name)
            else:
                hex_sha = hexlify(sha)
                stat_map[name] = (m_s * 1_000_000_000 + m_ns, size, ino, mode, hex_sha, c_s * 1_000_000_000 + c_ns)
                flat[name] = (cleanup_mode(mode), hex_sha)
        dirs: dict[bytes, int] = {}
        for directory, n in per_dir.items():
            dirs[directory] = dirs.get(directory, 0) + n
            for parent in _parents(directory):
                dirs[parent] = dirs.get(parent, 0) + n
        extensions: list[tuple[bytes, bytes]] = []
        while offset < len(data) - 20:
            ext_sig, ext_size = struct.unpack_from(">4sL", data, offset)
            if not b"A"[0] <= ext_sig[0] <= b"Z"[0]:
                raise WorkspaceError(
                    f"The git index uses the {ext_sig.decode('ascii', 'replace')!r} extension (split index or "
                    "sparse index), which voicecoder cannot update safely. Run `git update-index --no-split-index`."
                )
            extensions.append((ext_sig, data[offset + 8 : offset + 8 + ext_size]))
            offset += 8 + ext_size
        return cls(
            key, mtime_ns, version, stat_map, raw, extensions, frozenset(conflicted), frozenset(skip), flat, dirs
        )

    def patched(self, updates: IndexUpdates) -> tuple[bytes, _GitIndex]:
        """
        The index file with stage-0 entries set to (mode, hex sha, stat) or removed (None), and its parsed form.

        The parsed form still needs `key` and `mtime_ns` of the file once it is written.
        """
        entries = list(self.raw)
        dirs = dict(self.tracked_dirs)
        stat_map = dict(self.stat)
        flat = dict(self.flat)
        conflicted = set(self.conflicted)
        for name, update in updates.items():
            at = bisect.bisect_left(entries, name, key=_entry_name)
            while at < len(entries) and entries[at][0] == name:  # every stage of *name* goes
                del entries[at]
                for parent in _parents(name):
                    dirs[parent] -= 1
                    if not dirs[parent]:
                        del dirs[parent]
            conflicted.discard(name)
            if update is None:
                stat_map.pop(name, None)
                flat.pop(name, None)
                continue
            mode, sha, st = update
            # No stat data (all zero) matches no file: git then re-reads the file instead of trusting the entry.
            ctime, mtime = (st.st_ctime_ns, st.st_mtime_ns) if st is not None else (0, 0)
            dev, ino, uid, gid, size = (st.st_dev, st.st_ino, st.st_uid, st.st_gid, st.st_size) if st else (0,) * 5
            packed = _ENTRY.pack(
                (ctime // 1_000_000_000) & _M32,
                ctime % 1_000_000_000,
                (mtime // 1_000_000_000) & _M32,
                mtime % 1_000_000_000,
                dev & _M32,
                ino & _M32,
                mode,
                uid & _M32,
                gid & _M32,
                size & _M32,
                bytes.fromhex(sha.decode()),
                min(len(name), _NAME_MASK),
            )
            body = packed + name
            entries.insert(at, (name, 0, body + b"\0" * (8 - len(body) % 8)))
            for parent in _parents(name):
                dirs[parent] = dirs.get(parent, 0) + 1
            stat_map[name] = (mtime, size & _M32, ino & _M32, mode, sha, ctime)
            flat[name] = (cleanup_mode(mode), sha)
        # Optional extensions derived from the entries (cache tree, untracked cache, fsmonitor, offsets) would
        # be stale now; git rebuilds them. Only the resolve-undo record is independent of the entries.
        kept = [(sig, ext) for sig, ext in self.extensions if sig == b"REUC"]
        parts = [struct.pack(">4sLL", b"DIRC", self.version, len(entries))]
        parts += [body for _, _, body in entries]
        parts += [sig + struct.pack(">L", len(ext)) + ext for sig, ext in kept]
        content = b"".join(parts)
        parsed = _GitIndex(
            self.key,
            self.mtime_ns,
            self.version,
            stat_map,
            entries,
            kept,
            frozenset(conflicted),
            self.skip_worktree - updates.keys(),
            flat,
            dirs,
        )
        return content + hashlib.sha1(content).digest(), parsed  # noqa: S324 - git's own checksum


def _entry_name(item: tuple[bytes, int, bytes]) -> bytes:
    return item[0]


def cleanup_mode(mode: int) -> int:
    """The tree mode git records for an index or stat mode."""
    kind = mode & 0o170000
    if kind == 0o120000:
        return _SYMLINK
    if kind == 0o160000:
        return _GITLINK
    if kind == 0o040000:
        return _DIRECTORY
    return _EXECUTABLE if mode & 0o100 else _REGULAR


def _mode_of(st: os.stat_result) -> int:
    if stat.S_ISLNK(st.st_mode):
        return _SYMLINK
    return _EXECUTABLE if st.st_mode & 0o100 else _REGULAR


def _entry_time_ns(value: float | tuple[int, int]) -> int:
    if isinstance(value, tuple):
        return value[0] * 1_000_000_000 + value[1]
    return int(value * 1_000_000_000)


def _parents(path: bytes) -> Iterable[bytes]:
    while b"/" in path:
        path = path.rpartition(b"/")[0]
        yield path


def _display(path: bytes) -> str:
    return path.decode("utf-8", "replace")


def _fingerprint(changes: dict[bytes, Change]) -> str:
    digest = hashlib.sha256()
    for path in sorted(changes):
        before, after = changes[path]
        digest.update(path + b"\0")
        for entry in (before, after):
            digest.update(b"-\0" if entry is None else b"%o %s\0" % entry)
    return digest.hexdigest()


def _diff_flats(before: Flat, after: Flat) -> dict[bytes, Change]:
    if before == after:  # the common case, compared in C
        return {}
    changes: dict[bytes, Change] = {}
    for path, entry in after.items():
        old = before.get(path)
        if old != entry:
            changes[path] = (old, entry)
    for path, entry in before.items():
        if path not in after:
            changes[path] = (entry, None)
    return changes


# --- unified diff --------------------------------------------------------------


def _hunk_range(start: int, length: int) -> bytes:
    first = start + 1 if length else start
    return b"%d" % first if length == 1 else b"%d,%d" % (first, length)


def _lines(data: bytes) -> list[bytes]:
    """Lines as git sees them: split after each LF only (a lone CR is not a line break)."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _body(old: bytes, new: bytes) -> tuple[list[bytes], int, int]:
    r"""Hunks in git's format (3 lines of context, '\\ No newline at end of file'), plus line counts."""
    a = _lines(old)
    b = _lines(new)
    out: list[bytes] = []
    added = removed = 0

    def emit(prefix: bytes, line: bytes) -> None:
        out.append(prefix + line if line.endswith(b"\n") else prefix + line + b"\n\\ No newline at end of file\n")

    # Exact matching is quadratic in the worst case; big files get difflib's popular-line heuristic.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=len(a) + len(b) > _EXACT_DIFF_LINES)
    for group in matcher.get_grouped_opcodes(3):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(b"@@ -" + _hunk_range(i1, i2 - i1) + b" +" + _hunk_range(j1, j2 - j1) + b" @@\n")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                for line in a[x1:x2]:
                    emit(b" ", line)
                continue
            for line in a[x1:x2]:
                emit(b"-", line)
            for line in b[y1:y2]:
                emit(b"+", line)
            removed += x2 - x1
            added += y2 - y1
    return out, added, removed


def _file_diff(
    path: bytes, before: Entry | None, after: Entry | None, read: Callable[[bytes], bytes]
) -> tuple[bytes, FileChange]:
    old_mode, old_sha = before if before is not None else (0, _NULL_SHA)
    new_mode, new_sha = after if after is not None else (0, _NULL_SHA)
    lines = [b"diff --git a/" + path + b" b/" + path + b"\n"]
    if before is None:
        lines.append(b"new file mode %o\n" % new_mode)
        kind = ChangeKind.ADDED
    elif after is None:
        lines.append(b"deleted file mode %o\n" % old_mode)
        kind = ChangeKind.DELETED
    elif old_sha == new_sha:
        kind = ChangeKind.MODE_CHANGED
    else:
        kind = ChangeKind.MODIFIED
    if before is not None and after is not None and old_mode != new_mode:
        lines += [b"old mode %o\n" % old_mode, b"new mode %o\n" % new_mode]
    added = removed = 0
    binary = False
    if old_sha != new_sha:
        index_line = b"index " + old_sha[:7] + b".." + new_sha[:7]
        if before is not None and after is not None and old_mode == new_mode:
            index_line += b" %o" % old_mode
        lines.append(index_line + b"\n")
        old = read(old_sha) if before is not None else b""
        new = read(new_sha) if after is not None else b""
        a_name = b"a/" + path if before is not None else b"/dev/null"
        b_name = b"b/" + path if after is not None else b"/dev/null"
        if b"\0" in old[:_BINARY_SNIFF] or b"\0" in new[:_BINARY_SNIFF]:
            binary = True
            lines.append(b"Binary files " + a_name + b" and " + b_name + b" differ\n")
        elif old or new:
            hunks, added, removed = _body(old, new)
            lines += [b"--- " + a_name + b"\n", b"+++ " + b_name + b"\n", *hunks]
    change = FileChange(
        path=_display(path),
        kind=kind,
        additions=added,
        deletions=removed,
        binary=binary,
        old_mode=before[0] if before is not None else None,
        new_mode=after[0] if after is not None else None,
    )
    return b"".join(lines), change


# --- the adapter -----------------------------------------------------------------


class DulwichWorkspace:
    """A git working tree driven with dulwich, one transaction per agent turn."""

    def __init__(
        self,
        path: Path,
        *,
        author: str = "voicecoder <voicecoder@localhost>",
        init_if_missing: bool = True,
    ) -> None:
        self.path = Path(path).absolute()
        self.author = author
        self.init_if_missing = init_if_missing
        self._root = os.fsencode(self.path)
        self._lock = anyio.Lock()
        self._opened = False
        self._stat_cache: dict[bytes, tuple[tuple[int, int, int, int], bytes]] = {}
        self._tree_memo: dict[tuple[tuple[bytes, int, bytes], ...], bytes] = {}
        self._flat_cache: dict[bytes, Flat] = {}
        self._index_cache: _GitIndex | None = None
        self._index_tree_cache: tuple[bytes | None, Flat, bytes] | None = None

    def __repr__(self) -> str:
        return f"DulwichWorkspace({str(self.path)!r})"

    # --- async port ----------------------------------------------------------------

    async def open(self) -> None:
        """
        Open the workspace; create it (with an empty initial commit) if it is not a repository yet.

        Raises:
            NotARepositoryError: The path is not a usable repository and may not be created.
        """
        await self._run(lambda _repo: None)

    async def release_turn(self, baseline: Baseline, /) -> None:
        ref = Ref(CHECKPOINT_PREFIX + baseline.turn_id.value.encode())

        def release(repo: Repo) -> None:
            # Only the checkpoint this baseline names: a ref reused by a later turn id is left alone.
            repo.refs.remove_if_equals(ref, ObjectID(baseline.snapshot.encode()))

        await self._run(release)

    async def begin_turn(self, turn_id: TurnId, /) -> Baseline:
        return await self._run(functools.partial(self._begin_turn, turn_id))

    async def changes_since(self, baseline: Baseline, /) -> Diff:
        return await self._run(functools.partial(self._changes_since, baseline))

    async def commit_turn(
        self, baseline: Baseline, /, *, fingerprint: str, message: CommitMessage, author: str | None = None
    ) -> CommitInfo:
        return await self._run(
            functools.partial(self._commit_turn, baseline, fingerprint, message, author or self.author)
        )

    async def restore_turn(self, baseline: Baseline, /) -> None:
        await self._run(functools.partial(self._restore_turn, baseline))

    async def status(self) -> WorkspaceStatus:
        return await self._run(self._status)

    async def revert_commit(self, sha: str, /, *, message: CommitMessage, author: str | None = None) -> CommitInfo:
        return await self._run(functools.partial(self._revert_commit, sha, message, author or self.author))

    async def diagnose(self) -> Sequence[Diagnostic]:
        """Repository, branch and clean/dirty checks for /info. Raises nothing."""
        try:
            status = await self.status()
        except VoicecoderError as exc:
            return [
                Diagnostic(
                    "workspace",
                    ok=False,
                    detail=str(exc),
                    fix=f"Point WORKSPACE_PATH at a git repository (or an empty directory) you own: {self.path}",
                )
            ]
        except Exception as exc:
            logger.exception("workspace diagnosis failed")
            return [Diagnostic("workspace", ok=False, detail=f"unexpected error: {type(exc).__name__}")]
        branch_ok = status.branch is not None
        dirty = len(status.staged) + len(status.unstaged) + len(status.untracked)
        return [
            Diagnostic("workspace", ok=True, detail=f"git repository at {status.path}, {status.tracked_files} files"),
            Diagnostic(
                "branch",
                ok=branch_ok,
                detail=f"on {status.branch} at {status.head or '(no commits)'}" if branch_ok else "detached HEAD",
                fix=None if branch_ok else "Check out a branch (git switch <branch>) so approved turns land on it.",
                warning=not branch_ok,
            ),
            Diagnostic(
                "working tree",
                ok=True,
                detail="clean" if status.is_clean else f"{dirty} uncommitted path{'s' if dirty != 1 else ''}",
                warning=not status.is_clean,
            ),
        ]

    # --- plumbing ------------------------------------------------------------------

    async def _run(self, operation: Callable[[Repo], _T]) -> _T:
        async with self._lock:
            return await anyio.to_thread.run_sync(functools.partial(self._call, operation))

    def _call(self, operation: Callable[[Repo], _T]) -> _T:
        started = time.perf_counter()
        try:
            with self._open_repo() as repo:
                return operation(repo)
        except VoicecoderError:
            raise
        except FileLocked as exc:
            raise WorkspaceError(
                "Another git command is using the repository (.git/index.lock or a ref lock exists). "
                "Wait for it to finish; if none is running, delete the stale lock file."
            ) from exc
        except NotGitRepository as exc:
            raise NotARepositoryError(f"{self.path} is not a git repository. Run `git init` there.") from exc
        except OSError as exc:
            where = exc.filename if isinstance(exc.filename, str) else os.fsdecode(exc.filename or b"")
            raise WorkspaceError(f"Workspace I/O failed: {exc.strerror or exc} ({where}).") from exc
        finally:
            logger.debug("%s took %.3f s", getattr(operation, "__name__", "operation"), time.perf_counter() - started)

    def _open_repo(self) -> Repo:
        try:
            repo = Repo(str(self.path))
        except NotGitRepository:
            if not self.init_if_missing:
                raise NotARepositoryError(
                    f"{self.path} is not a git repository. Run `git init` there, or enable creating it."
                ) from None
            return self._init_repo()
        except FileNotFoundError:
            if not self.init_if_missing:
                raise NotARepositoryError(f"{self.path} does not exist. Create it and run `git init`.") from None
            return self._init_repo()
        if repo.bare:
            repo.close()
            raise NotARepositoryError(f"{self.path} is a bare repository; point the workspace at a checkout.")
        return repo

    def _init_repo(self) -> Repo:
        for parent in self.path.parents:
            if (parent / ".git").exists():
                raise NotARepositoryError(
                    f"{self.path} is inside the git repository {parent}; point the workspace at {parent} "
                    "or at a directory outside it."
                )
        self.path.mkdir(parents=True, exist_ok=True)
        repo = Repo.init(str(self.path), default_branch=b"main")
        # An empty initial commit, so HEAD exists; the user's files are never committed without approval.
        tree = Tree()
        repo.object_store.add_object(tree)
        commit = self._make_commit(tree.id, [], CommitMessage("Initial commit (voicecoder)").render(), self.author)
        repo.object_store.add_object(commit)
        repo.refs.set_if_equals(_HEAD, None, commit.id, message=b"commit (initial): Initial commit (voicecoder)")
        logger.info("initialised a git repository at %s", self.path)
        return repo

    @staticmethod
    def _make_commit(tree: bytes, parents: Sequence[bytes], message: str, author: str) -> Commit:
        commit = Commit()
        commit.tree = ObjectID(tree)
        commit.parents = [ObjectID(p) for p in parents]
        commit.author = commit.committer = author.encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        return commit

    def _store_commit(self, repo: Repo, tree: bytes, parents: Sequence[bytes], message: str, author: str) -> Commit:
        commit = self._make_commit(tree, parents, message, author)
        repo.object_store.add_object(commit)
        return commit

    @staticmethod
    def _head(repo: Repo) -> ObjectID | None:
        _, sha = repo.refs.follow(_HEAD)
        return sha

    def _head_flat(self, repo: Repo, head: bytes | None) -> Flat:
        if head is None:
            return {}
        commit = repo.object_store[ObjectID(head)]
        if not isinstance(commit, Commit):
            raise WorkspaceError("HEAD does not point at a commit; repair the repository with git.")
        return self._flatten(repo, commit.tree)

    def _flatten(self, repo: Repo, tree_sha: bytes) -> Flat:
        cached = self._flat_cache.get(tree_sha)
        if cached is not None:
            return cached
        flat: Flat = {}
        stack = [(b"", tree_sha)]
        while stack:
            prefix, sha = stack.pop()
            tree = repo.object_store[ObjectID(sha)]
            if not isinstance(tree, Tree):
                raise WorkspaceError(f"Object {sha.decode()} is not a tree; run `git fsck`.")
            for name, mode, child in tree.iteritems():
                if stat.S_ISDIR(mode):
                    stack.append((prefix + name + b"/", child))
                else:
                    flat[prefix + name] = (mode, child)
        self._remember(tree_sha, flat)
        return flat

    def _remember(self, tree_sha: bytes, flat: Flat) -> None:
        if len(self._flat_cache) >= _FLAT_CACHE_LIMIT:
            self._flat_cache.pop(next(iter(self._flat_cache)))
        self._flat_cache[tree_sha] = flat

    def _tree_from_items(self, repo: Repo, items: dict[bytes, Entry]) -> bytes:
        key = tuple(sorted((name, mode, sha) for name, (mode, sha) in items.items()))
        memo = self._tree_memo.get(key)
        store = repo.object_store
        if memo is not None and ObjectID(memo) in store:  # `git gc` may have pruned a tree that never got referenced
            return memo
        tree = Tree()
        for name, mode, sha in key:
            tree.add(name, mode, ObjectID(sha))
        if tree.id not in store:
            store.add_object(tree)
        if len(self._tree_memo) > _MEMO_LIMIT:
            self._tree_memo.clear()
        self._tree_memo[key] = tree.id
        return tree.id

    def _apply_tree(self, repo: Repo, base: bytes | None, changes: dict[bytes, Entry | None]) -> bytes | None:
        """
        The tree *base* with *changes* applied, touching only the directories on the changed paths.

        None stands for the empty tree. Raises WorkspaceConflictError if a path would be a file and a
        non-empty directory at once.
        """
        items: dict[bytes, Entry] = {}
        if base is not None:
            tree = repo.object_store[ObjectID(base)]
            if not isinstance(tree, Tree):
                raise WorkspaceError(f"Object {base.decode()} is not a tree; run `git fsck`.")
            items = {name: (mode, sha) for name, mode, sha in tree.iteritems()}
        direct: dict[bytes, Entry | None] = {}
        nested: dict[bytes, dict[bytes, Entry | None]] = {}
        for path, entry in changes.items():
            name, sep, rest = path.partition(b"/")
            if sep:
                nested.setdefault(name, {})[rest] = entry
            else:
                direct[name] = entry
        for name, sub_changes in nested.items():
            current = items.get(name)
            sub_base = None
            if current is not None:
                if current[0] == _DIRECTORY:
                    sub_base = current[1]
                elif direct.get(name, current) is not None:
                    raise WorkspaceConflictError(
                        f"{_display(name)} would be both a file and a directory; "
                        "commit or discard the other change to that path first."
                    )
            sub = self._apply_tree(repo, sub_base, sub_changes)
            if sub is None:
                if current is not None and current[0] == _DIRECTORY:
                    del items[name]
            else:
                items[name] = (_DIRECTORY, sub)
        for name, entry in direct.items():
            current = items.get(name)
            if entry is None:
                if current is not None and current[0] != _DIRECTORY:
                    del items[name]
                continue
            if current is not None and current[0] == _DIRECTORY:
                raise WorkspaceConflictError(
                    f"{_display(name)} would be both a file and a directory; "
                    "commit or discard the other change to that path first."
                )
            items[name] = entry
        if not items:
            return None
        return self._tree_from_items(repo, items)

    def _root_tree(self, repo: Repo, base: bytes | None, changes: dict[bytes, Entry | None]) -> bytes:
        if not changes and base is not None:
            return base
        tree = self._apply_tree(repo, base, changes)
        return tree if tree is not None else self._tree_from_items(repo, {})

    def _commit_tree(self, repo: Repo, commit: bytes | None) -> bytes | None:
        if commit is None:
            return None
        obj = repo.object_store[ObjectID(commit)]
        if not isinstance(obj, Commit):
            raise WorkspaceError("HEAD does not point at a commit; repair the repository with git.")
        tree: bytes = obj.tree
        return tree

    def _index(self, repo: Repo) -> _GitIndex:
        path = repo.index_path()
        cached = self._index_cache
        if cached is not None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and cached.key == (st.st_mtime_ns, st.st_size, st.st_ino):
                return cached
        self._index_cache = _GitIndex.load(path)
        return self._index_cache

    def _write_index(
        self,
        repo: Repo,
        updates: IndexUpdates | Callable[[], IndexUpdates],
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        """
        Patch the index under its lock.

        *before_commit* runs while the lock is held (like git, which moves the branch between taking
        index.lock and renaming it into place); if it raises, the index is left alone. *updates* may be a
        function, called after *before_commit*.
        """
        path = repo.index_path()
        f = GitFile(path, "wb")
        try:
            if before_commit is not None:
                before_commit()
            changes = updates() if callable(updates) else updates
            data, parsed = self._index(repo).patched(changes)
            f.write(data)
        except BaseException:
            f.abort()
            raise
        f.close()
        st = os.stat(path)
        self._index_cache = attrs.evolve(parsed, key=(st.st_mtime_ns, st.st_size, st.st_ino), mtime_ns=st.st_mtime_ns)

    def _scan(self, repo: Repo, *, durable: bool = True) -> _Scan:
        """
        The working tree: every tracked path and every untracked, non-ignored file.

        With *durable*, every file read is also stored as a blob (a checkpoint or a commit will refer to
        it); otherwise small contents are kept in memory only, for the diff.
        """
        index = self._index(repo)
        known = index.stat
        tracked_dirs = index.tracked_dirs
        racy_ns = index.mtime_ns
        ignore: IgnoreFilterManager | None = None
        root = self._root
        now_ns = time.time_ns()
        entries: Flat = {}
        stats: dict[bytes, os.stat_result] = {}
        fresh: dict[bytes, bytes] | None = None if durable else {}
        stack = [b""]
        while stack:
            rel_dir = stack.pop()
            prefix = rel_dir + b"/" if rel_dir else b""
            with os.scandir(root + b"/" + rel_dir if rel_dir else root) as it:
                dir_entries = list(it)
            for de in dir_entries:
                rel = prefix + de.name
                st = de.stat(follow_symlinks=False)
                kind = st.st_mode & 0o170000
                if kind == 0o100000:
                    mode = _EXECUTABLE if st.st_mode & 0o100 else _REGULAR
                elif kind == 0o120000:
                    mode = _SYMLINK
                elif kind == 0o040000:
                    if de.name == b".git":
                        continue
                    if index.flat.get(rel, (0, b""))[0] == _GITLINK:  # a submodule: keep what the index says
                        entries[rel] = index.flat[rel]
                        continue
                    if rel not in tracked_dirs:
                        if os.path.lexists(de.path + b"/.git"):
                            continue  # a nested repository is not part of this one
                        if ignore is None:
                            ignore = IgnoreFilterManager.from_repo(repo)
                        if ignore.is_ignored(_display(rel) + "/"):
                            continue
                    stack.append(rel)
                    continue
                else:
                    continue
                stats[rel] = st
                cached = known.get(rel)
                if cached is None:
                    if rel in index.conflicted:
                        entries[rel] = (mode, self._hash(repo, de.path, rel, st, mode, now_ns, fresh))
                        continue
                    if ignore is None:
                        ignore = IgnoreFilterManager.from_repo(repo)
                    if ignore.is_ignored(_display(rel)):
                        del stats[rel]
                        continue
                elif (
                    cached[0] == st.st_mtime_ns
                    and cached[1] == st.st_size & _M32
                    and cached[2] == st.st_ino & _M32
                    and cached[3] == mode
                    and cached[5] == st.st_ctime_ns
                    and st.st_mtime_ns < racy_ns
                ):
                    entries[rel] = (mode, cached[4])
                    continue
                entries[rel] = (mode, self._hash(repo, de.path, rel, st, mode, now_ns, fresh))
        for rel in index.skip_worktree:  # sparse checkout: absent on purpose, still tracked
            if rel not in entries and rel in index.flat:
                entries[rel] = index.flat[rel]
        return _Scan(entries, stats, fresh or {})

    def _hash(
        self,
        repo: Repo,
        abs_path: bytes,
        rel: bytes,
        st: os.stat_result,
        mode: int,
        now_ns: int,
        fresh: dict[bytes, bytes] | None,
    ) -> bytes:
        """The blob sha of one file, from the stat cache or by reading it (storing the blob unless *fresh*)."""
        key = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        cached = self._stat_cache.get(rel)
        if cached is not None and cached[0] == key and ObjectID(cached[1]) in repo.object_store:
            return cached[1]
        if mode == _SYMLINK:
            data = os.readlink(abs_path)
        else:
            with open(abs_path, "rb") as f:
                data = f.read()
        blob = Blob.from_string(data)
        if fresh is not None and len(data) <= _FRESH_LIMIT and len(fresh) < _FRESH_FILES:
            fresh[blob.id] = data
            return blob.id  # not stored, so not cached either: the cache only names blobs in the store
        store = repo.object_store
        if blob.id not in store:
            store.add_object(blob)
        if st.st_mtime_ns < now_ns - _RACY_NS and st.st_ctime_ns < now_ns - _RACY_NS:
            self._stat_cache[rel] = (key, blob.id)
        return blob.id

    def _baseline_commit(self, repo: Repo, baseline: Baseline) -> Commit:
        try:
            commit = repo.object_store[ObjectID(baseline.snapshot.encode())]
        except (KeyError, ValueError, AssertionError):
            commit = None
        if not isinstance(commit, Commit):
            raise WorkspaceError(
                f"The checkpoint {baseline.snapshot[:12]} of turn {baseline.turn_id} is missing from the repository "
                "(was it garbage-collected?). Review the files with /status and commit or discard them by hand."
            )
        return commit

    def _turn_changes(
        self, repo: Repo, baseline: Baseline, *, durable: bool = True
    ) -> tuple[Flat, _Scan, dict[bytes, Change]]:
        checkpoint = self._baseline_commit(repo, baseline)
        before = self._flatten(repo, checkpoint.tree)
        scan = self._scan(repo, durable=durable)
        return before, scan, _diff_flats(before, scan.entries)

    # --- operations (worker thread) ------------------------------------------------------

    def _begin_turn(self, turn_id: TurnId, repo: Repo) -> Baseline:
        head = self._head(repo)
        scan = self._scan(repo)
        index = self._index(repo)
        index_tree = self._index_tree(repo, head, index)
        worktree_changes = {path: after for path, (_, after) in _diff_flats(index.flat, scan.entries).items()}
        tree = self._root_tree(repo, index_tree, worktree_changes)
        self._remember(tree, scan.entries)
        # Parents: HEAD (if any), then a commit of the index unless the index is HEAD's tree. Either way the
        # last parent's tree (or nothing) is the index as it was, which Reject puts back for the turn's paths.
        parents: list[bytes] = [head] if head is not None else []
        head_tree = self._commit_tree(repo, head)
        if index_tree != (head_tree if head_tree is not None else _EMPTY_TREE):
            text = f"index at start of turn {turn_id}\n"
            parents.append(self._store_commit(repo, index_tree, parents, text, self.author).id)
        checkpoint = self._store_commit(repo, tree, parents, f"voicecoder checkpoint of turn {turn_id}\n", self.author)
        repo.refs[Ref(CHECKPOINT_PREFIX + turn_id.value.encode())] = checkpoint.id
        return Baseline(turn_id, checkpoint.id.decode())

    def _index_tree(self, repo: Repo, head: bytes | None, index: _GitIndex) -> bytes:
        """The tree of the index (as `git write-tree` would write it), built from HEAD's tree and cached."""
        cached = self._index_tree_cache
        if cached is not None and cached[0] == head and cached[1] == index.flat:
            return cached[2]
        head_tree = self._commit_tree(repo, head)
        head_flat = self._flatten(repo, head_tree) if head_tree is not None else {}
        staged = {path: after for path, (_, after) in _diff_flats(head_flat, index.flat).items()}
        tree = self._root_tree(repo, head_tree, staged)
        self._remember(tree, index.flat)
        self._index_tree_cache = (head, index.flat, tree)
        return tree

    def _changes_since(self, baseline: Baseline, repo: Repo) -> Diff:
        _, scan, changes = self._turn_changes(repo, baseline, durable=False)
        if not changes:
            return Diff.empty()
        store = repo.object_store

        def read(sha: bytes) -> bytes:
            if sha in scan.fresh:
                return scan.fresh[sha]
            blob = store[ObjectID(sha)]
            return blob.as_raw_string() if isinstance(blob, Blob) else b""

        # Show what Approve will commit: a turn's path against HEAD, so edits the user made to it before the turn
        # (which the commit includes) are in the diff the user approves. Where HEAD already equals the result
        # (e.g. the agent deleted a never-committed file) nothing is committed, and the turn's own change is
        # shown instead: Reject can still undo it.
        head_tree = self._commit_tree(repo, self._head(repo))
        head_flat = self._flatten(repo, head_tree) if head_tree is not None else {}
        parts: list[bytes] = []
        files: list[FileChange] = []
        for path in sorted(changes):
            before_turn, after = changes[path]
            in_head = head_flat.get(path)
            before = in_head if in_head != after else before_turn
            text, change = _file_diff(path, before, after, read)
            parts.append(text)
            files.append(change)
        return Diff(
            unified=b"".join(parts).decode("utf-8", "replace"), files=tuple(files), fingerprint=_fingerprint(changes)
        )

    def _commit_turn(
        self, baseline: Baseline, fingerprint: str, message: CommitMessage, author: str, repo: Repo
    ) -> CommitInfo:
        _, scan, changes = self._turn_changes(repo, baseline)
        if not changes:
            raise WorkspaceError("Nothing to commit: the turn changed no files (or its changes were undone).")
        if not _fingerprint(changes).startswith(fingerprint):
            raise StaleChangeError("the files changed after the diff was made")
        conflicted = self._index(repo).conflicted
        for path in changes:
            if path in conflicted:
                raise WorkspaceConflictError(f"{_display(path)} has unresolved merge conflicts; resolve them first.")
        head = self._head(repo)
        head_tree = self._commit_tree(repo, head)
        tree = self._root_tree(repo, head_tree, {path: after for path, (_, after) in changes.items()})
        if tree == head_tree or (head_tree is None and tree == _EMPTY_TREE):
            raise WorkspaceError(
                "Nothing to commit: the turn leaves the last commit as it is (it only removed files that were "
                "never committed, or put back committed content)."
            )
        text = message.render()
        commit = self._store_commit(repo, tree, [head] if head else [], text, author)

        def move_head() -> None:
            if not repo.refs.set_if_equals(_HEAD, head, commit.id, message=b"commit: " + message.subject.encode()):
                raise WorkspaceError("HEAD moved while committing; nothing was committed. Try again.")

        self._write_index(
            repo,
            {
                path: None if after is None else (after[0], after[1], scan.stats.get(path))
                for path, (_, after) in changes.items()
            },
            before_commit=move_head,
        )
        old_flat = self._flat_cache.get(head_tree) if head_tree is not None else {}
        if old_flat is not None:  # keep the new HEAD's flat map warm for the next turn's index tree
            new_flat = dict(old_flat)
            for path, (_, after) in changes.items():
                if after is None:
                    new_flat.pop(path, None)
                else:
                    new_flat[path] = after
            self._remember(tree, new_flat)
        logger.info("committed %d path(s) as %s", len(changes), commit.id.decode()[:7])
        return CommitInfo(commit.id.decode(), text, author, datetime.fromtimestamp(commit.commit_time, tz=UTC))

    def _restore_turn(self, baseline: Baseline, repo: Repo) -> None:
        checkpoint = self._baseline_commit(repo, baseline)
        _, scan, changes = self._turn_changes(repo, baseline, durable=False)
        if not changes:
            return
        targets = {path: before_entry for path, (before_entry, _) in changes.items()}
        index_tree = self._commit_tree(repo, checkpoint.parents[-1]) if checkpoint.parents else None
        index_before = self._flatten(repo, index_tree) if index_tree is not None else {}
        self._write_index(
            repo,
            lambda: self._index_updates(repo, {path: index_before.get(path) for path in changes}, targets),
            before_commit=lambda: self._materialize(repo, targets, scan),
        )
        logger.info("restored %d path(s) to checkpoint %s", len(changes), baseline.snapshot[:7])

    def _materialize(self, repo: Repo, targets: dict[bytes, Entry | None], scan: _Scan) -> None:
        """Make each path in *targets* hold exactly its entry (None: absent); remove emptied directories."""
        root = self._root
        store = repo.object_store
        # Remove what must go first, deepest paths first, so a directory can become a file.
        for path in sorted(targets, key=lambda p: p.count(b"/"), reverse=True):
            if path in scan.entries and (targets[path] is None or stat.S_ISLNK(scan.stats[path].st_mode)):
                os.unlink(root + b"/" + path)
                self._stat_cache.pop(path, None)
                for parent in _parents(path):
                    try:
                        os.rmdir(root + b"/" + parent)
                    except OSError:
                        break
        for path in sorted(targets, key=lambda p: p.count(b"/")):
            entry = targets[path]
            if entry is None:
                continue
            mode, sha = entry
            full = root + b"/" + path
            for parent in reversed(list(_parents(path))):
                parent_full = root + b"/" + parent
                # Never write through a symlink: it could point anywhere outside the workspace.
                if os.path.islink(parent_full) or (os.path.lexists(parent_full) and not os.path.isdir(parent_full)):
                    raise WorkspaceConflictError(
                        f"{_display(parent)} is a file or symlink now but must be a directory again; "
                        "move it away first."
                    )
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if os.path.isdir(full) and not os.path.islink(full):
                try:
                    os.rmdir(full)
                except OSError as exc:
                    raise WorkspaceConflictError(
                        f"{_display(path)} is a directory with other (ignored) files in it; "
                        "move them away, then try again."
                    ) from exc
            blob = store[ObjectID(sha)]
            data = blob.as_raw_string() if isinstance(blob, Blob) else b""
            if mode == _SYMLINK:
                if os.path.lexists(full):
                    os.unlink(full)
                os.symlink(data, full)
            elif mode == _GITLINK:
                continue
            else:
                tmp = full + b".voicecoder-tmp"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # a leftover of a crash would keep its old mode
                # The kernel applies the process umask on creation, as git does; reading the umask would
                # mean setting it (os.umask), which races with every other thread of an embedding process.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777 if mode == _EXECUTABLE else 0o666)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, full)
            self._stat_cache.pop(path, None)

    def _index_updates(
        self, repo: Repo, targets: dict[bytes, Entry | None], worktree: dict[bytes, Entry | None]
    ) -> IndexUpdates:
        """Index entries for *targets*; stat data only where the file on disk holds that content."""
        index = self._index(repo)
        updates: IndexUpdates = {}
        for path, entry in targets.items():
            if entry is None:
                if path in index.stat:
                    updates[path] = None
                continue
            st = None
            if worktree.get(path) == entry:
                st = os.lstat(self._root + b"/" + path)
            updates[path] = (entry[0], entry[1], st)
        return updates

    def _status(self, repo: Repo) -> WorkspaceStatus:
        head = self._head(repo)
        head_flat = self._head_flat(repo, head)
        index = self._index(repo)
        scan = self._scan(repo, durable=False)
        index_flat = index.flat
        staged = sorted(_diff_flats(head_flat, index_flat))
        unstaged = sorted({p for p, e in index_flat.items() if scan.entries.get(p) != e}.union(index.conflicted))
        untracked = sorted(p for p in scan.entries if p not in index_flat and p not in index.conflicted)
        refs, _ = repo.refs.follow(_HEAD)
        branch: str | None = None
        if len(refs) > 1 and refs[-1].startswith(b"refs/heads/"):
            branch = _display(refs[-1][len(b"refs/heads/") :])
        subject = when = None
        if head is not None:
            commit = repo.object_store[ObjectID(head)]
            if isinstance(commit, Commit):
                subject = commit.message.decode("utf-8", "replace").split("\n", 1)[0]
                when = datetime.fromtimestamp(commit.commit_time, tz=UTC)
        return WorkspaceStatus(
            branch=branch,
            head=head.decode()[:7] if head else None,
            staged=tuple(map(_display, staged)),
            unstaged=tuple(map(_display, unstaged)),
            untracked=tuple(map(_display, untracked)),
            tracked_files=len(index_flat),
            latest_subject=subject,
            latest_time=when,
            path=str(self.path),
        )

    def _resolve_commit(self, repo: Repo, sha: str) -> Commit:
        wanted = sha.strip().lower().encode()
        if len(wanted) == 40:
            try:
                found = repo.object_store[ObjectID(wanted)]
            except (KeyError, ValueError, AssertionError):
                found = None
            if isinstance(found, Commit):
                return found
        elif len(wanted) >= 4:
            head = self._head(repo)
            if head is not None:
                for walk_entry in repo.get_walker(include=[ObjectID(head)], max_entries=1000):
                    if walk_entry.commit.id.startswith(wanted):
                        return walk_entry.commit
        raise WorkspaceError(f"Unknown commit {sha!r}; use /log to see the recent commits.")

    def _revert_commit(self, sha: str, message: CommitMessage, author: str, repo: Repo) -> CommitInfo:
        target = self._resolve_commit(repo, sha)
        if len(target.parents) > 1:
            raise WorkspaceError(f"{sha[:7]} is a merge commit; revert it with git by hand.")
        after = self._flatten(repo, target.tree)
        before = self._head_flat(repo, target.parents[0]) if target.parents else {}
        paths = _diff_flats(before, after)
        if not paths:
            raise WorkspaceError(f"{sha[:7]} changed no files; there is nothing to revert.")
        head = self._head(repo)
        head_flat = self._head_flat(repo, head)
        moved = sorted(p for p in paths if head_flat.get(p) != after.get(p))
        if moved:
            raise WorkspaceConflictError(
                f"{', '.join(map(_display, moved[:5]))} changed after {sha[:7]}; revert that by hand with git."
            )
        scan = self._scan(repo, durable=False)
        index_flat = self._index(repo).flat
        dirty = sorted(
            p for p in paths if scan.entries.get(p) != head_flat.get(p) or index_flat.get(p) != head_flat.get(p)
        )
        if dirty:
            raise WorkspaceConflictError(
                f"{', '.join(map(_display, dirty[:5]))} have uncommitted edits; commit or discard them, then revert."
            )
        tree = self._root_tree(repo, self._commit_tree(repo, head), {path: before.get(path) for path in paths})
        text = message.render()
        commit = self._store_commit(repo, tree, [head] if head else [], text, author)
        targets = {path: before.get(path) for path in paths}

        def move_head_and_files() -> None:
            if not repo.refs.set_if_equals(_HEAD, head, commit.id, message=b"revert: " + message.subject.encode()):
                raise WorkspaceError("HEAD moved while reverting; nothing was changed. Try again.")
            self._materialize(repo, targets, scan)

        self._write_index(repo, lambda: self._index_updates(repo, targets, targets), before_commit=move_head_and_files)
        logger.info("reverted %s as %s", sha[:7], commit.id.decode()[:7])
        return CommitInfo(commit.id.decode(), text, author, datetime.fromtimestamp(commit.commit_time, tz=UTC))
