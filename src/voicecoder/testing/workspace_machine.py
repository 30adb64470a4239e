"""
A Hypothesis state machine that checks the README's promises on any `Workspace`, turn after turn.

The machine plays an agent and a developer on one working tree: the developer edits, stages and deletes
files before a turn, while a change is pending and between the prompts of an extended change; the agent
edits, stages, swaps files and directories, writes symlinks, executable, empty, CRLF and non-UTF-8 files
(and file names) during a turn; something the agent left running writes after the turn end. Then the change
is approved (plainly, or with either overlap choice) or rejected. Every line written carries a token naming
who wrote it (``agent-7``, ``dev-3``, ``late-9``), so after each transaction the machine can check, from the
tree, the index and HEAD as they are (`WorkspaceMachine.observe`):

* **Approve commits exactly the diff you saw**: only paths of the shown diff change in HEAD, each as its
  shown diff says; the agent's lines are all committed; the working tree is not touched.
* **Reject puts back exactly what the agent changed**: the agent's paths return to the baseline (or lose
  just the agent's lines where the developer edited them since); nothing else is written; what is kept is
  said.
* **Your own uncommitted edits are never committed or destroyed**: no developer or late line reaches HEAD
  (unless "commit with my edits" was chosen for that file), the index keeps exactly what the developer had
  staged, and no developer line disappears from the tree.

Subclass `WorkspaceMachine`, implement `make` (a fresh workspace and its `WorkspaceTree`) and `observe`, and
optionally `check_integrity` (git: `write-tree` and `fsck`); then expose ``TestX = MyMachine.TestCase`` with
settings from `voicecoder.testing.profiles.budget`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import anyio
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from voicecoder.domain.errors import ApprovalChoiceRequiredError, StaleChangeError, WorkspaceError
from voicecoder.domain.model import ApprovalChoice, Baseline, CommitMessage, Diff, Ownership, TurnId
from voicecoder.domain.ports import Workspace
from voicecoder.testing.contracts.workspace_tree import WorkspaceTree

__all__ = ["EDITS", "PATHS", "Observed", "Snapshot", "WorkspaceMachine"]

_T = TypeVar("_T")

SYMLINK: Final = 0o120000
EXECUTABLE: Final = 0o100755
PATHS: Final = ("a.txt", "b.py", "d/c.txt", "d/e/f.txt", "x", "x/y.txt", "ünï code.txt", "caf\udce9.txt")
"""Where the machine writes: nested directories, a name that is a file and a directory in turns, non-ASCII and
non-UTF-8 names (the last one is the byte 0xE9, as `os.fsdecode` gives it)."""
KINDS: Final = ("text", "crlf", "no-newline", "empty", "binary", "latin-1", "executable", "symlink")
EDITS: Final = st.tuples(
    st.sampled_from(PATHS),
    st.sampled_from(["write", "prepend", "append", "delete", "chmod", "stage"]),
    st.sampled_from(KINDS),
)
"""(path, how, kind): one edit of a file; "stage" stages the path (the agent: everything)."""
TOKEN: Final = re.compile(rb"(?:agent|dev|late|seed)-\d+")

Snapshot = dict[str, tuple[bytes, int]]
"""Path → (content, git mode) of one of the three trees; a symlink's content is its target."""
FUZZY: Final = (b"\0fuzzy", 0)
"""A baseline entry the model cannot know exactly (a developer edit merged into an extended change)."""


class Observed:
    """The working tree, the index and HEAD at one moment."""

    def __init__(self, worktree: Snapshot, index: Snapshot, head: Snapshot) -> None:
        self.worktree = worktree
        self.index = index
        self.head = head


def tokens(entry: tuple[bytes, int] | None, *kinds: str) -> set[bytes]:
    """The tokens in *entry*'s content (of the given kinds: ``agent``, ``dev``, ``late``, ``seed``)."""
    if entry is None or entry is FUZZY:
        return set()
    found = set(TOKEN.findall(entry[0]))
    return {t for t in found if not kinds or t.split(b"-")[0].decode() in kinds}


def shown(path: str) -> str:
    """*path* as diffs and replies show it (a non-UTF-8 name with U+FFFD)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _note(what: str) -> None:
    """Count *what* in Hypothesis' statistics; replayed steps outside a test just run."""
    if currently_in_test_context():
        event(what)


def _clashes(path: str, others: set[str]) -> bool:
    """Whether *path* is a file where one of *others* needs a directory, or the other way round."""
    return any(path.startswith(q + "/") or q.startswith(path + "/") for q in others)


def run(fn: Callable[..., Awaitable[_T]], *args: object, **kwargs: object) -> _T:
    return anyio.run(functools.partial(fn, *args, **kwargs))


class WorkspaceMachine(RuleBasedStateMachine):
    """The machine; see the module docstring. Not collected by itself: expose ``TestCase`` from a subclass."""

    def __init__(self) -> None:
        super().__init__()
        self.ws, self.tree = self.make()
        self.n = 0
        self.turns = 0
        self.phase = "idle"
        self.baseline: Baseline | None = None
        self.base: Snapshot = {}
        self.base_index: Snapshot = {}
        self.end: Snapshot = {}
        self.end_index: Snapshot = {}
        self.diff: Diff | None = None
        self.seen: tuple[Snapshot, Snapshot] = ({}, {})
        """The tree and index when the diff was last looked at: what the developer has seen."""
        self.restaged: set[str] = set()
        """Paths the developer staged after the turn end: Approve and Reject leave their index entry alone."""
        self.head_at_begin: Snapshot = {}
        self.head_at_end: Snapshot | None = None
        """HEAD at the turn end where it moved during the turn (a subclass's agent may commit); else None."""

    # --- what a subclass provides ----------------------------------------------------------------

    def make(self) -> tuple[Workspace, WorkspaceTree]:
        """A fresh workspace with one commit holding ``a.txt`` ("seed-0"), and a tree over it."""
        raise NotImplementedError

    def observe(self) -> Observed:
        """The working tree (every file, not ignored ones), the index and HEAD, as they are now."""
        raise NotImplementedError

    def check_integrity(self) -> None:
        """Called after every transaction: the repository must be one its own tools accept."""

    # --- content -------------------------------------------------------------------------------------

    def _token(self, who: str) -> bytes:
        self.n += 1
        return b"%s-%d" % (who.encode(), self.n)

    def _write(self, who: str, path: str, kind: str) -> None:
        token = self._token(who)
        if kind == "symlink":
            self.tree.symlink(path, token.decode())
            return
        data = {
            "text": token + b"\n" + self._token(who) + b"\n",
            "crlf": token + b"\r\n" + self._token(who) + b"\r\n",
            "no-newline": token,
            "empty": b"",
            "binary": b"\x00\x01" + token,
            "latin-1": b"caf\xe9 " + token + b"\n",
            "executable": b"#!/bin/sh\n# " + token + b"\n",
        }[kind]
        self.tree.write(path, data, executable=kind == "executable")

    def _add_line(self, who: str, path: str, *, top: bool) -> None:
        data = self.tree.read(path)
        if b"\0" in data:
            return  # a binary file has no lines to add to
        line = self._token(who) + b"\n"
        separator = b"" if not data or data.endswith(b"\n") else b"\n"
        new = line + data if top else data + separator + line
        self.tree.write(path, new, executable=self.tree.is_executable(path))

    def _edit(self, who: str, path: str, how: str, kind: str) -> None:
        if how == "write" or not self.tree.exists(path):
            self._write(who, path, kind)
        elif how in ("prepend", "append"):
            self._add_line(who, path, top=how == "prepend")
        elif how == "delete":
            self.tree.delete(path)
        elif not self.tree.is_symlink(path):
            self.tree.chmod(path, executable=not self.tree.is_executable(path))

    # --- the developer ------------------------------------------------------------------------------

    @precondition(lambda self: self.phase != "running")
    @rule(edits=st.lists(EDITS, min_size=1, max_size=3))
    def developer_edits(self, edits: list[tuple[str, str, str]]) -> None:
        """Before a turn these are the developer's uncommitted edits; while a change is pending, late edits."""
        for path, how, kind in edits:
            if how == "stage":
                self.tree.stage(path)
                if self.phase == "pending":
                    self.restaged.update(
                        p for p in PATHS if p == path or p.startswith(path + "/") or path.startswith(p + "/")
                    )
            else:
                self._edit("dev", path, how, kind)

    @precondition(lambda self: self.phase == "pending")
    @rule(path=st.sampled_from(PATHS), how=st.sampled_from(["write", "append"]), kind=st.sampled_from(KINDS))
    def left_running_writes(self, path: str, how: str, kind: str) -> None:
        """Something the agent started (a background job, a subagent) writes after the turn's result."""
        self._edit("late", path, how, kind)

    # --- the agent ---------------------------------------------------------------------------------

    def _agent_works(self, edits: list[tuple[str, str, str]]) -> None:
        for path, how, kind in edits:
            if how == "stage":
                self.tree.stage()  # `git add -A`, as agents like to do
            else:
                self._edit("agent", path, how, kind)
        assert self.baseline is not None
        ended = run(self.ws.end_turn, self.baseline)
        self.baseline = ended.baseline
        now = self.observe()
        if now.head != self.head_at_begin:
            _note("the agent committed during its turn")
            self.head_at_end = now.head
        now = self._reference(now)
        self.end, self.end_index = dict(now.worktree), dict(now.index)
        self.diff = ended.diff
        assert run(self.ws.changes_since, self.baseline) == ended.diff, "the diff of end_turn is not changes_since"
        self.seen = (dict(now.worktree), dict(now.index))
        self._check_diff(self.diff, now)
        self.phase = "pending"

    @precondition(lambda self: self.phase == "idle")
    @rule(edits=st.lists(EDITS, min_size=0, max_size=4))
    def agent_turn(self, edits: list[tuple[str, str, str]]) -> None:
        """A prompt: the baseline, the agent's edits, the turn end and the change summary's diff."""
        self.turns += 1
        before = self.observe()
        self.baseline = run(self.ws.begin_turn, TurnId(f"t{self.turns}"))
        self.base, self.base_index = dict(before.worktree), dict(before.index)
        self.head_at_begin, self.head_at_end = before.head, None
        self.restaged = set()
        self._agent_works(edits)

    @precondition(lambda self: self.phase == "pending")
    @rule(edits=st.lists(EDITS, min_size=0, max_size=3))
    def agent_continues(self, edits: list[tuple[str, str, str]]) -> None:
        """A second prompt while the change is pending: the new turn continues it."""
        assert self.baseline is not None
        self.turns += 1
        start = self.observe()
        self.baseline = run(self.ws.begin_turn, TurnId(f"t{self.turns}"), extends=self.baseline)
        base: Snapshot = {}
        for path in {*self.base, *start.worktree, *self.end}:
            before, end, now = self.base.get(path), self.end.get(path), start.worktree.get(path)
            entry = before if now == end else now if before in (end, now) else FUZZY
            if entry is not None:
                base[path] = entry
        index: Snapshot = {}
        for path in {*self.base_index, *start.index, *self.end_index}:
            now, end = start.index.get(path), self.end_index.get(path)
            chosen = now if now != end else self.base_index.get(path)
            if chosen is not None:
                index[path] = chosen
        # The developer's entries win where older ones clash with them as file and directory.
        dev = {p for p in start.worktree if start.worktree.get(p) != self.end.get(p)}
        staged = {p for p in start.index if start.index.get(p) != self.end_index.get(p)}
        self.base = {p: e for p, e in base.items() if p in dev or not _clashes(p, dev)}
        self.base_index = {p: e for p, e in index.items() if p in staged or not _clashes(p, staged)}
        self.restaged = set()
        _note("a pending change was extended")
        self._agent_works(edits)

    # --- what the developer sees ---------------------------------------------------------------------

    def _reference(self, now: Observed) -> Observed:
        """
        *now* with HEAD as the change's reference.

        Commits made during the turn are the agent's change, so while HEAD is still where the turn left it the
        checks compare with HEAD as the turn began.
        """
        if self.head_at_end is None or now.head != self.head_at_end:
            return now
        return Observed(now.worktree, now.index, self.head_at_begin)

    def _agent_paths(self) -> set[str]:
        return {p for p in {*self.base, *self.end} if self.base.get(p) != self.end.get(p)}

    def _check_diff(self, diff: Diff, now: Observed) -> None:
        agent = self._agent_paths()
        exact = {p for p in agent if self.base.get(p) is not FUZZY}
        paths = set(diff.paths)
        assert {shown(p) for p in exact} <= paths, "a path the agent changed is missing from the diff"
        extras = paths - {shown(p) for p in agent}
        for extra in extras:  # only a HEAD path that clashes as file and directory with one of the agent's
            assert any(extra.startswith(shown(p) + "/") or shown(p).startswith(extra + "/") for p in agent), extra
        late = {p for p in {*self.end, *now.worktree} if self.end.get(p) != now.worktree.get(p)}
        assert {f.path for f in diff.late} == {shown(p) for p in late}
        owners = {f.path: f.owner for f in diff.files}
        for owner in set(owners.values()):
            _note(f"diff has a file owned by {owner.value}")
        if diff.late:
            _note("diff lists late edits")
        staged = {q for q in {*self.base_index, *now.head} if self.base_index.get(q) != now.head.get(q)} - agent
        for path in exact:
            before, head = self.base.get(path), now.head.get(path)
            # The developer's edits can only come from the tree, the index, or a staged path it must replace.
            if (before is None or before == head) and self.base_index.get(path) == head and not _clashes(path, staged):
                assert owners[shown(path)] is Ownership.AGENT, f"{path} has no edits of the developer"
            if tokens(self.end.get(path), "dev") - tokens(before, "dev"):
                raise AssertionError(f"the model let the agent write a developer line in {path}")

    @precondition(lambda self: self.phase == "pending")
    @rule()
    def show_diff(self) -> None:
        assert self.baseline is not None
        self.diff = run(self.ws.changes_since, self.baseline)
        now = self._reference(self.observe())
        self.seen = (dict(now.worktree), dict(now.index))
        self._check_diff(self.diff, now)

    # --- Approve ---------------------------------------------------------------------------------------

    @precondition(lambda self: self.phase == "pending")
    @rule(choice=st.sampled_from([None, ApprovalChoice.WITH_MY_EDITS, ApprovalChoice.LEAVE_OUT]))
    def approve(self, choice: ApprovalChoice | None) -> None:
        assert self.baseline is not None
        assert self.diff is not None
        seen = self.observe()
        before = self._reference(seen)
        message = CommitMessage("Apply changes from Claude")
        if not self._agent_paths():  # the agent changed nothing (the bot says "No changes" and settles)
            try:
                run(self.ws.commit_turn, self.baseline, fingerprint=self.diff.fingerprint, message=message)
            except WorkspaceError as exc:
                if "Nothing to commit" not in str(exc):
                    raise
            else:
                raise AssertionError("a turn that changed nothing made a commit")
            self._unchanged(seen, self.observe(), "an Approve of nothing")
            self._settle()
            return
        if before.worktree != self.seen[0] or before.index != self.seen[1]:
            # Edits since the diff was shown make it stale (a change of the tree always; of the index when it
            # changes who owns a file). Refused, nothing changes, and the diff is looked at again.
            try:
                run(self.ws.commit_turn, self.baseline, fingerprint=self.diff.fingerprint, message=message)
            except (StaleChangeError, ApprovalChoiceRequiredError):
                _note("approve refused: the workspace changed since the diff")
                self._unchanged(seen, self.observe(), "a refused Approve")
                self.show_diff()
            else:
                assert before.worktree == self.seen[0], "late edits nobody saw were approved"
                _note("approve: committed after staging")
                self._check_approved(self.diff, None, before, self.observe())
                self._settle()
                return
        diff = self.diff
        if diff.overlapping and choice is None:
            try:
                run(self.ws.commit_turn, self.baseline, fingerprint=diff.fingerprint, message=message)
            except ApprovalChoiceRequiredError:
                pass
            else:
                raise AssertionError("overlapping files were committed without a choice")
            _note("approve refused: a choice is needed")
            self._unchanged(seen, self.observe(), "an Approve that needs a choice")
            choice = ApprovalChoice.LEAVE_OUT
        try:
            run(self.ws.commit_turn, self.baseline, fingerprint=diff.fingerprint, message=message, choice=choice)
        except WorkspaceError as exc:
            if "Nothing to commit" not in str(exc):
                raise
            _note("approve: nothing to commit")
            self._unchanged(seen, self.observe(), "an Approve with nothing to commit")
        else:
            _note(f"approve: committed ({choice.value if choice else 'no choice needed'})")
            self._check_approved(diff, choice, before, self.observe())
        self._settle()

    def _check_approved(self, diff: Diff, choice: ApprovalChoice | None, before: Observed, after: Observed) -> None:
        assert after.worktree == before.worktree, "Approve wrote the working tree"
        by_path = {p: p for p in PATHS} | {shown(p): p for p in PATHS}
        overlapping = {by_path.get(p, p) for p in diff.overlapping}
        left_out = overlapping if choice is ApprovalChoice.LEAVE_OUT else set()
        # Leaving a file out also leaves out the agent's paths that clash with it as file and directory.
        left_out |= {
            p for p in self._agent_paths() if any(p.startswith(q + "/") or q.startswith(p + "/") for q in left_out)
        }
        with_mine = overlapping if choice is ApprovalChoice.WITH_MY_EDITS else set()
        changed = {p for p in {*before.head, *after.head} if before.head.get(p) != after.head.get(p)}
        assert {shown(p) for p in changed} <= set(diff.paths), "HEAD changed outside the shown diff"
        for path in changed | left_out:
            old, new = before.head.get(path), after.head.get(path)
            if path in left_out:
                assert new == old, f"{path} was left out but committed"
                continue
            # Approve commits exactly the diff you saw, and nobody's lines but the agent's, unless asked to.
            added = tokens(new) - tokens(old)
            if path in with_mine:
                assert new == self.end.get(path), f"{path}: 'with my edits' commits the file as the agent left it"
            else:
                assert added <= tokens(new, "agent"), f"lines {added - tokens(new, 'agent')} of {path} were committed"
        for path in self._agent_paths() - left_out:
            if self.base.get(path) is FUZZY or path in overlapping:
                continue
            end = self.end.get(path)
            added = tokens(end, "agent") - tokens(self.base.get(path), "agent")
            assert added <= tokens(after.head.get(path)), (
                f"agent lines {added - tokens(after.head.get(path))} of {path} not committed"
            )
        # The index keeps exactly what the developer had staged.
        for path in {*before.index, *after.index, *self.base_index}:
            if path in self.restaged or path in overlapping or self.base.get(path) is FUZZY:
                continue
            if path not in self._agent_paths():
                if self.base_index.get(path) != self.end_index.get(path):
                    # The agent's staging is undone, unless that would clash with an entry staying in the index.
                    assert after.index.get(path) == self.base_index.get(path) or _clashes(path, set(after.index)), (
                        f"the agent's staging of {path} stayed"
                    )
                else:
                    assert after.index.get(path) == before.index.get(path), f"the index entry of {path} changed"
                continue
            staged_then = tokens(self.base_index.get(path), "dev") ^ tokens(self._head_at_begin(path, before), "dev")
            staged_now = tokens(after.index.get(path), "dev") ^ tokens(after.head.get(path), "dev")
            assert staged_now == staged_then, f"{path}: staged developer lines {staged_then} became {staged_now}"
            assert tokens(after.index.get(path), "agent") <= tokens(after.head.get(path), "agent") | tokens(
                self.base_index.get(path), "agent"
            ), f"{path}: agent lines left staged but not committed"
        self.check_integrity()

    def _head_at_begin(self, path: str, before: Observed) -> tuple[bytes, int] | None:
        return before.head.get(path)  # HEAD moves only by Approve, which ends the change

    # --- Reject ----------------------------------------------------------------------------------------

    @precondition(lambda self: self.phase == "pending")
    @rule()
    def reject(self) -> None:
        assert self.baseline is not None
        before = self._reference(self.observe())
        result = run(self.ws.restore_turn, self.baseline)
        after = self.observe()
        for part in ("merged", "kept"):
            if getattr(result, part):
                _note(f"reject: some paths {part}")
        by_path = {shown(p): p for p in {*before.worktree, *self.base, *self.end, *PATHS}}
        restored = {by_path[p] for p in result.restored}
        merged = {by_path[p] for p in result.merged}
        kept = {by_path[p] for p in result.kept}
        agent = self._agent_paths()
        late = {p for p in {*self.end, *before.worktree} if self.end.get(p) != before.worktree.get(p)}
        assert after.head == before.head, "Reject moved HEAD"
        fuzzy = {p for p in agent if self.base.get(p) is FUZZY}
        exact = {p for p in agent if self.base.get(p) is not FUZZY}
        assert exact <= restored | kept, f"agent paths {exact - restored - kept} neither restored nor kept"
        excusable = late | {p for p in agent if self.base.get(p) is FUZZY}
        excusable |= {p for p in {*self.base_index, *self.end_index} if self.base_index.get(p) != self.end_index.get(p)}
        # A path may also be kept because it must become a file or directory where a kept one stands.
        for path in kept - excusable:
            assert any(path.startswith(q + "/") or q.startswith(path + "/") for q in late | kept - {path}), (
                f"{path} kept although nobody edited it after the turn"
            )
        touched = agent | {
            p for p in {*self.base_index, *self.end_index} if self.base_index.get(p) != self.end_index.get(p)
        }
        for path in {*before.worktree, *after.worktree, *before.index, *after.index}:
            if path in kept and path in fuzzy:
                # Lines of an earlier prompt mixed with the developer's: put back as at the later prompt, at most.
                mine = tokens(before.worktree.get(path), "dev", "late")
                assert mine <= tokens(after.worktree.get(path)), f"developer lines of {path} were destroyed"
            elif path not in touched or path in kept:
                # Reject never writes what the agent did not touch, nor what it keeps.
                assert after.worktree.get(path) == before.worktree.get(path), f"Reject wrote {path}"
                assert after.index.get(path) == before.index.get(path), f"Reject changed the index entry of {path}"
            elif path in restored - merged and self.base.get(path) is not FUZZY:
                assert after.worktree.get(path) == self.base.get(path), f"{path} is not as before the turn"
            elif path in merged:
                gone = tokens(self.end.get(path), "agent") - tokens(self.base.get(path), "agent")
                assert not gone & tokens(after.worktree.get(path)), f"agent lines stayed in {path}"
                mine = tokens(before.worktree.get(path), "dev", "late") - tokens(self.end.get(path))
                assert mine <= tokens(after.worktree.get(path)), f"developer lines of {path} were destroyed"
        for path in touched - kept - self.restaged:
            if self.base.get(path) is not FUZZY:
                assert after.index.get(path) == self.base_index.get(path), f"the index entry of {path} is not back"
        self.check_integrity()
        self._settle()

    def _unchanged(self, before: Observed, after: Observed, what: str) -> None:
        assert (after.worktree, after.index, after.head) == (before.worktree, before.index, before.head), (
            f"{what} changed the workspace"
        )

    def _settle(self) -> None:
        assert self.baseline is not None
        run(self.ws.release_turn, self.baseline)
        self.baseline = None
        self.head_at_end = None
        self.diff = None
        self.phase = "idle"
