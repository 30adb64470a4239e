"""
`DulwichWorkspace`: every agent turn is a transaction on a real git repository, done with dulwich.

A turn has two durable checkpoints, each a commit of the working tree (tracked and untracked-but-not-ignored
files) whose first parent is HEAD and whose last parent records the index when it differs from HEAD: the
baseline under ``refs/voicecoder/checkpoints/<turn_id>`` and the turn end under
``refs/voicecoder/turn-ends/<turn_id>``. The developer's index is never touched by a checkpoint. From them,
HEAD and the current tree, `voicecoder.adapters.git.turns` works out who owns each path and what Approve
commits and Reject restores; this module does the reading and writing around it, all under the index lock
where the index changes.

dulwich is blocking: every operation runs in a worker thread behind one `anyio.Lock` per workspace.
"""

# The working tree is handled as bytes paths through `os` (file names need not be UTF-8), not pathlib.
# ruff: noqa: PTH116

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

import anyio
import anyio.to_thread
import attrs
from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked, GitFile
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from voicecoder.adapters.git.index import GitIndex, IndexUpdates
from voicecoder.adapters.git.scan import Scan, Worktree
from voicecoder.adapters.git.trees import EMPTY_TREE, Entry, Flat, TreeStore, diff_flats, display
from voicecoder.adapters.git.turns import TurnTrees, TurnView, rebase
from voicecoder.domain.errors import (
    NotARepositoryError,
    StaleChangeError,
    VoicecoderError,
    WorkspaceConflictError,
    WorkspaceError,
)
from voicecoder.domain.model import (
    ApprovalChoice,
    Baseline,
    CommitInfo,
    CommitMessage,
    Diagnostic,
    Diff,
    Restored,
    TurnId,
    WorkspaceStatus,
)

__all__ = ["CHECKPOINT_PREFIX", "TURN_END_PREFIX", "DulwichWorkspace"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CHECKPOINT_PREFIX: Final = b"refs/voicecoder/checkpoints/"
TURN_END_PREFIX: Final = b"refs/voicecoder/turn-ends/"
_HEAD: Final = Ref(b"HEAD")
_ENTANGLED: Final = b"entangled "


class _Blobs:
    """`turns.Blobs` over the object store; merged contents are kept in memory unless *durable*."""

    def __init__(self, repo: Repo, scan: Scan, *, durable: bool) -> None:
        self._store = repo.object_store
        self._scan = scan
        self._durable = durable
        self._memory: dict[bytes, bytes] = {}

    def read(self, sha: bytes) -> bytes:
        if sha in self._memory:
            return self._memory[sha]
        return self._scan.read(self._store, sha)

    def store(self, data: bytes) -> bytes:
        blob = Blob.from_string(data)
        if not self._durable:
            self._memory[blob.id] = data
        elif blob.id not in self._store:
            self._store.add_object(blob)
        return bytes(blob.id)


@attrs.frozen
class _Checkpoint:
    commit: Commit
    tree: Flat
    index: Flat
    entangled: frozenset[bytes]


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
        self._trees = TreeStore()
        self._worktree = Worktree(self._root)
        self._index_cache: GitIndex | None = None
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

    async def begin_turn(self, turn_id: TurnId, /, *, extends: Baseline | None = None) -> Baseline:
        return await self._run(functools.partial(self._begin_turn, turn_id, extends))

    async def end_turn(self, baseline: Baseline, /) -> Baseline:
        return await self._run(functools.partial(self._end_turn, baseline))

    async def changes_since(self, baseline: Baseline, /) -> Diff:
        return await self._run(functools.partial(self._changes_since, baseline))

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
        return await self._run(
            functools.partial(self._commit_turn, baseline, fingerprint, message, author or self.author, choice)
        )

    async def restore_turn(self, baseline: Baseline, /) -> Restored:
        return await self._run(functools.partial(self._restore_turn, baseline))

    async def release_turn(self, baseline: Baseline, /) -> None:
        def release(repo: Repo) -> None:
            # Only the checkpoints this baseline names: a ref reused by a later turn id is left alone.
            turn = baseline.turn_id.value.encode()
            repo.refs.remove_if_equals(Ref(CHECKPOINT_PREFIX + turn), ObjectID(baseline.snapshot.encode()))
            if baseline.turn_end is not None:
                repo.refs.remove_if_equals(Ref(TURN_END_PREFIX + turn), ObjectID(baseline.turn_end.encode()))

        await self._run(release)

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
                    fix=f"Point WORKSPACE_DIR at a git repository (or an empty directory) you own: {self.path}",
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
        commit.message = message.encode("utf-8", "surrogateescape")
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
        return self._trees.flatten(repo.object_store, self._trees.commit_tree(repo.object_store, head))

    def _index(self, repo: Repo) -> GitIndex:
        path = repo.index_path()
        cached = self._index_cache
        if cached is not None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and cached.key == (st.st_mtime_ns, st.st_size, st.st_ino):
                return cached
        self._index_cache = GitIndex.load(path)
        return self._index_cache

    def _index_tree(self, repo: Repo, head: bytes | None, index: GitIndex) -> bytes:
        """The tree of the index (as `git write-tree` would write it), built from HEAD's tree and cached."""
        cached = self._index_tree_cache
        if cached is not None and cached[0] == head and cached[1] == index.flat:
            return cached[2]
        store = repo.object_store
        head_tree = self._trees.commit_tree(store, head)
        tree = self._trees.tree_of(store, index.flat, like=head_tree, like_flat=self._head_flat(repo, head))
        self._index_tree_cache = (head, index.flat, tree)
        return tree

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

    def _index_updates(self, targets: dict[bytes, Entry | None], worktree: Flat) -> IndexUpdates:
        """Index entries for *targets*; stat data only where the file on disk (*worktree*) holds that content."""
        return {
            path: None
            if entry is None
            else (entry[0], entry[1], self._worktree.lstat(path) if worktree.get(path) == entry else None)
            for path, entry in targets.items()
        }

    # --- checkpoints ---------------------------------------------------------------------

    def _checkpoint(
        self,
        repo: Repo,
        ref: bytes,
        label: str,
        tree: bytes,
        index_tree: bytes,
        entangled: frozenset[bytes] = frozenset(),
    ) -> bytes:
        """
        Record *tree* (a working tree) and *index_tree* as one commit under *ref*.

        Parents: HEAD (if any), then a commit of the index unless it is HEAD's tree. Either way the last parent's
        tree (or nothing) is the index as it was.
        """
        head = self._head(repo)
        parents: list[bytes] = [head] if head is not None else []
        head_tree = self._trees.commit_tree(repo.object_store, head)
        if index_tree != (head_tree if head_tree is not None else EMPTY_TREE):
            parents.append(self._store_commit(repo, index_tree, parents, f"index of {label}\n", self.author).id)
        text = f"voicecoder checkpoint: {label}\n"
        if entangled:
            # Paths need not be UTF-8: hex keeps them exact in the message.
            text += "\n" + "".join(f"{_ENTANGLED.decode()}{path.hex()}\n" for path in sorted(entangled))
        commit = self._store_commit(repo, tree, parents, text, self.author)
        repo.refs[Ref(ref)] = commit.id
        return bytes(commit.id)

    def _snapshot(self, repo: Repo) -> tuple[Scan, GitIndex, bytes, bytes]:
        """The working tree (stored), the index, and their trees; refuses an index git could not commit."""
        index = self._index(repo)
        index.check_writable(self._root)
        head = self._head(repo)
        scan = self._worktree.scan(repo, index)
        index_tree = self._index_tree(repo, head, index)
        store = repo.object_store
        tree = self._trees.tree_of(store, scan.entries, like=index_tree, like_flat=index.flat)
        return scan, index, tree, index_tree

    def _load_checkpoint(self, repo: Repo, sha: str, turn_id: TurnId) -> _Checkpoint:
        store = repo.object_store
        try:
            commit = store[ObjectID(sha.encode())]
        except (KeyError, ValueError, AssertionError):
            commit = None
        if not isinstance(commit, Commit):
            raise WorkspaceError(
                f"The checkpoint {sha[:12]} of turn {turn_id} is missing from the repository "
                "(was it garbage-collected?). Review the files with /status and commit or discard them by hand."
            )
        index_tree = self._trees.commit_tree(store, commit.parents[-1]) if commit.parents else None
        entangled = frozenset(
            bytes.fromhex(line[len(_ENTANGLED) :].decode("ascii"))
            for line in commit.message.splitlines()
            if line.startswith(_ENTANGLED)
        )
        return _Checkpoint(
            commit, self._trees.flatten(store, commit.tree), self._trees.flatten(store, index_tree), entangled
        )

    def _turn(self, repo: Repo, baseline: Baseline, *, durable: bool = False) -> tuple[TurnView, Scan, GitIndex]:
        """The turn as `turns.TurnView` sees it, with the scan and index it was made from."""
        base = self._load_checkpoint(repo, baseline.snapshot, baseline.turn_id)
        end = self._load_checkpoint(repo, baseline.turn_end, baseline.turn_id) if baseline.turn_end else None
        index = self._index(repo)
        # Without a turn end the tree now stands in for it, and what it holds may be committed: store it.
        scan = self._worktree.scan(repo, index, durable=durable and end is None)
        trees = TurnTrees(
            base=base.tree,
            base_index=base.index,
            end=end.tree if end is not None else scan.entries,
            end_index=end.index if end is not None else index.flat,
            current=scan.entries,
            index=index.flat,
            head=self._head_flat(repo, self._head(repo)),
            entangled=base.entangled,
        )
        return TurnView(trees, _Blobs(repo, scan, durable=durable)), scan, index

    # --- operations (worker thread) ------------------------------------------------------

    def _begin_turn(self, turn_id: TurnId, extends: Baseline | None, repo: Repo) -> Baseline:
        scan, index, tree, index_tree = self._snapshot(repo)
        entangled: frozenset[bytes] = frozenset()
        label = f"start of turn {turn_id}"
        if extends is not None:
            previous, _, _ = self._turn(repo, extends, durable=True)
            store = repo.object_store
            base, base_index, entangled = rebase(
                previous.trees, previous.blobs, start=scan.entries, start_index=index.flat
            )
            tree = self._trees.tree_of(store, base, like=tree, like_flat=scan.entries)
            index_tree = self._trees.tree_of(store, base_index, like=index_tree, like_flat=index.flat)
            label += f", continuing turn {extends.turn_id}"
        sha = self._checkpoint(repo, CHECKPOINT_PREFIX + turn_id.value.encode(), label, tree, index_tree, entangled)
        return Baseline(turn_id, sha.decode())

    def _end_turn(self, baseline: Baseline, repo: Repo) -> Baseline:
        self._load_checkpoint(repo, baseline.snapshot, baseline.turn_id)
        _, _, tree, index_tree = self._snapshot(repo)
        ref = TURN_END_PREFIX + baseline.turn_id.value.encode()
        sha = self._checkpoint(repo, ref, f"end of turn {baseline.turn_id}", tree, index_tree)
        return attrs.evolve(baseline, turn_end=sha.decode())

    def _changes_since(self, baseline: Baseline, repo: Repo) -> Diff:
        view, _, _ = self._turn(repo, baseline)
        return view.diff()

    def _commit_turn(
        self,
        baseline: Baseline,
        fingerprint: str,
        message: CommitMessage,
        author: str,
        choice: ApprovalChoice | None,
        repo: Repo,
    ) -> CommitInfo:
        view, scan, index = self._turn(repo, baseline, durable=True)
        if not view.paths:
            raise WorkspaceError("Nothing to commit: the turn changed no files (or its changes were undone).")
        if not view.fingerprint.startswith(fingerprint):
            raise StaleChangeError("the files changed after the diff was made")
        index.check_writable(self._root)
        conflicted = sorted(p for p in view.paths if p in index.conflicted)
        if conflicted:
            raise WorkspaceConflictError(
                f"{display(conflicted[0])} has unresolved merge conflicts; resolve them first."
            )
        plan = view.approve(choice)
        if not plan.commit:
            raise WorkspaceError(
                "Nothing to commit: the turn leaves the last commit as it is (it only removed files that were "
                "never committed, put back committed content, or every file was left out)."
            )
        store = repo.object_store
        head = self._head(repo)
        head_tree = self._trees.commit_tree(store, head)
        tree, _ = self._trees.patch(store, head_tree, plan.commit, base_flat=view.trees.head)
        text = message.render()
        commit = self._store_commit(repo, tree, [head] if head else [], text, author)

        def move_head() -> None:
            if not repo.refs.set_if_equals(_HEAD, head, commit.id, message=b"commit: " + message.subject.encode()):
                raise WorkspaceError("HEAD moved while committing; nothing was committed. Try again.")

        self._write_index(repo, self._index_updates(plan.index, scan.entries), before_commit=move_head)
        logger.info("committed %d path(s) as %s", len(plan.commit), commit.id.decode()[:7])
        return CommitInfo(commit.id.decode(), text, author, datetime.fromtimestamp(commit.commit_time, tz=UTC))

    def _restore_turn(self, baseline: Baseline, repo: Repo) -> Restored:
        view, scan, index = self._turn(repo, baseline, durable=True)
        index.check_writable(self._root)
        plan = view.reject().settled(lambda targets: self._worktree.blocked(targets, scan))
        after = {**scan.entries, **{p: e for p, e in plan.worktree.items() if e is not None}}
        for path, entry in plan.worktree.items():
            if entry is None:
                after.pop(path, None)
        self._write_index(
            repo,
            lambda: self._index_updates(plan.index, after),
            before_commit=lambda: self._worktree.write(plan.worktree, scan, view.blobs.read),
        )
        result = plan.result()
        logger.info("restored %d path(s) of turn %s, kept %d", len(result.restored), baseline.turn_id, len(result.kept))
        return result

    def _status(self, repo: Repo) -> WorkspaceStatus:
        head = self._head(repo)
        head_flat = self._head_flat(repo, head)
        index = self._index(repo)
        scan = self._worktree.scan(repo, index, durable=False)
        index_flat = index.flat
        staged = sorted(diff_flats(head_flat, index_flat))
        unstaged = sorted({p for p, e in index_flat.items() if scan.entries.get(p) != e}.union(index.conflicted))
        untracked = sorted(p for p in scan.entries if p not in index_flat and p not in index.conflicted)
        refs, _ = repo.refs.follow(_HEAD)
        branch: str | None = None
        if len(refs) > 1 and refs[-1].startswith(b"refs/heads/"):
            branch = display(refs[-1][len(b"refs/heads/") :])
        subject = when = None
        if head is not None:
            commit = repo.object_store[ObjectID(head)]
            if isinstance(commit, Commit):
                subject = commit.message.decode("utf-8", "replace").split("\n", 1)[0]
                when = datetime.fromtimestamp(commit.commit_time, tz=UTC)
        return WorkspaceStatus(
            branch=branch,
            head=head.decode()[:7] if head else None,
            staged=tuple(map(display, staged)),
            unstaged=tuple(map(display, unstaged)),
            untracked=tuple(map(display, untracked)),
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
        store = repo.object_store
        after = self._trees.flatten(store, target.tree)
        before = self._head_flat(repo, target.parents[0]) if target.parents else {}
        paths = diff_flats(before, after)
        if not paths:
            raise WorkspaceError(f"{sha[:7]} changed no files; there is nothing to revert.")
        head = self._head(repo)
        head_flat = self._head_flat(repo, head)
        moved = sorted(p for p in paths if head_flat.get(p) != after.get(p))
        if moved:
            raise WorkspaceConflictError(
                f"{', '.join(map(display, moved[:5]))} changed after {sha[:7]}; revert that by hand with git."
            )
        index = self._index(repo)
        index.check_writable(self._root)
        scan = self._worktree.scan(repo, index, durable=False)
        dirty = sorted(
            p for p in paths if scan.entries.get(p) != head_flat.get(p) or index.flat.get(p) != head_flat.get(p)
        )
        if dirty:
            raise WorkspaceConflictError(
                f"{', '.join(map(display, dirty[:5]))} have uncommitted edits; commit or discard them, then revert."
            )
        targets = {path: before.get(path) for path in paths}
        tree, _ = self._trees.patch(store, self._trees.commit_tree(store, head), targets, base_flat=head_flat)
        text = message.render()
        commit = self._store_commit(repo, tree, [head] if head else [], text, author)

        def move_head_and_files() -> None:
            if not repo.refs.set_if_equals(_HEAD, head, commit.id, message=b"revert: " + message.subject.encode()):
                raise WorkspaceError("HEAD moved while reverting; nothing was changed. Try again.")
            self._worktree.write(targets, scan, lambda blob: scan.read(store, blob))

        after_flat = {**scan.entries, **{p: e for p, e in targets.items() if e is not None}}
        self._write_index(repo, lambda: self._index_updates(targets, after_flat), before_commit=move_head_and_files)
        logger.info("reverted %s as %s", sha[:7], commit.id.decode()[:7])
        return CommitInfo(commit.id.decode(), text, author, datetime.fromtimestamp(commit.commit_time, tz=UTC))
