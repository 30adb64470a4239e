"""
The working tree as git sees it (tracked files and untracked files that are not ignored), read and written.

`Worktree.scan` makes one ``scandir`` walk. A file whose lstat (mtime in ns, ctime, size, inode, mode) equals
its index entry, and whose mtime is older than the index file (git's racy-clean rule), takes its sha from the
index; other files are hashed once and remembered in memory, but only when their mtime and ctime are more than
100 ms old (kernel timestamps are coarse). Nested repositories are skipped; submodules are kept as the index
has them; sparse-checkout entries (skip-worktree) count as present.

`Worktree.write` makes paths hold given entries: files replaced atomically, symlinks never written through,
directories created and emptied ones removed, a file becoming a directory and back.
"""

# The working tree is handled as bytes paths through `os` (file names need not be UTF-8), not pathlib.
# ruff: noqa: PTH103, PTH105, PTH106, PTH108, PTH112, PTH114, PTH115, PTH120, PTH123, PTH211

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import attrs
from dulwich.ignore import IgnoreFilterManager
from dulwich.object_store import BaseObjectStore
from dulwich.objects import Blob, ObjectID
from dulwich.repo import Repo

from voicecoder.adapters.git.eol import LineEndings
from voicecoder.adapters.git.index import GitIndex
from voicecoder.adapters.git.trees import (
    EXECUTABLE,
    GITLINK,
    REGULAR,
    SYMLINK,
    Entry,
    Flat,
    display,
    has_object,
    parents,
)
from voicecoder.domain.errors import WorkspaceConflictError

__all__ = ["Scan", "Worktree"]

# A file is trusted from a stat cache only if its mtime is this much older than the moment we looked:
# kernels stamp files with a coarse clock, so two writes within one tick can share an mtime.
_RACY_NS: Final = 100_000_000
_M32: Final = 0xFFFFFFFF
_FRESH_LIMIT: Final = 1 << 20
_FRESH_FILES: Final = 256  # at most 256 MiB held in memory by one scan; beyond that, contents go to the store


@attrs.frozen
class Scan:
    """The working tree as git would see it."""

    entries: Flat
    fresh: dict[bytes, bytes] = attrs.field(factory=dict)
    """Content of files hashed but not written to the object store (scans that need no durability)."""

    def read(self, store: BaseObjectStore, sha: bytes) -> bytes:
        """The content of *sha*, from this scan's memory or from the object store."""
        if sha in self.fresh:
            return self.fresh[sha]
        blob = store[ObjectID(sha)]
        return blob.as_raw_string() if isinstance(blob, Blob) else b""


class Worktree:
    """Reads and writes the files of one repository's working tree, with a stat cache of file hashes."""

    def __init__(self, root: bytes) -> None:
        self.root = root
        self._stat_cache: dict[bytes, tuple[tuple[int, int, int, int], bytes]] = {}

    def scan(self, repo: Repo, index: GitIndex, *, durable: bool = True) -> Scan:
        """
        Every tracked path and every untracked, non-ignored file.

        With *durable*, every file read is also stored as a blob (a checkpoint or a commit will refer to it);
        otherwise small contents are kept in memory only, for the diff.
        """
        known = index.stat
        tracked_dirs = index.tracked_dirs
        ignore: IgnoreFilterManager | None = None
        root = self.root
        now_ns = time.time_ns()
        entries: Flat = {}
        fresh: dict[bytes, bytes] | None = None if durable else {}
        eol = LineEndings(repo)
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
                    mode = EXECUTABLE if st.st_mode & 0o100 else REGULAR
                elif kind == 0o120000:
                    mode = SYMLINK
                elif kind == 0o040000:
                    if de.name == b".git":
                        continue
                    if index.flat.get(rel, (0, b""))[0] == GITLINK:  # a submodule: keep what the index says
                        entries[rel] = index.flat[rel]
                        continue
                    if rel not in tracked_dirs:
                        if os.path.lexists(de.path + b"/.git"):
                            continue  # a nested repository is not part of this one
                        if ignore is None:
                            ignore = IgnoreFilterManager.from_repo(repo)
                        if ignore.is_ignored(display(rel) + "/"):
                            continue
                    stack.append(rel)
                    continue
                else:
                    continue
                if rel not in known and rel not in index.conflicted:
                    if ignore is None:
                        ignore = IgnoreFilterManager.from_repo(repo)
                    if ignore.is_ignored(display(rel)):
                        continue
                entries[rel] = (mode, self._sha(repo, de.path, rel, st, mode, index, now_ns, fresh, eol))
        for rel in index.skip_worktree:  # sparse checkout: absent on purpose, still tracked
            if rel not in entries and rel in index.flat:
                entries[rel] = index.flat[rel]
        return Scan(entries, fresh or {})

    def look(self, repo: Repo, index: GitIndex, paths: Iterable[bytes]) -> Scan:
        """
        Only *paths*, as `scan` would see them (a path that is a directory or missing now is absent).

        For an operation that needs the state of a few known paths and nothing else; nothing is stored.
        """
        now_ns = time.time_ns()
        entries: Flat = {}
        fresh: dict[bytes, bytes] = {}
        eol = LineEndings(repo)
        for rel in paths:
            full = self.root + b"/" + rel
            try:
                st = os.lstat(full)
            except (FileNotFoundError, NotADirectoryError):
                continue
            kind = st.st_mode & 0o170000
            if kind == 0o160000 or index.flat.get(rel, (0, b""))[0] == GITLINK:
                if rel in index.flat:
                    entries[rel] = index.flat[rel]
                continue
            if kind not in (0o100000, 0o120000) or any(os.path.islink(self.root + b"/" + p) for p in parents(rel)):
                continue  # a directory now, or below a symlink: nothing git would see at this name
            mode = SYMLINK if kind == 0o120000 else EXECUTABLE if st.st_mode & 0o100 else REGULAR
            entries[rel] = (mode, self._sha(repo, full, rel, st, mode, index, now_ns, fresh, eol))
        return Scan(entries, fresh)

    def _sha(
        self,
        repo: Repo,
        abs_path: bytes,
        rel: bytes,
        st: os.stat_result,
        mode: int,
        index: GitIndex,
        now_ns: int,
        fresh: dict[bytes, bytes] | None,
        eol: LineEndings,
    ) -> bytes:
        """The blob sha of one file: the index's where its lstat matches the entry and is not racily clean."""
        cached = index.stat.get(rel)
        if (
            cached is not None
            and cached[0] == st.st_mtime_ns
            and cached[1] == st.st_size & _M32
            and cached[2] == st.st_ino & _M32
            and cached[3] == mode
            and cached[5] == st.st_ctime_ns
            and st.st_mtime_ns < index.mtime_ns
        ):
            return cached[4]
        return self._hash(repo, abs_path, rel, st, mode, now_ns, fresh, eol, index)

    def _hash(
        self,
        repo: Repo,
        abs_path: bytes,
        rel: bytes,
        st: os.stat_result,
        mode: int,
        now_ns: int,
        fresh: dict[bytes, bytes] | None,
        eol: LineEndings,
        index: GitIndex,
    ) -> bytes:
        """
        The blob sha of one file, from the stat cache or by reading it (storing the blob unless *fresh*).

        The content is what `git add` would store: with git's end-of-line conversion where it applies.
        """
        key = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        cached = self._stat_cache.get(rel)
        if cached is not None and cached[0] == key and has_object(repo.object_store, cached[1]):
            return cached[1]
        if mode == SYMLINK:
            data = os.readlink(abs_path)
        else:
            with open(abs_path, "rb") as f:
                data = eol.clean(rel, f.read(), lambda: self._staged(repo, index, rel))
        blob = Blob.from_string(data)
        if fresh is not None and len(data) <= _FRESH_LIMIT and len(fresh) < _FRESH_FILES:
            fresh[blob.id] = data
            return blob.id  # not stored, so not cached either: the cache only names blobs in the store
        store = repo.object_store
        if not has_object(store, blob.id):
            store.add_object(blob)
        if st.st_mtime_ns < now_ns - _RACY_NS and st.st_ctime_ns < now_ns - _RACY_NS:
            self._stat_cache[rel] = (key, blob.id)
        return blob.id

    @staticmethod
    def _staged(repo: Repo, index: GitIndex, rel: bytes) -> bytes | None:
        entry = index.flat.get(rel)
        if entry is None or not has_object(repo.object_store, entry[1]):
            return None
        blob = repo.object_store[ObjectID(entry[1])]
        return blob.as_raw_string() if isinstance(blob, Blob) else None

    def lstat(self, path: bytes) -> os.stat_result:
        return os.lstat(self.root + b"/" + path)

    def blocked(self, targets: Mapping[bytes, Entry | None], scan: Scan) -> set[bytes]:
        """
        The paths of *targets* that `write` could not give their entry without touching other files.

        A file cannot replace a directory that keeps other files (ignored ones included), and nothing can go
        below a name that stays a file or is a symlink.
        """
        root = self.root
        removed = {path for path, entry in targets.items() if entry is None or path in scan.entries}
        blocked: set[bytes] = set()
        for path, entry in targets.items():
            if entry is None:
                continue
            for parent in parents(path):
                full = root + b"/" + parent
                if parent not in removed and (
                    os.path.islink(full) or (os.path.lexists(full) and not os.path.isdir(full))
                ):
                    blocked.add(path)
                    break
            full = root + b"/" + path
            if path not in blocked and os.path.isdir(full) and not os.path.islink(full):
                for dirpath, _, names in os.walk(full):
                    rel_dir = dirpath[len(root) + 1 :]
                    if any(rel_dir + b"/" + name not in removed for name in names):
                        blocked.add(path)
                        break
        return blocked

    def write(
        self,
        targets: Mapping[bytes, Entry | None],
        scan: Scan,
        read: Callable[[bytes], bytes],
        eol: LineEndings | None = None,
    ) -> None:
        """
        Make each path in *targets* hold exactly its entry (None: absent); remove directories left empty.

        *scan* is the tree as it is now; *read* gives the content of a sha; files are written as a checkout
        writes them (with git's end-of-line conversion, *eol*).

        Raises:
            WorkspaceConflictError: A directory that must become a file still holds other (ignored) files, or a
                file or symlink stands where a directory must go again. Paths written before are kept.
        """
        root = self.root
        # Remove what must go first, deepest paths first, so a directory can become a file.
        for path in sorted(targets, key=lambda p: p.count(b"/"), reverse=True):
            if path in scan.entries and (targets[path] is None or scan.entries[path][0] == SYMLINK):
                os.unlink(root + b"/" + path)
                self._stat_cache.pop(path, None)
                for parent in parents(path):
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
            for parent in reversed(list(parents(path))):
                parent_full = root + b"/" + parent
                # Never write through a symlink: it could point anywhere outside the workspace.
                if os.path.islink(parent_full) or (os.path.lexists(parent_full) and not os.path.isdir(parent_full)):
                    raise WorkspaceConflictError(
                        f"{display(parent)} is a file or symlink now but must be a directory again; move it away first."
                    )
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if os.path.isdir(full) and not os.path.islink(full):
                try:
                    os.rmdir(full)
                except OSError as exc:
                    raise WorkspaceConflictError(
                        f"{display(path)} is a directory with other (ignored) files in it; "
                        "move them away, then try again."
                    ) from exc
            if mode == GITLINK:
                continue
            data = read(sha)
            if mode == SYMLINK:
                if os.path.lexists(full):
                    os.unlink(full)
                os.symlink(data, full)
            else:
                tmp = full + b".voicecoder-tmp"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # a leftover of a crash would keep its old mode
                # The kernel applies the process umask on creation, as git does; reading the umask would
                # mean setting it (os.umask), which races with every other thread of an embedding process.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777 if mode == EXECUTABLE else 0o666)
                with os.fdopen(fd, "wb") as f:
                    f.write(eol.smudge(path, data) if eol is not None else data)
                os.replace(tmp, full)
            self._stat_cache.pop(path, None)
