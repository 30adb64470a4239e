"""
The three-way turn model: who owns each path, what Approve commits, what Reject restores, what the diff shows.

A turn is seen through seven flats (`TurnTrees`): the working tree and index at the baseline (B, IB), at the
turn end (E, IE), now (C, IC), and HEAD now (H). Then

* the agent's paths are those where B ≠ E (and, for the index only, IB ≠ IE);
* a path the agent changed is the agent's alone if H = B there, *both* if the developer also had uncommitted
  edits apart from the agent's, and *overlapping* if the agent's hunks touch the developer's lines (or it
  deleted a file holding them); paths the agent created are wholly the agent's;
* late edits are those where C ≠ E: made after the turn end, by the developer or something the agent left
  running. They are neither committed nor reverted.

Approve commits, for each agent path, HEAD with the agent's hunks applied (B → E onto H); the index gets the
same hunks on top of what the developer had staged, so the developer's staged and unstaged edits stay exactly
as they were. Reject writes, for each agent path, B if nothing changed there since the turn end, else C with
the agent's hunks taken out (E → B onto C), and leaves the path alone where that overlaps. The diff and the
fingerprint are computed from the same view, so what is shown is what is committed.

Nothing here does I/O: blobs are read and stored through `Blobs`, so the git adapter and the in-memory fake
share it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Protocol

import attrs

from voicecoder.adapters.git.diff import file_diff
from voicecoder.adapters.git.merge import Overlap, merge_versions
from voicecoder.adapters.git.trees import Change, Entry, Flat, diff_flats, display, parents, with_git_df_rules
from voicecoder.domain.errors import ApprovalChoiceRequiredError, StaleChangeError, WorkspaceError
from voicecoder.domain.model import ApprovalChoice, Diff, FileChange, Ownership, Restored

__all__ = [
    "ApprovePlan",
    "Blobs",
    "MergeMemo",
    "RejectPlan",
    "TurnTrees",
    "TurnView",
    "blocked_by",
    "rebase",
]


class Blobs(Protocol):
    """File contents by hex sha."""

    def read(self, sha: bytes) -> bytes: ...

    def store(self, data: bytes) -> bytes:
        """Keep *data*; return its sha."""
        ...


MergeMemo = MutableMapping[tuple[Entry | None, Entry | None, Entry | None], tuple[Entry | Overlap | None, bytes | None]]
"""Three-way merges already made: (base, ours, theirs) → (result, merged content if new)."""


@attrs.frozen
class TurnTrees:
    """The seven flats a turn is seen through (see the module docstring)."""

    base: Flat
    base_index: Flat
    end: Flat
    end_index: Flat
    current: Flat
    index: Flat
    head: Flat
    entangled: frozenset[bytes] = frozenset()
    """Paths whose agent and developer edits were already inseparable when a pending change was extended."""


@attrs.frozen
class ApprovePlan:
    """The commit and index changes of one Approve."""

    commit: dict[bytes, Entry | None]
    """Changes to HEAD's tree, file/directory clashes resolved as git does."""
    index: dict[bytes, Entry | None]
    left_out: tuple[bytes, ...]


@attrs.frozen
class RejectPlan:
    """The working-tree and index changes of one Reject, and what it tells the developer."""

    worktree: dict[bytes, Entry | None]
    index: dict[bytes, Entry | None]
    restored: tuple[bytes, ...]
    merged: tuple[bytes, ...]
    kept: tuple[bytes, ...]

    def keeping(self, paths: Iterable[bytes]) -> RejectPlan:
        """The same plan, with *paths* left alone (kept) instead of restored."""
        drop = set(paths)
        if not drop:
            return self
        return RejectPlan(
            {p: e for p, e in self.worktree.items() if p not in drop},
            {p: e for p, e in self.index.items() if p not in drop},
            tuple(p for p in self.restored if p not in drop),
            tuple(p for p in self.merged if p not in drop),
            tuple(sorted({*self.kept, *(p for p in drop if p in self.worktree or p in self.index)})),
        )

    def settled(self, blocked: Callable[[RejectPlan], set[bytes]]) -> RejectPlan:
        """This plan without the paths *blocked* finds, until it finds none (keeping one can block another)."""
        plan = self
        while found := blocked(plan):
            plan = plan.keeping(found)
        return plan

    def result(self) -> Restored:
        return Restored(
            restored=tuple(map(display, self.restored)),
            merged=tuple(map(display, self.merged)),
            kept=tuple(map(display, self.kept)),
        )


@attrs.frozen
class _Path:
    owner: Ownership
    commit: Entry | None
    """What Approve commits for the path (for an overlapping path: the turn end, used by WITH_MY_EDITS)."""
    index: Entry | None
    """The index entry after Approve, unless `keep_index`."""
    keep_index: bool
    """The developer staged the path after the turn end: Approve leaves its index entry as it is."""


class TurnView:
    """One look at a turn: ownership of every path, the plans, the diff and its fingerprint."""

    def __init__(self, trees: TurnTrees, blobs: Blobs, merges: MergeMemo | None = None) -> None:
        self.trees = trees
        self.blobs = blobs
        self._merges: MergeMemo = merges if merges is not None else {}
        t = trees
        self.agent: dict[bytes, Change] = diff_flats(t.base, t.end)
        """Worktree paths the agent changed: (before the turn, at its end)."""
        for path in t.entangled:  # they still hold lines of an earlier turn of this change
            if path in t.base or path in t.end:
                self.agent[path] = (t.base.get(path), t.end.get(path))
        self.agent_index: dict[bytes, Change] = diff_flats(t.base_index, t.end_index)
        self.late: dict[bytes, Change] = diff_flats(t.end, t.current)
        self.paths: dict[bytes, _Path] = {path: self._classify(path) for path in sorted(self.agent)}
        # A path that must become a file or directory where the developer had staged something else: their
        # staging and the agent's file cannot both stay, so the developer decides.
        staged = set() if t.base_index == t.head else set(diff_flats(t.head, t.base_index)) - self.agent.keys()
        for path, info in self.paths.items():
            if info.owner is not Ownership.OVERLAP and info.commit is not None and _clashes(path, staged):
                restaged = t.index.get(path) != t.end_index.get(path)
                self.paths[path] = _Path(Ownership.OVERLAP, t.end.get(path), t.end.get(path), restaged)

    def _merge(self, base: Entry | None, ours: Entry | None, theirs: Entry | None) -> Entry | Overlap | None:
        key = (base, ours, theirs)
        known = self._merges.get(key)
        if known is not None:
            result, content = known
            if content is not None:
                self.blobs.store(content)  # a view that commits needs the merged blob in the store too
            return result
        made: list[bytes] = []

        def store(data: bytes) -> bytes:
            made.append(data)
            return self.blobs.store(data)

        result = merge_versions(base, ours, theirs, read=self.blobs.read, store=store)
        self._merges[key] = (result, made[-1] if made else None)
        return result

    def _classify(self, path: bytes) -> _Path:
        t = self.trees
        base, end, head = t.base.get(path), t.end.get(path), t.head.get(path)
        # A file the agent created is all the agent's, even where HEAD (but not the tree) had one.
        commit = end if base is None else self._merge(base, head, end)
        restaged = t.index.get(path) != t.end_index.get(path)  # the index changed after the turn end
        # ... by the developer staging something, unless it is HEAD's entry now: nothing is staged there (they
        # unstaged it, or a pull moved HEAD and the index with it), so the index follows the commit.
        keep_index = restaged and t.index.get(path) != head
        index: Entry | Overlap | None = None
        if keep_index:
            pass
        elif restaged or t.base_index.get(path) == head:
            index = commit  # nothing of the developer's staged here: the index follows the commit
        else:
            index = self._merge(base, t.base_index.get(path), end)
        # Deleting a file the developer staged changes to would drop what they staged: their lines, not the agent's.
        destroys = end is None and base is not None and t.base_index.get(path) != head
        if path in t.entangled or destroys or isinstance(commit, Overlap) or isinstance(index, Overlap):
            return _Path(Ownership.OVERLAP, end, end, restaged)  # committed or not, the index stays
        owner = Ownership.AGENT if head == base or base is None else Ownership.BOTH
        return _Path(owner, commit, index, keep_index)

    # --- what is shown -------------------------------------------------------------------------------

    @property
    def overlapping(self) -> tuple[bytes, ...]:
        return tuple(p for p, info in self.paths.items() if info.owner is Ownership.OVERLAP)

    @property
    def fingerprint(self) -> str:
        """A sha256 over everything the developer decides on: the agent's paths, their owners, the late edits."""
        digest = hashlib.sha256()

        def put(entry: Entry | None) -> None:
            digest.update(b"-\0" if entry is None else b"%o %s\0" % entry)

        t = self.trees
        for path, info in self.paths.items():
            digest.update(b"A\0" + path + b"\0" + info.owner.value.encode() + b"\0")
            for entry in (t.base.get(path), t.end.get(path), t.head.get(path)):
                put(entry)
        for path in sorted(self.late):
            digest.update(b"L\0" + path + b"\0")
            for entry in self.late[path]:
                put(entry)
        return digest.hexdigest()

    def diff(self) -> Diff:
        """The turn three ways apart, as the developer sees it (see `Diff`)."""
        if not self.paths and not self.late:
            return Diff.empty()
        t = self.trees
        read = self.blobs.read
        parts: list[bytes] = []
        files: list[FileChange] = []
        plain = self._commit_changes({p for p, i in self.paths.items() if i.owner is not Ownership.OVERLAP})
        committed = self._commit_changes(self.paths)
        for path in sorted({*self.paths, *committed}):
            info = self.paths.get(path)
            head = t.head.get(path)
            if info is None:  # removed from HEAD only because a file and a directory clash, as git does
                # ... with a file of the agent's, or with an overlapping one (then only if that is committed).
                before, after = head, None
                owner = Ownership.AGENT if path in plain else Ownership.OVERLAP
            elif path in t.entangled:  # earlier agent lines mixed with the developer's: the file as committed
                before, after, owner = head, t.end.get(path), info.owner
            elif info.owner is Ownership.OVERLAP or info.commit == head:
                # Overlapping: the agent's own hunks (what it commits depends on the choice). Nothing to commit
                # (HEAD already has it): the agent's own change, which Reject can still undo.
                before, after, owner = t.base.get(path), t.end.get(path), info.owner
            else:
                before, after, owner = head, info.commit, info.owner
            text, change = file_diff(path, before, after, read, owner=owner)
            parts.append(text)
            files.append(change)
        yours = [
            file_diff(path, t.head.get(path), t.base.get(path), read)[0]
            for path, info in self.paths.items()
            if info.owner is not Ownership.AGENT and t.head.get(path) != t.base.get(path)
        ]
        late = [file_diff(path, before, after, read) for path, (before, after) in sorted(self.late.items())]
        return Diff(
            unified=_text(parts),
            files=tuple(files),
            fingerprint=self.fingerprint,
            yours=_text(yours),
            late=tuple(change for _, change in late),
            late_unified=_text(text for text, _ in late),
        )

    # --- Approve -------------------------------------------------------------------------------------

    def _commit_changes(self, paths: Iterable[bytes]) -> dict[bytes, Entry | None]:
        head = self.trees.head
        wanted = {p: self.paths[p].commit for p in paths}
        return {p: e for p, e in with_git_df_rules(head, wanted).items() if head.get(p) != e}

    def approval(self, fingerprint: str, choice: ApprovalChoice | None) -> ApprovePlan:
        """
        The plan of an Approve by someone who saw the diff with *fingerprint* (a prefix is enough).

        Raises:
            WorkspaceError: The turn changed nothing, or nothing of it would change HEAD.
            StaleChangeError: The view no longer has that fingerprint (e.g. late edits appeared).
            ApprovalChoiceRequiredError: Some paths overlap and *choice* is None.
        """
        if not self.paths:
            raise WorkspaceError("Nothing to commit: the turn changed no files (or its changes were undone).")
        if not self.fingerprint.startswith(fingerprint):
            raise StaleChangeError("the files changed after the diff was made")
        plan = self.approve(choice)
        if not plan.commit:
            raise WorkspaceError(
                "Nothing to commit: the turn leaves the last commit as it is (it only removed files that were "
                "never committed, put back committed content, or every file was left out)."
            )
        return plan

    def approve(self, choice: ApprovalChoice | None) -> ApprovePlan:
        """
        What Approve commits and how the index changes.

        Raises:
            ApprovalChoiceRequiredError: Some paths overlap and *choice* is None.
        """
        overlapping = set(self.overlapping)
        if overlapping and choice is None:
            raise ApprovalChoiceRequiredError(tuple(map(display, sorted(overlapping))))
        left_out = overlapping if choice is ApprovalChoice.LEAVE_OUT else set()
        # A path left out also keeps out the agent's paths that clash with it as file and directory.
        for path in list(self.paths):
            if any(parent in left_out for parent in parents(path)) or any(
                other.startswith(path + b"/") for other in left_out
            ):
                left_out.add(path)
        committed = [p for p in self.paths if p not in left_out]
        t = self.trees
        index: dict[bytes, Entry | None] = {}
        for path, info in self.paths.items():
            if not info.keep_index:
                # Left out: the agent's staging goes, the developer's stays.
                index[path] = t.base_index.get(path) if path in left_out else info.index
        for path in self.agent_index:
            if path not in self.paths and t.index.get(path) == t.end_index.get(path):
                index[path] = t.base_index.get(path)  # staged by the agent, changed nothing: unstage
        index = {p: e for p, e in index.items() if t.index.get(p) != e}
        # Entries of committed paths win over restored stagings that would clash with them as file and directory.
        set_committed = {p for p in committed if index.get(p) is not None}
        index = {p: e for p, e in index.items() if p in set_committed or e is None or not _clashes(p, set_committed)}
        # An entry that would clash, as file and directory, with one the developer keeps staged is not set:
        # their staging is never dropped (the path then shows as a staged difference, nothing lost).
        while clashing := blocked_by(index, t.index):
            index = {p: e for p, e in index.items() if p not in clashing}
        return ApprovePlan(self._commit_changes(committed), with_git_df_rules(t.index, index), tuple(sorted(left_out)))

    # --- Reject --------------------------------------------------------------------------------------

    def reject(self) -> RejectPlan:
        """What Reject writes, path by path (see the module docstring)."""
        t = self.trees
        worktree: dict[bytes, Entry | None] = {}
        index: dict[bytes, Entry | None] = {}
        restored: list[bytes] = []
        merged: list[bytes] = []
        kept: list[bytes] = []
        for path in sorted({*self.agent, *self.agent_index}):
            target: Entry | Overlap | None = t.current.get(path)
            if path in self.agent:
                base, end, now = t.base.get(path), t.end.get(path), t.current.get(path)
                target = base if now == end else self._merge(end, now, base)
            staged: Entry | Overlap | None = t.index.get(path)
            if path in self.agent_index or path in self.agent:
                staged = (
                    t.base_index.get(path)
                    if t.index.get(path) == t.end_index.get(path)
                    else self._merge(t.end_index.get(path), t.index.get(path), t.base_index.get(path))
                )
            if isinstance(target, Overlap) or isinstance(staged, Overlap):
                kept.append(path)
                continue
            if target != t.current.get(path):
                worktree[path] = target
            if staged != t.index.get(path):
                index[path] = staged
            if path in t.entangled:
                # Back to how it was when the change was extended, but the earlier agent lines mixed with the
                # developer's stay in it: reported as kept.
                kept.append(path)
            elif path in self.agent:
                restored.append(path)
                if target != t.base.get(path):
                    merged.append(path)
        plan = RejectPlan(worktree, index, tuple(restored), tuple(merged), tuple(kept))
        # Neither a file nor an index entry may be put where the developer's stay as file and directory.
        return plan.settled(lambda plan: blocked_by(plan.worktree, t.current) | blocked_by(plan.index, t.index))


def blocked_by(targets: Mapping[bytes, Entry | None], current: Mapping[bytes, Entry]) -> set[bytes]:
    """Targets that would clash, as file and directory, with files of *current* that the targets keep."""
    removed = {p for p, e in targets.items() if e is None}

    def stays(path: bytes) -> bool:
        return path in current and path not in removed and path not in targets

    wanted = [p for p, e in targets.items() if e is not None]
    blocked = {p for p in wanted if any(stays(parent) for parent in parents(p))}
    # Only a name that is no file of *current* can be a directory of it: look below those alone.
    prefixes = tuple(p + b"/" for p in wanted if p not in current and p not in blocked)
    if prefixes:
        for path in current:
            if path.startswith(prefixes) and stays(path):
                blocked.update(parent for parent in parents(path) if targets.get(parent) is not None)
    return blocked


def rebase(previous: TurnTrees, blobs: Blobs, *, start: Flat, start_index: Flat) -> tuple[Flat, Flat, frozenset[bytes]]:
    """
    The baseline of a turn that extends a pending change.

    That is *previous*'s baseline plus the developer's edits made since its turn end (the tree and index
    now: *start*, *start_index*).

    Returns the new baseline tree and index and the entangled paths: where those edits overlap the earlier
    agent edits, the path keeps its old baseline and stays overlapping.
    """
    entangled = set(previous.entangled)
    changes: dict[bytes, Entry | None] = {}
    for path, (end, now) in diff_flats(previous.end, start).items():
        before = previous.base.get(path)
        if before == end:  # the agent never touched it: the developer's edit is simply part of the baseline
            rebased: Entry | Overlap | None = now
        else:
            rebased = merge_versions(end, now, before, read=blobs.read, store=blobs.store)
        if isinstance(rebased, Overlap):
            # Inseparable: the baseline takes the file as it is now (nothing of the developer's is ever lost),
            # and the path stays overlapping for the rest of the change.
            entangled.add(path)
            rebased = now
        changes[path] = rebased
    staged = {path: now for path, (_, now) in diff_flats(previous.end_index, start_index).items()}
    # The developer's entries (all as they are on disk or staged now) win where they clash with older ones
    # as file and directory: the baseline stays a tree git can hold.
    written = {path for path, entry in changes.items() if entry is not None}
    # An entangled path the developer replaced by a directory (or the reverse) is gone, and so is the tangle.
    entangled = {path for path in entangled if path in written or not _clashes(path, written)}
    return _applied(previous.base, changes), _applied(previous.base_index, staged), frozenset(entangled)


def _clashes(path: bytes, others: set[bytes]) -> bool:
    """Whether *path* is a file where one of *others* needs a directory, or the other way round."""
    return any(parent in others for parent in parents(path)) or any(q.startswith(path + b"/") for q in others)


def _applied(flat: Flat, changes: dict[bytes, Entry | None]) -> Flat:
    """*flat* with *changes* set, and the entries clashing with them as file and directory removed."""
    out = dict(flat)
    for path, entry in with_git_df_rules(flat, changes).items():
        if entry is None:
            out.pop(path, None)
        else:
            out[path] = entry
    return out


def _text(parts: Iterable[bytes]) -> str:
    return b"".join(parts).decode("utf-8", "replace")
