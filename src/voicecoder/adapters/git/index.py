"""
The git index file (versions 2 and 3), parsed just enough for turns and patched in place.

dulwich's `Index` reads and writes every entry through Python objects (about 60 ms each way at 10k entries);
here entries are kept as raw byte slices, so changing a few entries rewrites the file in a few milliseconds
and leaves every other entry byte-identical. Index v4 and split or sparse indexes are refused with the
command that converts them.

Patching follows `git add -A`: an entry set at ``x`` drops every ``x/…`` entry and an entry set at ``x/y``
drops a file entry ``x``, so a patched index is always one `git write-tree` accepts. An index that already
lists a name both as a file and as a directory is reported by `GitIndex.check_writable` with the command that
repairs it.
"""

# The index is handled as bytes paths through `os` (file names need not be UTF-8), not pathlib.
# ruff: noqa: PTH112, PTH114, PTH123

from __future__ import annotations

import bisect
import hashlib
import os
import shlex
import struct
from binascii import hexlify
from collections.abc import Collection
from typing import Final

import attrs

from voicecoder.adapters.git.trees import Flat, cleanup_mode, df_conflicts, display, parents, with_git_df_rules
from voicecoder.domain.errors import WorkspaceError

__all__ = ["GitIndex", "IndexUpdates", "StatKey"]

IndexUpdates = dict[bytes, tuple[int, bytes, os.stat_result | None] | None]
"""Index entries to set (mode, hex sha, stat or None for "unknown") or to remove (None)."""
StatKey = tuple[int, int, int, int, bytes, int]
"""What the index remembers of a file: (mtime_ns, size & 0xffffffff, inode & 0xffffffff, mode, hex sha, ctime_ns)."""

_ENTRY: Final = struct.Struct(">10L20sH")
_M32: Final = 0xFFFFFFFF
_FLAG_EXTENDED: Final = 0x4000
_SKIP_WORKTREE: Final = 0x4000
_INTENT_TO_ADD: Final = 0x2000
_NAME_MASK: Final = 0xFFF


def _entry_name(item: tuple[bytes, int, bytes]) -> bytes:
    return item[0]


@attrs.define
class GitIndex:
    """One parsed index file."""

    key: tuple[int, int, int]
    """(mtime_ns, size, inode) of the file this was read from: a cache key."""
    mtime_ns: int
    version: int
    stat: dict[bytes, StatKey]
    """Stage-0 entries with their stat data."""
    raw: list[tuple[bytes, int, bytes]]
    """Every entry in file order: (path, stage, raw bytes)."""
    extensions: list[tuple[bytes, bytes]]
    conflicted: frozenset[bytes]
    skip_worktree: frozenset[bytes]
    flat: Flat
    tracked_dirs: dict[bytes, int]
    """Every directory holding index entries, with the number of entries below it."""
    intent_to_add: frozenset[bytes] = frozenset()
    """Entries `git add -N` made: tracked, with nothing staged yet (git lists them with the empty blob)."""

    @classmethod
    def load(cls, path: str) -> GitIndex:
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return cls.parse(b"", (0, 0, 0), 0)
        return cls.parse(data, (st.st_mtime_ns, st.st_size, st.st_ino), st.st_mtime_ns)

    @classmethod
    def parse(cls, data: bytes, key: tuple[int, int, int], mtime_ns: int) -> GitIndex:
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
        stat_map: dict[bytes, StatKey] = {}
        flat: Flat = {}
        raw: list[tuple[bytes, int, bytes]] = []
        append = raw.append
        conflicted: set[bytes] = set()
        skip: set[bytes] = set()
        intent: set[bytes] = set()
        per_dir: dict[bytes, int] = {}
        for _ in range(count):
            (c_s, c_ns, m_s, m_ns, _, ino, mode, _, _, size, sha, flags) = unpack(data, offset)
            name_at = offset + 62
            if flags & _FLAG_EXTENDED:
                (extended,) = struct.unpack_from(">H", data, name_at)
                name_at += 2
                if extended & _SKIP_WORKTREE:
                    skip.add(data[name_at : find(b"\0", name_at)])
                if extended & _INTENT_TO_ADD:
                    intent.add(data[name_at : find(b"\0", name_at)])
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
            for parent in parents(directory):
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
            key,
            mtime_ns,
            version,
            stat_map,
            raw,
            extensions,
            frozenset(conflicted),
            frozenset(skip),
            flat,
            dirs,
            frozenset(intent),
        )

    def file_and_directory(self) -> list[tuple[bytes, bytes]]:
        """Names the index lists both as a file and as a directory: (file, an entry below it)."""
        clashes = [name for name in self.flat if name in self.tracked_dirs]
        if not clashes:
            return []
        return [pair for pair in df_conflicts(name for name, _, _ in self.raw) if pair[0] in clashes]

    def check_writable(self, root: bytes) -> None:
        """
        Refuse an index git itself could not write a tree from, saying how to repair it; nothing is changed.

        Raises:
            WorkspaceError: A name is both a file and a directory in the index.
        """
        clashes = self.file_and_directory()
        if not clashes:
            return
        name, below = clashes[0]
        shown = shlex.quote(display(name))
        if os.path.isdir(root + b"/" + name) and not os.path.islink(root + b"/" + name):
            fix = f"`git rm --cached -q -- {shown}` (the directory on disk is kept)"
        else:
            fix = f"`git rm -r --cached -q -- {shlex.quote(display(name) + '/')}` (the file on disk is kept)"
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise WorkspaceError(
            f"The git index lists {display(name)} both as a file and as a directory ({display(below)}){more}, "
            f"so git cannot commit it; voicecoder changed nothing. Repair it in the workspace with {fix}, "
            "then send the prompt again."
        )

    def patched(self, updates: IndexUpdates, intent_to_add: Collection[bytes] = ()) -> tuple[bytes, GitIndex]:
        """
        The index file with stage-0 entries set to (mode, hex sha, stat) or removed (None), and its parsed form.

        Entries set at *intent_to_add* are marked as `git add -N` marks them (the index becomes version 3 if
        it was 2, as git does). File/directory clashes with other entries are removed as `git add -A` does.
        The parsed form still needs `key` and `mtime_ns` of the file once it is written.
        """
        shapes: dict[bytes, tuple[int, bytes] | None] = {
            name: None if update is None else (update[0], update[1]) for name, update in updates.items()
        }
        for name, entry in with_git_df_rules(self.flat, shapes, self.tracked_dirs).items():
            if entry is None and name not in updates:
                updates = {**updates, name: None}
        entries = list(self.raw)
        dirs = dict(self.tracked_dirs)
        stat_map = dict(self.stat)
        flat = dict(self.flat)
        conflicted = set(self.conflicted)
        for name, update in updates.items():
            at = bisect.bisect_left(entries, name, key=_entry_name)
            while at < len(entries) and entries[at][0] == name:  # every stage of *name* goes
                del entries[at]
                for parent in parents(name):
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
            if name in intent_to_add:
                # The extended-flags bit of the entry's flags, then the 16 extended bits: intent-to-add.
                flags = struct.unpack_from(">H", packed, 60)[0] | _FLAG_EXTENDED
                packed = packed[:60] + struct.pack(">HH", flags, _INTENT_TO_ADD)
            body = packed + name
            entries.insert(at, (name, 0, body + b"\0" * (8 - len(body) % 8)))
            for parent in parents(name):
                dirs[parent] = dirs.get(parent, 0) + 1
            stat_map[name] = (mtime, size & _M32, ino & _M32, mode, sha, ctime)
            flat[name] = (cleanup_mode(mode), sha)
        # Optional extensions derived from the entries (cache tree, untracked cache, fsmonitor, offsets) would
        # be stale now; git rebuilds them. Only the resolve-undo record is independent of the entries.
        kept = [(sig, ext) for sig, ext in self.extensions if sig == b"REUC"]
        intent = (self.intent_to_add - updates.keys()) | {p for p in intent_to_add if updates.get(p) is not None}
        version = 3 if intent and self.version == 2 else self.version
        parts = [struct.pack(">4sLL", b"DIRC", version, len(entries))]
        parts += [body for _, _, body in entries]
        parts += [sig + struct.pack(">L", len(ext)) + ext for sig, ext in kept]
        content = b"".join(parts)
        parsed = GitIndex(
            self.key,
            self.mtime_ns,
            version,
            stat_map,
            entries,
            kept,
            frozenset(conflicted),
            self.skip_worktree - updates.keys(),
            flat,
            dirs,
            frozenset(intent),
        )
        return content + hashlib.sha1(content).digest(), parsed  # noqa: S324 - git's own checksum
