"""
`FakeWorkspace`: a working tree, an index and a linear history in memory, with git's turn model.

It runs the same three-way model as the git adapter (`voicecoder.adapters.git.turns`) over plain maps, so the
fake and `DulwichWorkspace` pass one `WorkspaceContract` and one state machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs

from voicecoder.adapters.git.turns import TurnTrees, TurnView, rebase
from voicecoder.domain.errors import NotARepositoryError, WorkspaceConflictError, WorkspaceError
from voicecoder.domain.model import (
    ApprovalChoice,
    Baseline,
    CommitInfo,
    CommitMessage,
    Diagnostic,
    Diff,
    EndedTurn,
    Restored,
    TurnId,
    WorkspaceStatus,
)
from voicecoder.testing.fake_clock import FakeClock

__all__ = [
    "EXECUTABLE",
    "REGULAR",
    "SYMLINK",
    "FakeCheckpoint",
    "FakeWorkspace",
    "FakeWorkspaceTree",
    "MemoryBlobs",
    "Tree",
]

REGULAR = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000

Tree = dict[str, tuple[bytes, int]]
"""Path → (content, git mode); a symlink's content is its target."""


def _blob_sha(data: bytes) -> bytes:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().encode()  # noqa: S324 - git's blob id


def _key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _name(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


@attrs.frozen
class FakeCheckpoint:
    """One checkpoint of a `FakeWorkspace`: the working tree and index it recorded."""

    files: Tree
    index: Tree
    entangled: frozenset[bytes] = frozenset()


@attrs.define
class FakeWorkspace:
    """
    A working tree, an index and a linear history held in memory, with git's turn model.

    `files` is the working tree, `index` the staging area, `head` the last commit's tree; tests edit them
    through `write`/`delete`/`chmod`/`symlink`/`stage`. Turns follow the same three-way model as the git adapter
    (`voicecoder.adapters.git.turns`), so the two pass the same `WorkspaceContract`. Set `broken` to make every
    call raise `NotARepositoryError`, `locked` to make every write raise `WorkspaceError` (a held lock).
    """

    files: Tree = attrs.field(factory=dict)
    head: Tree = attrs.field(factory=dict)
    index: Tree = attrs.field(factory=dict)
    commits: list[CommitInfo] = attrs.field(factory=list)
    snapshots: dict[str, FakeCheckpoint] = attrs.field(factory=dict)
    turn_ends: dict[str, FakeCheckpoint] = attrs.field(factory=dict)
    trees: dict[str, Tree] = attrs.field(factory=dict)
    branch: str = "main"
    clock: FakeClock = attrs.field(factory=FakeClock)
    path: str = "/fake/workspace"
    broken: str | None = None
    locked: bool = False

    # test-side helpers
    def write(self, path: str, data: bytes | str, *, executable: bool = False) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self._clear_way(path)
        self.files[path] = (raw, EXECUTABLE if executable else REGULAR)

    def symlink(self, path: str, target: str) -> None:
        self._clear_way(path)
        self.files[path] = (_key(target), SYMLINK)

    def _clear_way(self, path: str) -> None:
        """Like a file system: a file replaces a directory of the same name, and a directory a file."""
        for other in [p for p in self.files if p.startswith(path + "/")]:
            del self.files[other]
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.files.pop("/".join(parts[:i]), None)

    def delete(self, path: str) -> None:
        """Remove the file *path*, or the directory *path* with everything in it."""
        self.files.pop(path, None)
        for other in [p for p in self.files if p.startswith(path + "/")]:
            del self.files[other]

    def chmod(self, path: str, *, executable: bool) -> None:
        data, _ = self.files[path]
        self.files[path] = (data, EXECUTABLE if executable else REGULAR)

    def read(self, path: str) -> bytes:
        return self.files[path][0]

    def stage(self, path: str = "") -> None:
        """`git add -A -- path` (everything for ""): the index takes the working tree's state of *path*."""

        def under(name: str) -> bool:
            return not path or name == path or name.startswith(path + "/")

        for name in [p for p in self.index if under(p)]:
            del self.index[name]
        staged = [name for name in self.files if under(name)]
        for name in staged:
            self.index[name] = self.files[name]
        # Like `git add`: entries elsewhere that now clash with the staged ones as file and directory go.
        for name in [p for p in self.index if not under(p)]:
            if any(other.startswith(name + "/") or name.startswith(other + "/") for other in staged):
                del self.index[name]

    # conversions to the git turn model
    def _flat(self, tree: Tree, blobs: MemoryBlobs) -> dict[bytes, tuple[int, bytes]]:
        return {_key(path): (mode, blobs.store(data)) for path, (data, mode) in tree.items()}

    def _tree(self, flat: dict[bytes, tuple[int, bytes]], blobs: MemoryBlobs) -> Tree:
        return {_name(path): (blobs.read(sha), mode) for path, (mode, sha) in flat.items()}

    def _apply(self, tree: Tree, changes: dict[bytes, tuple[int, bytes] | None], blobs: MemoryBlobs) -> None:
        for path, entry in changes.items():
            if entry is None:
                tree.pop(_name(path), None)
            else:
                tree[_name(path)] = (blobs.read(entry[1]), entry[0])

    def _check(self, *, writing: bool = False) -> None:
        if self.broken is not None:
            raise NotARepositoryError(self.broken)
        if writing and self.locked:
            raise WorkspaceError("Another git command is using the repository (a lock exists); wait for it.")

    def _check_index(self) -> None:
        clashes = [(a, b) for a in self.index for b in self.index if b.startswith(a + "/")]
        if clashes:
            name, below = min(clashes)
            raise WorkspaceError(
                f"The git index lists {name} both as a file and as a directory ({below}); voicecoder changed "
                f"nothing. Repair it with `git rm --cached -q -- {name}` or `git rm -r --cached -q -- {name}/`."
            )

    def _checkpoint(self, sha: str | None, table: dict[str, FakeCheckpoint], turn: TurnId) -> FakeCheckpoint:
        if sha is None or sha not in table:
            raise WorkspaceError(f"Unknown checkpoint {sha} of turn {turn}; it may predate a reset.")
        return table[sha]

    def _view(self, baseline: Baseline) -> tuple[TurnView, MemoryBlobs]:
        blobs = MemoryBlobs()
        base = self._checkpoint(baseline.snapshot, self.snapshots, baseline.turn_id)
        end = self._checkpoint(baseline.turn_end, self.turn_ends, baseline.turn_id) if baseline.turn_end else None
        trees = TurnTrees(
            base=self._flat(base.files, blobs),
            base_index=self._flat(base.index, blobs),
            end=self._flat(end.files if end else self.files, blobs),
            end_index=self._flat(end.index if end else self.index, blobs),
            current=self._flat(self.files, blobs),
            index=self._flat(self.index, blobs),
            head=self._flat(self.head, blobs),
            entangled=base.entangled,
        )
        return TurnView(trees, blobs), blobs

    # port
    async def begin_turn(self, turn_id: TurnId, /, *, extends: Baseline | None = None) -> Baseline:
        self._check()
        self._check_index()
        checkpoint = FakeCheckpoint(dict(self.files), dict(self.index))
        if extends is not None:
            previous, blobs = self._view(extends)
            base, base_index, entangled = rebase(
                previous.trees,
                blobs,
                start=self._flat(self.files, blobs),
                start_index=self._flat(self.index, blobs),
            )
            checkpoint = FakeCheckpoint(self._tree(base, blobs), self._tree(base_index, blobs), entangled)
        snapshot = f"snap-{len(self.snapshots) + 1}-{turn_id.value}"
        self.snapshots[snapshot] = checkpoint
        return Baseline(turn_id, snapshot)

    async def end_turn(self, baseline: Baseline, /) -> EndedTurn:
        self._check()
        self._checkpoint(baseline.snapshot, self.snapshots, baseline.turn_id)
        end = f"end-{len(self.turn_ends) + 1}-{baseline.turn_id.value}"
        self.turn_ends[end] = FakeCheckpoint(dict(self.files), dict(self.index))
        ended = attrs.evolve(baseline, turn_end=end)
        return EndedTurn(ended, self._view(ended)[0].diff())

    async def changes_since(self, baseline: Baseline, /) -> Diff:
        self._check()
        return self._view(baseline)[0].diff()

    async def commit_turn(
        self,
        baseline: Baseline,
        /,
        *,
        fingerprint: str,
        message: CommitMessage,
        author: str | None = None,
        choice: ApprovalChoice | None = None,
    ) -> CommitInfo:
        self._check(writing=True)
        view, blobs = self._view(baseline)
        plan = view.approval(fingerprint, choice)
        self._apply(self.head, plan.commit, blobs)
        self._apply(self.index, plan.index, blobs)
        return self._record_commit(message, author)

    def _record_commit(self, message: CommitMessage, author: str | None) -> CommitInfo:
        rendered = message.render()
        sha = hashlib.sha1(  # noqa: S324 - an id like git's, not security
            f"{len(self.commits)}\0{rendered}".encode()
        ).hexdigest()
        info = CommitInfo(sha, rendered, author or "voicecoder <voicecoder@localhost>", self.clock.now())
        self.commits.append(info)
        self.trees[sha] = dict(self.head)
        return info

    async def restore_turn(self, baseline: Baseline, /) -> Restored:
        self._check(writing=True)
        view, blobs = self._view(baseline)
        plan = view.reject()
        self._apply(self.files, plan.worktree, blobs)
        self._apply(self.index, plan.index, blobs)
        return plan.result()

    async def release_turn(self, baseline: Baseline, /) -> None:
        self._check(writing=True)
        self.snapshots.pop(baseline.snapshot, None)
        if baseline.turn_end is not None:
            self.turn_ends.pop(baseline.turn_end, None)

    async def status(self) -> WorkspaceStatus:
        self._check()
        latest = self.commits[-1] if self.commits else None
        return WorkspaceStatus(
            branch=self.branch,
            head=latest.short_sha if latest else None,
            staged=tuple(sorted(p for p in {*self.head, *self.index} if self.head.get(p) != self.index.get(p))),
            unstaged=tuple(sorted(p for p in self.index if self.files.get(p) != self.index[p])),
            untracked=tuple(sorted(p for p in self.files if p not in self.index)),
            tracked_files=len(self.index),
            latest_subject=latest.subject if latest else None,
            latest_time=latest.committed_at if latest else None,
            path=self.path,
        )

    async def revert_commit(self, sha: str, /, *, message: CommitMessage, author: str | None = None) -> CommitInfo:
        self._check(writing=True)
        index = next((i for i, c in enumerate(self.commits) if c.sha.startswith(sha)), None)
        if index is None:
            raise WorkspaceError(f"Unknown commit {sha}.")
        after = self.trees[self.commits[index].sha]
        before = self.trees[self.commits[index - 1].sha] if index > 0 else {}
        paths = sorted(p for p in {*before, *after} if before.get(p) != after.get(p))
        if not paths:
            raise WorkspaceError(f"{sha[:7]} changed no files; there is nothing to revert.")
        for path in paths:
            if self.head.get(path) != after.get(path):
                raise WorkspaceConflictError(f"{path} changed after {sha[:7]}; revert it by hand.")
            if self.files.get(path) != after.get(path) or self.index.get(path) != after.get(path):
                raise WorkspaceConflictError(f"{path} has uncommitted edits; commit or discard them, then revert.")
        for path in paths:
            for tree in (self.head, self.index, self.files):
                if path in before:
                    tree[path] = before[path]
                else:
                    tree.pop(path, None)
        return self._record_commit(message, author)

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [Diagnostic("workspace", ok=True, detail=f"in-memory workspace on branch {self.branch}")]


@attrs.define
class FakeWorkspaceTree:
    """A `voicecoder.testing.contracts.workspace.WorkspaceTree` over a `FakeWorkspace`'s maps."""

    fake: FakeWorkspace

    def write(self, path: str, data: bytes, *, executable: bool = False) -> None:
        self.fake.write(path, data, executable=executable)

    def symlink(self, path: str, target: str) -> None:
        self.fake.symlink(path, target)

    def delete(self, path: str) -> None:
        self.fake.delete(path)

    def chmod(self, path: str, *, executable: bool) -> None:
        self.fake.chmod(path, executable=executable)

    def stage(self, path: str = "") -> None:
        self.fake.stage(path)

    def read(self, path: str) -> bytes:
        return self.fake.read(path)

    def staged(self, path: str) -> bytes | None:
        entry = self.fake.index.get(path)
        return None if entry is None else entry[0]

    def committed(self, path: str) -> bytes | None:
        entry = self.fake.head.get(path)
        return None if entry is None else entry[0]

    def exists(self, path: str) -> bool:
        return path in self.fake.files

    def is_executable(self, path: str) -> bool:
        return self.fake.files[path][1] == EXECUTABLE

    def is_symlink(self, path: str) -> bool:
        return path in self.fake.files and self.fake.files[path][1] == SYMLINK


class MemoryBlobs:
    """`voicecoder.adapters.git.turns.Blobs` as a dict keyed by git's blob ids."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def read(self, sha: bytes) -> bytes:
        return self.data[sha]

    def store(self, data: bytes) -> bytes:
        sha = _blob_sha(data)
        self.data[sha] = data
        return sha
