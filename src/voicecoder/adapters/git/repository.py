"""
`GitRepository`: the repository under a `DulwichWorkspace`, and its checkpoints.

It opens (or creates) the repository, runs each operation in a worker thread behind one `anyio.Lock`, and
turns dulwich and OS failures into `WorkspaceError`s that say what to do. It keeps the caches a turn needs on
a large tree (index, index tree, flats, the stat cache of the scanner), patches the index under its lock,
and writes and reads the checkpoint commits that record a working tree and an index: first parent HEAD,
last parent a commit of the index when it differs from HEAD, entangled paths (as hex) in the message.
"""

# The working tree is handled as bytes paths through `os` (file names need not be UTF-8), not pathlib.
# ruff: noqa: PTH116

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Final, Literal, TypeVar

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
from voicecoder.adapters.git.trees import EMPTY_TREE, Entry, Flat, TreeStore
from voicecoder.adapters.git.turns import MergeMemo
from voicecoder.domain.errors import NotARepositoryError, VoicecoderError, WorkspaceError
from voicecoder.domain.model import CommitMessage, TurnId

__all__ = ["HEAD", "Checkpoint", "GitRepository", "StoreBlobs"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")

HEAD: Final = Ref(b"HEAD")
_ENTANGLED: Final = b"entangled "
_INDEX_OF: Final = b"index of "
_HEAD: Final = b"head "
_BRANCH: Final = b"branch "
_INTENT_TO_ADD: Final = b"intent-to-add "
_HAD_BRANCH: Final = b"had-branch "


class StoreBlobs:
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
class Checkpoint:
    """A checkpoint commit read back: the working tree and index it recorded, and its entangled paths."""

    commit: Commit
    tree: Flat
    index: Flat
    entangled: frozenset[bytes]
    head: ObjectID | None = None
    """HEAD when the checkpoint was made (None on an unborn branch, or unknown)."""
    unborn: bool = False
    """The branch was unborn when the checkpoint was made (known for checkpoints that name their HEAD)."""
    branch: Ref | None = None
    """The branch HEAD named when the checkpoint was made (None: detached, or not recorded)."""
    intent_to_add: frozenset[bytes] = frozenset()
    """Paths the index held as `git add -N` left them (a tree cannot say so; the message does)."""
    branches: frozenset[bytes] = frozenset()
    """The local branches (full ref names) there were when a baseline was made (empty: not recorded)."""


class _Bounded(dict[_K, _V]):
    """A dict that forgets everything once it holds *limit* items (caches of a long-running bot stay small)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: _K, value: _V) -> None:
        if len(self) >= self.limit:
            self.clear()
        super().__setitem__(key, value)


class GitRepository:
    """One repository on disk, opened per operation; see the module docstring."""

    def __init__(self, path: Path, *, author: str, init_if_missing: bool) -> None:
        self.path = Path(path).absolute()
        self.author = author
        self.init_if_missing = init_if_missing
        self.root = os.fsencode(self.path)
        self.trees = TreeStore()
        self.worktree = Worktree(self.root)
        self._lock = anyio.Lock()
        self.merges: MergeMemo = _Bounded(2_000)
        """Three-way merges of recent turns: the diff at the turn end and the Approve after it make the same ones."""
        self._index_cache: GitIndex | None = None
        self._index_tree_cache: tuple[bytes | None, Flat, bytes] | None = None

    async def run(self, operation: Callable[[Repo], _T]) -> _T:
        async with self._lock:
            return await anyio.to_thread.run_sync(functools.partial(self.call, operation))

    def call(self, operation: Callable[[Repo], _T]) -> _T:
        started = time.perf_counter()
        try:
            with self.open_repo() as repo:
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

    def open_repo(self) -> Repo:
        try:
            repo = Repo(str(self.path))
        except NotGitRepository:
            if not self.init_if_missing:
                raise NotARepositoryError(
                    f"{self.path} is not a git repository. Run `git init` there, or enable creating it."
                ) from None
            return self.init_repo()
        except FileNotFoundError:
            if not self.init_if_missing:
                raise NotARepositoryError(f"{self.path} does not exist. Create it and run `git init`.") from None
            return self.init_repo()
        if repo.bare:
            repo.close()
            raise NotARepositoryError(f"{self.path} is a bare repository; point the workspace at a checkout.")
        return repo

    def init_repo(self) -> Repo:
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
        commit = self.make_commit(tree.id, [], CommitMessage("Initial commit (voicecoder)").render(), self.author)
        repo.object_store.add_object(commit)
        repo.refs.set_if_equals(HEAD, None, commit.id, message=b"commit (initial): Initial commit (voicecoder)")
        logger.info("initialised a git repository at %s", self.path)
        return repo

    @staticmethod
    def make_commit(tree: bytes, parents: Sequence[bytes], message: str, author: str) -> Commit:
        commit = Commit()
        commit.tree = ObjectID(tree)
        commit.parents = [ObjectID(p) for p in parents]
        commit.author = commit.committer = author.encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode("utf-8", "surrogateescape")
        return commit

    def store_commit(self, repo: Repo, tree: bytes, parents: Sequence[bytes], message: str, author: str) -> Commit:
        commit = self.make_commit(tree, parents, message, author)
        repo.object_store.add_object(commit)
        return commit

    @staticmethod
    def head(repo: Repo) -> ObjectID | None:
        _, sha = repo.refs.follow(HEAD)
        return sha

    def head_flat(self, repo: Repo, head: bytes | None) -> Flat:
        return self.trees.flatten(repo.object_store, self.trees.commit_tree(repo.object_store, head))

    def index(self, repo: Repo) -> GitIndex:
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

    def index_tree(self, repo: Repo, head: bytes | None, index: GitIndex) -> bytes:
        """The tree of the index (as `git write-tree` would write it), built from HEAD's tree and cached."""
        cached = self._index_tree_cache
        if cached is not None and cached[0] == head and cached[1] == index.flat:
            return cached[2]
        store = repo.object_store
        head_tree = self.trees.commit_tree(store, head)
        tree = self.trees.tree_of(store, index.flat, like=head_tree, like_flat=self.head_flat(repo, head))
        self._index_tree_cache = (head, index.flat, tree)
        return tree

    def write_index(
        self,
        repo: Repo,
        updates: IndexUpdates | Callable[[], IndexUpdates],
        before_commit: Callable[[], None] | None = None,
        intent_to_add: Collection[bytes] = (),
    ) -> None:
        """
        Patch the index under its lock (entries set at *intent_to_add* as `git add -N` makes them).

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
            data, parsed = self.index(repo).patched(changes, intent_to_add)
            f.write(data)
        except BaseException:
            f.abort()
            raise
        f.close()
        st = os.stat(path)
        self._index_cache = attrs.evolve(parsed, key=(st.st_mtime_ns, st.st_size, st.st_ino), mtime_ns=st.st_mtime_ns)

    def index_updates(self, targets: dict[bytes, Entry | None], worktree: Flat) -> IndexUpdates:
        """Index entries for *targets*; stat data only where the file on disk (*worktree*) holds that content."""
        return {
            path: None
            if entry is None
            else (entry[0], entry[1], self.worktree.lstat(path) if worktree.get(path) == entry else None)
            for path, entry in targets.items()
        }

    # --- checkpoints ---------------------------------------------------------------------

    def checkpoint(
        self,
        repo: Repo,
        ref: bytes,
        label: str,
        tree: bytes,
        index_tree: bytes,
        entangled: frozenset[bytes] = frozenset(),
        *,
        head: ObjectID | Literal[False] | None = False,
        intent_to_add: frozenset[bytes] = frozenset(),
        branches: frozenset[bytes] | None = None,
        branch: Ref | Literal[False] | None = False,
    ) -> bytes:
        """
        Record *tree* (a working tree) and *index_tree* as one commit under *ref*.

        Parents: HEAD (if any; or *head* unless False, None for an unborn branch), then a commit of the index
        unless it is that commit's tree. Either way the last parent's tree (or nothing) is the index as it was.
        The message names the HEAD too (``head -`` for an unborn branch), and lists the local branches there are
        (or *branches*, where given) if *head* is given: a baseline's. It names the branch HEAD names, or *branch*
        unless False.
        """
        recorded_head = head is not False
        if head is False:
            head = self.head(repo)
        parents: list[bytes] = [head] if head is not None else []
        head_tree = self.trees.commit_tree(repo.object_store, head)
        if index_tree != (head_tree if head_tree is not None else EMPTY_TREE):
            parents.append(
                self.store_commit(repo, index_tree, parents, f"{_INDEX_OF.decode()}{label}\n", self.author).id
            )
        text = f"voicecoder checkpoint: {label}\n\n{_HEAD.decode()}{head.decode() if head else '-'}\n"
        if branch is False:
            names, _ = repo.refs.follow(HEAD)
            branch = names[-1] if len(names) > 1 else None
        if branch is not None:  # HEAD names a branch (not detached); hex, as ref names need not be UTF-8
            text += f"{_BRANCH.decode()}{branch.hex()}\n"
        # Paths need not be UTF-8: hex keeps them exact in the message.
        text += "".join(f"{_ENTANGLED.decode()}{path.hex()}\n" for path in sorted(entangled))
        text += "".join(f"{_INTENT_TO_ADD.decode()}{path.hex()}\n" for path in sorted(intent_to_add))
        if recorded_head:
            if branches is None:
                branches = frozenset(b"refs/heads/" + name for name in repo.refs.keys(base=Ref(b"refs/heads/")))
            text += "".join(f"{_HAD_BRANCH.decode()}{ref.hex()}\n" for ref in sorted(branches))
        commit = self.store_commit(repo, tree, parents, text, self.author)
        repo.refs[Ref(ref)] = commit.id
        return bytes(commit.id)

    def snapshot(self, repo: Repo) -> tuple[Scan, GitIndex, bytes, bytes]:
        """The working tree (stored), the index, and their trees; refuses an index git could not commit."""
        index = self.index(repo)
        index.check_writable(self.root)
        head = self.head(repo)
        scan = self.worktree.scan(repo, index)
        index_tree = self.index_tree(repo, head, index)
        store = repo.object_store
        tree = self.trees.tree_of(store, scan.entries, like=index_tree, like_flat=index.flat)
        return scan, index, tree, index_tree

    def load_checkpoint(self, repo: Repo, sha: str, turn_id: TurnId) -> Checkpoint:
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
        index_tree = self.trees.commit_tree(store, commit.parents[-1]) if commit.parents else None
        lines = commit.message.splitlines()
        named = [line[len(_HEAD) :] for line in lines if line.startswith(_HEAD)]
        unborn = named == [b"-"]
        branch = [bytes.fromhex(line[len(_BRANCH) :].decode("ascii")) for line in lines if line.startswith(_BRANCH)]
        # Older checkpoints do not name it: the first parent is HEAD, unless it is the commit of the index.
        head = None if unborn else ObjectID(named[0]) if named else commit.parents[0] if commit.parents else None
        if not named and head is not None and len(commit.parents) == 1:
            first = store[head]
            if isinstance(first, Commit) and first.message.startswith(_INDEX_OF):
                head = None

        def listed(label: bytes) -> frozenset[bytes]:
            return frozenset(
                bytes.fromhex(line[len(label) :].decode("ascii")) for line in lines if line.startswith(label)
            )

        return Checkpoint(
            commit,
            self.trees.flatten(store, commit.tree),
            self.trees.flatten(store, index_tree),
            listed(_ENTANGLED),
            head,
            unborn,
            Ref(branch[0]) if branch else None,
            listed(_INTENT_TO_ADD),
            listed(_HAD_BRANCH),
        )

    @staticmethod
    def move_branch(repo: Repo, current: ObjectID, to: ObjectID | None, turn: TurnId) -> bool:
        """Move HEAD's branch (or a detached HEAD) from *current* to *to*, or make it unborn; False if it moved."""
        message = b"voicecoder: reject turn " + turn.value.encode()
        if to is not None:
            return repo.refs.set_if_equals(HEAD, current, to, message=message)
        names, _ = repo.refs.follow(HEAD)
        if len(names) < 2:  # a detached HEAD cannot become unborn
            return False
        return repo.refs.remove_if_equals(names[-1], current, message=message)

    @staticmethod
    def return_to(repo: Repo, branch: Ref | None, at: ObjectID | None) -> Ref | None:
        """
        Make HEAD name *branch* again if it names another one now and *branch* is still at *at*.

        Then the working tree needs no checkout to go with it. Returns the branch HEAD named before, if changed.
        """
        names, _ = repo.refs.follow(HEAD)
        now = names[-1] if len(names) > 1 else None
        if branch is None or now == branch or at is None or repo.refs.as_dict().get(branch) != at:
            return None
        repo.refs.set_symbolic_ref(HEAD, branch)
        return now

    @staticmethod
    def descends(repo: Repo, commit: ObjectID, ancestor: ObjectID, *, limit: int = 1000) -> bool:
        """Whether *ancestor* is *commit* or one of its first *limit* ancestors."""
        for walk_entry in repo.get_walker(include=[commit], max_entries=limit):
            if walk_entry.commit.id == ancestor:
                return True
        return False

    def resolve_commit(self, repo: Repo, sha: str) -> Commit:
        wanted = sha.strip().lower().encode()
        if len(wanted) == 40:
            try:
                found = repo.object_store[ObjectID(wanted)]
            except (KeyError, ValueError, AssertionError):
                found = None
            if isinstance(found, Commit):
                return found
        elif len(wanted) >= 4:
            head = self.head(repo)
            if head is not None:
                for walk_entry in repo.get_walker(include=[ObjectID(head)], max_entries=1000):
                    if walk_entry.commit.id.startswith(wanted):
                        return walk_entry.commit
        raise WorkspaceError(f"Unknown commit {sha!r}; use /log to see the recent commits.")
