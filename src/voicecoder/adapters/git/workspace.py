"""
`DulwichWorkspace`: every agent turn is a transaction on a real git repository, done with dulwich.

A turn has two durable checkpoints, each a commit of the working tree (tracked and untracked-but-not-ignored
files) whose first parent is HEAD and whose last parent records the index when it differs from HEAD: the
baseline under ``refs/voicecoder/checkpoints/<turn_id>`` and the turn end under
``refs/voicecoder/turn-ends/<turn_id>``. The developer's index is never touched by a checkpoint. From them,
HEAD and the current tree, `voicecoder.adapters.git.turns` works out who owns each path and what Approve
commits and Reject restores; this module does the reading and writing around it, all under the index lock
where the index changes.

The repository itself (opening it, the locks, caches and checkpoint commits) is `GitRepository`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, NamedTuple

import attrs
from dulwich.objects import Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from voicecoder.adapters.git.eol import LineEndings
from voicecoder.adapters.git.head_refs import branch_name, head_branch, made_during, move_back, where
from voicecoder.adapters.git.index import GitIndex
from voicecoder.adapters.git.repository import HEAD, Checkpoint, GitRepository, StoreBlobs
from voicecoder.adapters.git.scan import Scan
from voicecoder.adapters.git.trees import Entry, Flat, diff_flats, display
from voicecoder.adapters.git.turns import TurnTrees, TurnView, rebase
from voicecoder.domain.errors import VoicecoderError, WorkspaceConflictError, WorkspaceError
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

__all__ = ["CHECKPOINT_PREFIX", "TURN_END_PREFIX", "DulwichWorkspace"]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX: Final = b"refs/voicecoder/checkpoints/"
TURN_END_PREFIX: Final = b"refs/voicecoder/turn-ends/"


class _Look(NamedTuple):
    """One look at a turn: the view, the scan and index it was made from, the commit it applies to, its checkpoints."""

    view: TurnView
    scan: Scan
    index_file: GitIndex
    onto: ObjectID | None
    base: Checkpoint
    end: Checkpoint | None


class DulwichWorkspace:
    """A git working tree driven with dulwich, one transaction per agent turn."""

    def __init__(
        self,
        path: Path,
        *,
        author: str = "voicecoder <voicecoder@localhost>",
        init_if_missing: bool = True,
    ) -> None:
        self._git = GitRepository(path, author=author, init_if_missing=init_if_missing)
        self.path = self._git.path
        self.author = author

    def __repr__(self) -> str:
        return f"DulwichWorkspace({str(self.path)!r})"

    # --- async port ----------------------------------------------------------------

    async def open(self) -> None:
        """
        Open the workspace; create it (with an empty initial commit) if it is not a repository yet.

        Raises:
            NotARepositoryError: The path is not a usable repository and may not be created.
        """
        await self._git.run(lambda _repo: None)

    async def begin_turn(self, turn_id: TurnId, /, *, extends: Baseline | None = None) -> Baseline:
        return await self._git.run(functools.partial(self._begin_turn, turn_id, extends))

    async def end_turn(self, baseline: Baseline, /) -> EndedTurn:
        return await self._git.run(functools.partial(self._end_turn, baseline))

    async def changes_since(self, baseline: Baseline, /) -> Diff:
        return await self._git.run(functools.partial(self._changes_since, baseline))

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
        return await self._git.run(
            functools.partial(self._commit_turn, baseline, fingerprint, message, author or self.author, choice)
        )

    async def restore_turn(self, baseline: Baseline, /) -> Restored:
        return await self._git.run(functools.partial(self._restore_turn, baseline))

    async def release_turn(self, baseline: Baseline, /) -> None:
        def release(repo: Repo) -> None:
            # Only the checkpoints this baseline names: a ref reused by a later turn id is left alone.
            turn = baseline.turn_id.value.encode()
            repo.refs.remove_if_equals(Ref(CHECKPOINT_PREFIX + turn), ObjectID(baseline.snapshot.encode()))
            if baseline.turn_end is not None:
                repo.refs.remove_if_equals(Ref(TURN_END_PREFIX + turn), ObjectID(baseline.turn_end.encode()))

        await self._git.run(release)

    async def status(self) -> WorkspaceStatus:
        return await self._git.run(self._status)

    async def revert_commit(self, sha: str, /, *, message: CommitMessage, author: str | None = None) -> CommitInfo:
        return await self._git.run(functools.partial(self._revert_commit, sha, message, author or self.author))

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

    def _turn(self, repo: Repo, baseline: Baseline, *, durable: bool = False) -> _Look:
        """The turn as `turns.TurnView` sees it, with the scan and index it was made from."""
        base = self._git.load_checkpoint(repo, baseline.snapshot, baseline.turn_id)
        end = self._git.load_checkpoint(repo, baseline.turn_end, baseline.turn_id) if baseline.turn_end else None
        index = self._git.index(repo)
        # Without a turn end the tree now stands in for it, and what it holds may be committed: store it.
        scan = self._git.worktree.scan(repo, index, durable=durable and end is None)
        onto = self._onto(repo, base, end)
        return _Look(self._view(repo, base, end, scan, index, onto, durable=durable), scan, index, onto, base, end)

    def _onto(self, repo: Repo, base: Checkpoint, end: Checkpoint | None) -> ObjectID | None:
        """
        The commit the turn's change applies to: HEAD, or HEAD before the turn if commits were made during it.

        Commits made between the baseline and the turn end (the agent ran `git commit`) are part of the agent's
        change, like its edits: the view sees them against HEAD before the turn, Approve makes one commit of
        them and the rest onto it, and Reject moves the branch back. That holds only while HEAD is still where
        the turn left it and descends from where it began (or the branch was unborn then: None); otherwise the
        change applies to HEAD as it is.
        """
        now = self._git.head(repo)
        left = end.head if end is not None else now
        if now != left:
            return now
        if self._moved(repo, base, left, end.branch if end is not None else head_branch(repo)):
            return base.head  # the agent moved HEAD away: its change is seen against where the turn began
        if now is None:
            return now
        if base.unborn:
            return None  # the branch was born during the turn: all of it is the agent's
        began = base.head
        if began is None or now == began or not self._git.descends(repo, now, began):
            return now
        return began

    def _moved(self, repo: Repo, base: Checkpoint, left: ObjectID | None, left_branch: Ref | None) -> bool:
        """
        Whether the agent left HEAD (*left*, naming *left_branch*) away from where its turn began.

        That is on another branch that was there before the turn, or on a commit that does not descend from the
        one the turn began on: a `git reset` to an older commit, a switch to an existing branch, a detached
        checkout, an orphan branch (see ADR 0048). The move is part of the agent's change, which Reject takes
        back and Approve refuses to guess about. (A branch the agent made, `git checkout -b`, is ADR 0046's.)
        """
        began = base.head
        if base.unborn or began is None:
            return False
        if left_branch is not None and left_branch != base.branch and left_branch in base.branches:
            return True  # the commits on a branch that was there already are not the agent's
        return left is None or (left != began and not self._git.descends(repo, left, began))

    def _view(
        self,
        repo: Repo,
        base: Checkpoint,
        end: Checkpoint | None,
        scan: Scan,
        index: GitIndex,
        onto: ObjectID | None,
        *,
        durable: bool,
    ) -> TurnView:
        trees = TurnTrees(
            base=base.tree,
            base_index=base.index,
            end=end.tree if end is not None else scan.entries,
            end_index=end.index if end is not None else index.flat,
            current=scan.entries,
            index=index.flat,
            head=self._git.head_flat(repo, onto),
            entangled=base.entangled,
        )
        return TurnView(trees, StoreBlobs(repo, scan, durable=durable), self._git.merges)

    # --- operations (worker thread) ------------------------------------------------------

    def _begin_turn(self, turn_id: TurnId, extends: Baseline | None, repo: Repo) -> Baseline:
        scan, index, tree, index_tree = self._git.snapshot(repo)
        entangled: frozenset[bytes] = frozenset()
        label = f"start of turn {turn_id}"
        head = self._git.head(repo)
        intent = index.intent_to_add
        branches = None
        branch: Ref | Literal[False] | None = False
        if extends is not None:
            previous, _, _, head, previous_base, _ = self._turn(repo, extends, durable=True)
            # Where the baseline keeps the earlier baseline's index entry, it keeps its intent-to-add mark too.
            end_index = previous.trees.end_index
            intent = frozenset(
                {p for p in intent if index.flat.get(p) != end_index.get(p)}
                | {p for p in previous_base.intent_to_add if index.flat.get(p) == end_index.get(p)}
            )
            store = repo.object_store
            base, base_index, entangled = rebase(
                previous.trees, previous.blobs, start=scan.entries, start_index=index.flat
            )
            tree = self._git.trees.tree_of(store, base, like=tree, like_flat=scan.entries)
            index_tree = self._git.trees.tree_of(store, base_index, like=index_tree, like_flat=index.flat)
            label += f", continuing turn {extends.turn_id}"
            # The branch HEAD named and the branches there were as the change began, like its HEAD.
            if previous_base.branches:  # recorded (older checkpoints list none: HEAD now, as before)
                branches, branch = previous_base.branches, previous_base.branch
        # An extended change still applies to the commit its first turn began on (see `_onto`).
        ref = CHECKPOINT_PREFIX + turn_id.value.encode()
        sha = self._git.checkpoint(
            repo,
            ref,
            label,
            tree,
            index_tree,
            entangled,
            head=head,
            intent_to_add=intent,
            branches=branches,
            branch=branch,
        )
        return Baseline(turn_id, sha.decode())

    def _end_turn(self, baseline: Baseline, repo: Repo) -> EndedTurn:
        base = self._git.load_checkpoint(repo, baseline.snapshot, baseline.turn_id)
        scan, index, tree, index_tree = self._git.snapshot(repo)
        ref = TURN_END_PREFIX + baseline.turn_id.value.encode()
        label = f"end of turn {baseline.turn_id}"
        sha = self._git.checkpoint(repo, ref, label, tree, index_tree, intent_to_add=index.intent_to_add)
        # The diff from the same look at the tree: at the turn end the tree is the turn end, no late edits.
        view = self._view(repo, base, None, scan, index, self._onto(repo, base, None), durable=False)
        return EndedTurn(attrs.evolve(baseline, turn_end=sha.decode()), view.diff())

    def _changes_since(self, baseline: Baseline, repo: Repo) -> Diff:
        return self._turn(repo, baseline).view.diff()

    def _commit_turn(
        self,
        baseline: Baseline,
        fingerprint: str,
        message: CommitMessage,
        author: str,
        choice: ApprovalChoice | None,
        repo: Repo,
    ) -> CommitInfo:
        view, scan, index, onto, base, end = self._turn(repo, baseline, durable=True)
        head = self._git.head(repo)
        if self._head_move(repo, base, end, head, then="approve again"):
            # The agent moved HEAD away (reset, switch): committing onto either commit would guess at its intent.
            began = where(base.branch, base.head)
            raise WorkspaceError(
                f"Claude moved HEAD during this turn, from {began} to {where(head_branch(repo), head)}, so it is "
                "not clear what Approve should commit; nothing was committed. Tap ❌ Reject to put HEAD and the "
                f"files back, or move HEAD back to {began} yourself and approve again."
            )
        plan = view.approval(fingerprint, choice)
        index.check_writable(self._git.root)
        conflicted = sorted(p for p in plan.commit if p in index.conflicted)
        if conflicted:
            raise WorkspaceConflictError(
                f"{display(conflicted[0])} has unresolved merge conflicts; resolve them first."
            )
        store = repo.object_store
        # Commits made during the turn are squashed into this one: it goes onto HEAD as the turn began.
        onto_tree = self._git.trees.commit_tree(store, onto)
        tree, _ = self._git.trees.patch(store, onto_tree, plan.commit, base_flat=view.trees.head)
        text = message.render()
        commit = self._git.store_commit(repo, tree, [onto] if onto else [], text, author)

        def move_head() -> None:
            if not repo.refs.set_if_equals(HEAD, head, commit.id, message=b"commit: " + message.subject.encode()):
                raise WorkspaceError("HEAD moved while committing; nothing was committed. Try again.")

        committed = {**view.trees.head, **{p: e for p, e in plan.commit.items() if e is not None}}
        targets = {**_unmarked(base, end, index, plan.index, committed), **plan.index}
        # A `git add -N` mark on a path the commit now holds is fulfilled: the entry becomes the committed one, as
        # `git commit <path>` leaves it. Kept, the mark would stage the file's deletion against the new HEAD, and
        # the developer's next `git commit` would remove what was just approved.
        fulfilled = {p: committed[p] for p in index.intent_to_add if p in committed and p not in targets}
        targets = {**fulfilled, **targets}
        self._git.write_index(
            repo,
            self._git.index_updates(targets, scan.entries),
            before_commit=move_head,
            intent_to_add=_still_intended(base, targets, committed),
        )
        logger.info("committed %d path(s) as %s", len(plan.commit), commit.id.decode()[:7])
        when = datetime.fromtimestamp(commit.commit_time, tz=UTC)
        return CommitInfo(commit.id.decode(), text, author, when, squashed=made_during(repo, head, onto))

    def _restore_turn(self, baseline: Baseline, repo: Repo) -> Restored:
        view, scan, index, onto, base, end = self._turn_paths(repo, baseline)
        index.check_writable(self._git.root)
        plan = view.reject().settled(lambda plan: self._git.worktree.blocked(plan.worktree, scan))
        after = {**scan.entries, **{p: e for p, e in plan.worktree.items() if e is not None}}
        for path, entry in plan.worktree.items():
            if entry is None:
                after.pop(path, None)
        # Files written back that hold what the index has get fresh stat data, as a checkout would give them.
        refreshed = {p: e for p, e in after.items() if p in plan.worktree and index.flat.get(p) == e}
        head = self._git.head(repo)
        moved = self._head_move(repo, base, end, head, then="tap ❌ Reject")
        left: list[Ref | None] = []

        def write() -> None:
            if moved:
                move_back(self._git, repo, base, head, moved, baseline.turn_id)
            # Commits made during the turn are the agent's too: the branch goes back to where the turn began, or
            # to unborn (they stay in the reflog).
            elif head is not None and onto != head and not self._git.move_branch(repo, head, onto, baseline.turn_id):
                raise WorkspaceError("HEAD moved while rejecting; nothing was changed. Try again.")
            # A branch the agent switched to (`git checkout -b`) is left, and HEAD names the developer's again.
            left.append(moved[0] if moved and moved[0] != base.branch else self._git.return_to(repo, base.branch, onto))
            self._git.worktree.write(plan.worktree, scan, view.blobs.read, LineEndings(repo))

        targets = {**_unmarked(base, end, index, plan.index, view.trees.head), **plan.index}
        self._git.write_index(
            repo,
            lambda: self._git.index_updates({**refreshed, **targets}, after),
            before_commit=write,
            intent_to_add=_still_intended(base, targets, view.trees.head),
        )
        result = plan.result()
        if moved and base.head is not None:
            result = attrs.evolve(result, moved_from=where(moved[0], head), back_at=where(base.branch, base.head))
        else:
            result = attrs.evolve(result, commits=made_during(repo, head, onto))
        if left and left[0] is not None and base.branch is not None:
            result = attrs.evolve(result, branch=branch_name(base.branch), left_branch=branch_name(left[0]))
        logger.info("restored %d path(s) of turn %s, kept %d", len(result.restored), baseline.turn_id, len(result.kept))
        return result

    def _head_move(
        self, repo: Repo, base: Checkpoint, end: Checkpoint | None, head: ObjectID | None, *, then: str
    ) -> tuple[Ref | None] | None:
        """
        The branch HEAD names (in a 1-tuple) if the agent moved HEAD away (see `_moved`) and it is still there.

        None if the agent did not, or the developer already put HEAD back where the turn began.

        Raises:
            WorkspaceError: HEAD moved again after the turn end: where it belongs cannot be told safely.
        """
        branch = head_branch(repo)
        left, left_branch = (end.head, end.branch) if end is not None else (head, branch)
        if not self._moved(repo, base, left, left_branch) or (head == base.head and branch == base.branch):
            return None
        if (head, branch) != (left, left_branch):
            raise WorkspaceError(
                f"Claude moved HEAD during this turn, from {where(base.branch, base.head)} to "
                f"{where(left_branch, left)}, and it has moved again since (now {where(branch, head)}), so where "
                "it belongs cannot be told; nothing was changed. Move HEAD back to "
                f"{where(base.branch, base.head)} yourself (git switch, or git reset --soft), then {then}."
            )
        return (branch,)

    def _turn_paths(self, repo: Repo, baseline: Baseline) -> _Look:
        """
        The turn as Reject needs it: only the paths the agent changed are looked at on disk.

        Reject writes nothing else, so the rest of the tree is taken as the turn end left it; a developer's
        file standing where one of the agent's must go is found when writing (`Worktree.blocked`).
        """
        if baseline.turn_end is None:
            return self._turn(repo, baseline)
        base = self._git.load_checkpoint(repo, baseline.snapshot, baseline.turn_id)
        end = self._git.load_checkpoint(repo, baseline.turn_end, baseline.turn_id)
        index = self._git.index(repo)
        paths = {*diff_flats(base.tree, end.tree), *diff_flats(base.index, end.index), *base.entangled}
        looked = self._git.worktree.look(repo, index, paths)
        current = {p: e for p, e in end.tree.items() if p not in paths}
        current.update(looked.entries)
        onto = self._onto(repo, base, end)
        view = self._view(repo, base, end, Scan(current, looked.fresh), index, onto, durable=True)
        return _Look(view, looked, index, onto, base, end)

    def _status(self, repo: Repo) -> WorkspaceStatus:
        head = self._git.head(repo)
        head_flat = self._git.head_flat(repo, head)
        index = self._git.index(repo)
        scan = self._git.worktree.scan(repo, index, durable=False)
        index_flat = index.flat
        staged = sorted(diff_flats(head_flat, index_flat))
        unstaged = sorted({p for p, e in index_flat.items() if scan.entries.get(p) != e}.union(index.conflicted))
        untracked = sorted(p for p in scan.entries if p not in index_flat and p not in index.conflicted)
        refs, _ = repo.refs.follow(HEAD)
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

    def _revert_commit(self, sha: str, message: CommitMessage, author: str, repo: Repo) -> CommitInfo:
        target = self._git.resolve_commit(repo, sha)
        if len(target.parents) > 1:
            raise WorkspaceError(f"{sha[:7]} is a merge commit; revert it with git by hand.")
        store = repo.object_store
        after = self._git.trees.flatten(store, target.tree)
        before = self._git.head_flat(repo, target.parents[0]) if target.parents else {}
        paths = diff_flats(before, after)
        if not paths:
            raise WorkspaceError(f"{sha[:7]} changed no files; there is nothing to revert.")
        head = self._git.head(repo)
        head_flat = self._git.head_flat(repo, head)
        moved = sorted(p for p in paths if head_flat.get(p) != after.get(p))
        if moved:
            raise WorkspaceConflictError(
                f"{', '.join(map(display, moved[:5]))} changed after {sha[:7]}; revert that by hand with git."
            )
        index = self._git.index(repo)
        index.check_writable(self._git.root)
        scan = self._git.worktree.scan(repo, index, durable=False)
        dirty = sorted(
            p for p in paths if scan.entries.get(p) != head_flat.get(p) or index.flat.get(p) != head_flat.get(p)
        )
        if dirty:
            raise WorkspaceConflictError(
                f"{', '.join(map(display, dirty[:5]))} have uncommitted edits; commit or discard them, then revert."
            )
        targets = {path: before.get(path) for path in paths}
        tree, _ = self._git.trees.patch(store, self._git.trees.commit_tree(store, head), targets, base_flat=head_flat)
        text = message.render()
        commit = self._git.store_commit(repo, tree, [head] if head else [], text, author)

        def move_head_and_files() -> None:
            if not repo.refs.set_if_equals(HEAD, head, commit.id, message=b"revert: " + message.subject.encode()):
                raise WorkspaceError("HEAD moved while reverting; nothing was changed. Try again.")
            self._git.worktree.write(targets, scan, lambda blob: scan.read(store, blob), LineEndings(repo))

        after_flat = {**scan.entries, **{p: e for p, e in targets.items() if e is not None}}
        self._git.write_index(
            repo, lambda: self._git.index_updates(targets, after_flat), before_commit=move_head_and_files
        )
        logger.info("reverted %s as %s", sha[:7], commit.id.decode()[:7])
        return CommitInfo(commit.id.decode(), text, author, datetime.fromtimestamp(commit.commit_time, tz=UTC))


def _unmarked(
    base: Checkpoint,
    end: Checkpoint | None,
    index: GitIndex,
    planned: Mapping[bytes, Entry | None],
    head: Flat,
) -> dict[bytes, Entry | None]:
    """
    Entries of empty files the developer had marked intent-to-add and the agent staged (`git add -A`).

    Marked or staged, an empty file has the same entry, so the turn's trees cannot tell the agent's staging;
    the checkpoints' lists of marks can. Approve and Reject put the mark back (unless HEAD holds the file).
    """
    if not base.intent_to_add or end is None:
        return {}
    return {
        path: base.index.get(path)
        for path in base.intent_to_add - end.intent_to_add - index.intent_to_add
        if path not in planned and path not in head and index.flat.get(path) == base.index.get(path)
    }


def _still_intended(base: Checkpoint, index: Mapping[bytes, Entry | None], head: Flat) -> frozenset[bytes]:
    """
    Paths whose index entry goes back to a `git add -N` mark of the baseline: set as before, not in *head*.

    A tree cannot record the mark, so the baseline's index lists such a path with the empty blob; putting
    that back as a plain entry would stage an empty file where the developer had staged nothing.
    """
    return frozenset(
        path
        for path in base.intent_to_add
        if path not in head and index.get(path) is not None and index.get(path) == base.index.get(path)
    )
