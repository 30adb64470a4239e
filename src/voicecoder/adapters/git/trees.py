"""
Trees as flat maps, and the tree patcher: build a new tree from an old one by rewriting only changed directories.

A *flat* maps each slash-separated byte path to its (mode, hex sha) entry. `TreeStore` reads trees into flats
(caching a few recent ones) and writes the tree of "base with these paths changed", memoising directory
contents so a turn on a 10,000-file repository writes a handful of tree objects.

A path that changes from a file to a directory (or back) follows git: setting a file entry removes the
directory of the same name with everything in it, and setting a path below a file removes that file.
`df_conflicts` finds a flat that breaks that rule (as a broken index can); a tree never does.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Container, Iterable, Mapping
from typing import Final

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Commit, ObjectID, Tree

from voicecoder.domain.errors import WorkspaceError

__all__ = [
    "DIRECTORY",
    "EMPTY_TREE",
    "EXECUTABLE",
    "GITLINK",
    "REGULAR",
    "SYMLINK",
    "Change",
    "Entry",
    "Flat",
    "TreeStore",
    "cleanup_mode",
    "df_conflicts",
    "diff_flats",
    "display",
    "has_object",
    "parents",
    "with_git_df_rules",
]

REGULAR: Final = 0o100644
EXECUTABLE: Final = 0o100755
SYMLINK: Final = 0o120000
GITLINK: Final = 0o160000
DIRECTORY: Final = 0o040000
EMPTY_TREE: Final = Tree().id
_MEMO_LIMIT: Final = 200_000
_FLAT_CACHE_LIMIT: Final = 16
_ITEMS_LIMIT: Final = 20_000

Entry = tuple[int, bytes]
"""(git mode, hex sha) of one path."""
Flat = dict[bytes, Entry]
"""A tree as a map from slash-separated byte path to entry."""
Change = tuple[Entry | None, Entry | None]
"""(before, after) of one path; None means absent."""


def cleanup_mode(mode: int) -> int:
    """The tree mode git records for an index or stat mode."""
    kind = mode & 0o170000
    if kind == 0o120000:
        return SYMLINK
    if kind == 0o160000:
        return GITLINK
    if kind == 0o040000:
        return DIRECTORY
    return EXECUTABLE if mode & 0o100 else REGULAR


def parents(path: bytes) -> Iterable[bytes]:
    """``a/b/c`` → ``a/b``, ``a``."""
    while b"/" in path:
        path = path.rpartition(b"/")[0]
        yield path


def display(path: bytes) -> str:
    """A path for messages (names need not be UTF-8)."""
    return path.decode("utf-8", "replace")


def has_object(store: BaseObjectStore, sha: bytes) -> bool:
    """
    Whether *store* holds *sha*, asking the file system first.

    The objects a turn writes are loose, and a loose object is one `stat` away, where a lookup through the
    store searches every pack index first. (The check itself stays: `git gc` may prune an object this
    process wrote but nothing references.)
    """
    path = getattr(store, "path", None)
    if isinstance(path, str) and os.path.exists(f"{path}/{sha[:2].decode()}/{sha[2:].decode()}"):  # noqa: PTH110
        return True
    return ObjectID(sha) in store


def diff_flats(before: Mapping[bytes, Entry], after: Mapping[bytes, Entry]) -> dict[bytes, Change]:
    """Every path whose entry differs, with (before, after)."""
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


def df_conflicts(paths: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    """Pairs (file, path below it) where one name is both a file and a directory."""
    names = set(paths)
    found: list[tuple[bytes, bytes]] = []
    for path in names:
        for parent in parents(path):
            if parent in names:
                found.append((parent, path))
                break
    return sorted(found)


def with_git_df_rules(
    base: Mapping[bytes, Entry], changes: dict[bytes, Entry | None], dirs: Container[bytes] | None = None
) -> dict[bytes, Entry | None]:
    """
    *changes* plus the removals git makes when they are applied to *base* (as `git add -A` does).

    A file entry set at ``x`` removes every ``x/…`` entry of *base*; an entry set at ``x/…`` removes a file
    entry ``x`` of *base*. Entries that *changes* sets are never removed. *dirs*, when known, holds every
    directory of *base* (it saves a pass over *base*).
    """
    wanted = {path for path, entry in changes.items() if entry is not None}
    if not wanted:
        return changes
    out = dict(changes)
    for path in wanted:
        for parent in parents(path):
            if parent in base and parent not in wanted:
                out[parent] = None
    # Only a name *base* has no file of can be a directory in it (a flat never has both): look below those.
    prefixes = tuple(path + b"/" for path in wanted if path not in base and (dirs is None or path in dirs))
    if prefixes:
        for path in base:
            if path.startswith(prefixes) and path not in wanted:
                out[path] = None
    return out


class TreeStore:
    """Reads trees as flats and writes patched trees, with caches that make repeated turns cheap."""

    def __init__(self) -> None:
        self._memo: dict[tuple[tuple[bytes, int, bytes], ...], bytes] = {}
        self._flats: dict[bytes, Flat] = {}
        self._items: dict[bytes, dict[bytes, Entry]] = {}
        """Directory contents by tree sha: patching a tree reads each directory on the way once, not per turn."""

    def commit_tree(self, store: BaseObjectStore, commit: bytes | None) -> bytes | None:
        """The tree of *commit* (None for no commit)."""
        if commit is None:
            return None
        obj = store[ObjectID(commit)]
        if not isinstance(obj, Commit):
            raise WorkspaceError(f"{commit.decode()[:12]} is not a commit; repair the repository with git.")
        tree: bytes = obj.tree
        return tree

    def flatten(self, store: BaseObjectStore, tree_sha: bytes | None) -> Flat:
        """Every file entry of the tree *tree_sha* (None: the empty tree)."""
        if tree_sha is None:
            return {}
        cached = self._flats.get(tree_sha)
        if cached is not None:
            return cached
        flat: Flat = {}
        stack = [(b"", tree_sha)]
        while stack:
            prefix, sha = stack.pop()
            tree = store[ObjectID(sha)]
            if not isinstance(tree, Tree):
                raise WorkspaceError(f"Object {sha.decode()} is not a tree; run `git fsck`.")
            for name, mode, child in tree.iteritems():
                if stat.S_ISDIR(mode):
                    stack.append((prefix + name + b"/", child))
                else:
                    flat[prefix + name] = (mode, child)
        self.remember(tree_sha, flat)
        return flat

    def remember(self, tree_sha: bytes, flat: Flat) -> None:
        """Cache *flat* as the content of *tree_sha* (the caller vouches that it is)."""
        if len(self._flats) >= _FLAT_CACHE_LIMIT:
            self._flats.pop(next(iter(self._flats)))
        self._flats[tree_sha] = flat

    def cached_flat(self, tree_sha: bytes | None) -> Flat | None:
        if tree_sha is None:
            return {}
        return self._flats.get(tree_sha)

    def patch(
        self, store: BaseObjectStore, base: bytes | None, changes: Mapping[bytes, Entry | None], *, base_flat: Flat
    ) -> tuple[bytes, Flat]:
        """
        The tree *base* (whose content is *base_flat*) with *changes* applied, and its flat.

        File/directory clashes are resolved as git does (`with_git_df_rules`); the result is remembered.
        """
        full = with_git_df_rules(base_flat, dict(changes))
        if not full and base is not None:
            return base, base_flat
        flat = dict(base_flat)
        for path, entry in full.items():
            if entry is None:
                flat.pop(path, None)
            else:
                flat[path] = entry
        tree = self._apply(store, base, full)
        sha = tree if tree is not None else self._write(store, {})
        self.remember(sha, flat)
        return sha, flat

    def tree_of(self, store: BaseObjectStore, flat: Flat, *, like: bytes | None, like_flat: Flat) -> bytes:
        """The tree holding exactly *flat*, built by patching *like* (whose content is *like_flat*)."""
        changes: dict[bytes, Entry | None] = {path: after for path, (_, after) in diff_flats(like_flat, flat).items()}
        sha, _ = self.patch(store, like, changes, base_flat=like_flat)
        self.remember(sha, flat)
        return sha

    def _write(self, store: BaseObjectStore, items: dict[bytes, Entry]) -> bytes:
        key = tuple(sorted((name, mode, sha) for name, (mode, sha) in items.items()))
        memo = self._memo.get(key)
        if memo is not None and has_object(store, memo):  # `git gc` may have pruned a tree that never got referenced
            return memo
        tree = Tree()
        for name, mode, sha in key:
            tree.add(name, mode, ObjectID(sha))
        if not has_object(store, tree.id):
            store.add_object(tree)
        if len(self._memo) > _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = tree.id
        self._remember_items(tree.id, items)
        return tree.id

    def _remember_items(self, sha: bytes, items: dict[bytes, Entry]) -> None:
        if len(self._items) >= _ITEMS_LIMIT:
            self._items.clear()
        self._items[sha] = dict(items)

    def _read_items(self, store: BaseObjectStore, sha: bytes) -> dict[bytes, Entry]:
        """The entries of the tree *sha* (a copy the caller may change)."""
        cached = self._items.get(sha)
        if cached is None:
            tree = store[ObjectID(sha)]
            if not isinstance(tree, Tree):
                raise WorkspaceError(f"Object {sha.decode()} is not a tree; run `git fsck`.")
            cached = {name: (mode, child) for name, mode, child in tree.iteritems()}
            self._remember_items(sha, cached)
        return dict(cached)

    def _apply(self, store: BaseObjectStore, base: bytes | None, changes: Mapping[bytes, Entry | None]) -> bytes | None:
        """*base* with *changes* (already free of file/directory clashes); None for an empty tree."""
        items: dict[bytes, Entry] = self._read_items(store, base) if base is not None else {}
        direct: dict[bytes, Entry | None] = {}
        nested: dict[bytes, dict[bytes, Entry | None]] = {}
        for path, entry in changes.items():
            name, sep, rest = path.partition(b"/")
            if sep:
                nested.setdefault(name, {})[rest] = entry
            else:
                direct[name] = entry
        for name, entry in direct.items():
            current = items.get(name)
            if entry is None:
                if current is not None and current[0] != DIRECTORY:
                    del items[name]
            elif name not in nested:
                items[name] = entry  # a file replaces a directory of the same name whole
        for name, sub_changes in nested.items():
            current = items.get(name)
            sub_base = current[1] if current is not None and current[0] == DIRECTORY else None
            sub = self._apply(store, sub_base, sub_changes)
            replacement = direct.get(name)
            if sub is not None and replacement is not None:
                raise WorkspaceError(f"{display(name)} would be both a file and a directory; run `git fsck`.")
            if sub is None:
                if current is not None and current[0] == DIRECTORY:
                    del items[name]
                if replacement is not None:
                    items[name] = replacement
            else:
                items[name] = (DIRECTORY, sub)
        if not items:
            return None
        return self._write(store, items)
