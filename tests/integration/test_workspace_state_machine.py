"""
`voicecoder.testing.workspace_machine` on a real repository, with the git CLI as the oracle.

The tree, the index and HEAD are read back with git itself (`ls-files`, `ls-tree`, `cat-file`) after every
transaction, and git must accept what the adapter left (`write-tree`, `fsck --strict`). Ignored files are
written too, and must never be touched. HEAD moves as well: the agent runs `git commit` (or `-a`) in the middle
of some turns, which makes its commits part of its change (ADR 0046), and the developer commits between turns.

Runs derandomized with a fixed budget (``ci`` profile); ``VOICECODER_HYPOTHESIS_PROFILE=deep`` runs 25 times
the examples with random seeds (add ``--timeout=0 --hypothesis-show-statistics``).
"""

# The tree is walked as bytes paths through `os` (file names need not be UTF-8), not pathlib.
# ruff: noqa: PTH114, PTH115, PTH118

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from tests.gitoracle import GIT, fsck, git, git_bytes, git_may_fail, init_repo
from voicecoder.adapters import DulwichWorkspace
from voicecoder.domain.errors import WorkspaceError
from voicecoder.domain.model import ApprovalChoice, CommitMessage
from voicecoder.domain.ports import Workspace
from voicecoder.testing.contracts.workspace_tree import DiskTree, WorkspaceTree
from voicecoder.testing.profiles import budget
from voicecoder.testing.workspace_machine import (
    EDITS,
    EXECUTABLE,
    PATHS,
    SYMLINK,
    Observed,
    Snapshot,
    WorkspaceMachine,
    run,
)
from voicecoder.testing.workspace_machine_cases import CASES, Case, replay

IGNORED = ("debug.log", "d/trace.log")
INTENT_TO_ADD = b"\0intent-to-add"
"""What the machine sees staged for an entry `git add -N` marked (git itself lists the empty blob)."""
ITA_FLAG = 0x20000000
"""The intent-to-add bit of an entry's flags, as `git ls-files --debug` prints them."""
REGULAR = 0o100644


def _blobs(repo: Path, listing: list[tuple[str, int, str]]) -> Snapshot:
    """Contents of (path, mode, sha) entries, read with one `git cat-file --batch`."""
    if not listing:
        return {}
    done = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        input=b"".join(sha.encode() + b"\n" for _, _, sha in listing),
        capture_output=True,
        check=True,
    )
    out = done.stdout
    snapshot: Snapshot = {}
    at = 0
    for path, mode, _ in listing:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        snapshot[path] = (out[header_end + 1 : header_end + 1 + size], mode)
        at = header_end + 1 + size + 1
    return snapshot


def _entries(raw: bytes, *, index: bool) -> list[tuple[str, int, str]]:
    listing = []
    for item in raw.split(b"\0"):
        if not item:
            continue
        meta, path = item.split(b"\t", 1)
        fields = meta.decode().split()
        mode, sha = (fields[0], fields[1]) if index else (fields[0], fields[2])
        listing.append((os.fsdecode(path), int(mode, 8), sha))
    return listing


class DulwichMachine(WorkspaceMachine):
    def make(self) -> tuple[Workspace, WorkspaceTree]:
        self.tmp = Path(tempfile.mkdtemp(prefix="vc-ws-machine-"))
        self.root = init_repo(self.tmp / "repo", {".gitignore": b"*.log\n", "a.txt": b"seed-0\n"})
        git(self.root, "branch", "side")  # an existing branch the agent may switch to (ADR 0048)
        self.ignored: dict[str, bytes] = {}
        self.moved: tuple[str, str] | None = None
        """Where the turn began (HEAD's ref and commit) if the agent moved HEAD away during it."""
        return DulwichWorkspace(self.root, init_if_missing=False), DiskTree(self.root)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def observe(self) -> Observed:
        worktree: Snapshot = {}
        for dirpath, dirnames, filenames in os.walk(os.fsencode(self.root)):
            if b".git" in dirnames:
                dirnames.remove(b".git")
            for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
                full = os.path.join(dirpath, name)
                rel = os.fsdecode(os.path.relpath(full, os.fsencode(self.root)))
                if rel.endswith(".log"):
                    continue
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    worktree[rel] = (os.readlink(full), SYMLINK)
                else:
                    with open(full, "rb") as f:  # noqa: PTH123 - bytes paths
                        worktree[rel] = (f.read(), EXECUTABLE if st.st_mode & 0o100 else REGULAR)
        index = _blobs(self.root, _entries(git_bytes(self.root, "ls-files", "-s", "-z"), index=True))
        for path in self._intended():
            index[path] = (INTENT_TO_ADD, index[path][1])
        head = _blobs(self.root, _entries(git_bytes(self.root, "ls-tree", "-r", "-z", "HEAD"), index=False))
        return Observed(worktree, index, head)

    def _intended(self) -> list[str]:
        """Entries marked intent-to-add: their flags in `git ls-files --debug` (the machine's names hold no LF)."""
        marked: list[str] = []
        path = ""
        for line in git_bytes(self.root, "ls-files", "-s", "--debug").split(b"\n"):
            if line and not line.startswith(b" "):
                path = os.fsdecode(line.split(b"\t", 1)[1])
            elif b"flags: " in line and int(line.rsplit(b"flags: ", 1)[1], 16) & ITA_FLAG:
                marked.append(path)
        return marked

    @precondition(lambda self: self.phase != "running")
    @rule(path=st.sampled_from(PATHS))
    def developer_intends_to_add(self, path: str) -> None:
        """`git add -N`: the file is tracked with nothing staged; no turn may turn that into a staged empty file."""
        git_may_fail(self.root, "add", "-N", "--", path)
        if self.phase == "pending":  # a directory's files are marked too
            self.restaged.update(p for p in PATHS if p == path or p.startswith(path + "/"))

    def check_integrity(self) -> None:
        git(self.root, "write-tree")
        fsck(self.root)
        for path, data in self.ignored.items():
            assert (self.root / path).read_bytes() == data, f"the ignored file {path} was touched"

    def _edit_or_commit(self, who: str, path: str, how: str, kind: str) -> None:
        if how in ("commit", "commit -a"):
            # Atomic: a commit git refuses (an index it cannot write a tree from) changes nothing.
            git_may_fail(self.root, *how.split(), "-q", "--allow-empty", "-m", f"{who} commits")
            return
        super()._edit(who, path, how, kind)

    @precondition(lambda self: self.phase == "idle")
    @rule(
        before=st.lists(EDITS, max_size=3),
        after=st.lists(EDITS, max_size=2),
        how=st.sampled_from(["commit", "commit -a"]),
    )
    def agent_turn_that_commits(
        self, before: list[tuple[str, str, str]], after: list[tuple[str, str, str]], how: str
    ) -> None:
        """Tool approval let the agent run `git commit` (what it staged, or `-a`) in the middle of its turn."""
        self.agent_turn([*before, ("", how, ""), *after])

    def _head(self) -> tuple[str, str]:
        ref = git_bytes(self.root, "rev-parse", "--symbolic-full-name", "HEAD").decode().strip()
        return ref, git(self.root, "rev-parse", "HEAD").strip()

    @precondition(lambda self: self.phase == "idle")
    @rule(
        before=st.lists(EDITS, max_size=2),
        after=st.lists(EDITS, max_size=2),
        # `reset --hard` and a detached checkout of an older commit write older committed lines, which this
        # model cannot tell from the developer's; test_turn_oracle covers them.
        move=st.sampled_from(["reset --soft HEAD~1", "reset --mixed HEAD~1", "switch side"]),
    )
    def agent_turn_that_moves_head(
        self, before: list[tuple[str, str, str]], after: list[tuple[str, str, str]], move: str
    ) -> None:
        """The agent resets its branch or switches to an existing one: Reject takes that back, Approve refuses."""
        began = self._head()
        self.agent_turn([*before, ("", move, ""), *after])
        left = self._head()
        # Both branches were there before the turn: any other ref, or a commit not past the start, is a move.
        descends = git_may_fail(self.root, "merge-base", "--is-ancestor", began[1], left[1]) == 0
        if left[0] != began[0] or not descends:
            self.moved = began
            event(f"the agent moved HEAD ({move.split(maxsplit=1)[0]})")

    def _edit(self, who: str, path: str, how: str, kind: str) -> None:
        if how.startswith(("reset ", "switch ")):
            # git refuses what would overwrite local edits, and then changes nothing.
            git_may_fail(self.root, *how.split(), "-q")
            return
        self._edit_or_commit(who, path, how, kind)

    @precondition(lambda self: self.phase == "pending" and self.moved is not None)
    @rule()
    def approve_after_the_agent_moved_head(self) -> None:
        """Approve refuses (which commit the change belongs on is not clear) and changes nothing."""
        assert self.baseline is not None
        seen = self.observe()
        head = self._head()
        diff = run(self.ws.changes_since, self.baseline)
        with pytest.raises(WorkspaceError, match="Claude moved HEAD during this turn"):
            run(self.ws.commit_turn, self.baseline, fingerprint=diff.fingerprint, message=CommitMessage("x"))
        self._unchanged(seen, self.observe(), "a refused Approve")
        assert self._head() == head, "a refused Approve moved HEAD"

    @precondition(lambda self: self.phase == "pending" and self.moved is None)
    @rule(choice=st.sampled_from([None, ApprovalChoice.WITH_MY_EDITS, ApprovalChoice.LEAVE_OUT]))
    def approve(self, choice: ApprovalChoice | None) -> None:
        super().approve(choice)

    @precondition(lambda self: self.phase == "pending")
    @rule()
    def reject(self) -> None:
        """After a move, Reject also puts HEAD back on the branch and commit the turn began on."""
        began = self.moved
        super().reject()
        if began is not None:
            assert self._head() == began, "Reject did not put HEAD back where the turn began"

    def _settle(self) -> None:
        super()._settle()
        self.moved = None

    @precondition(lambda self: self.phase == "idle")
    @rule(how=st.sampled_from(["commit", "commit -a"]))
    def developer_commits(self, how: str) -> None:
        """Between turns HEAD moves under the developer's hand; the next turn's ownership starts from there."""
        self._edit("dev", "", how, "")

    @rule(path=st.sampled_from(IGNORED))
    def write_ignored(self, path: str) -> None:
        """Ignored files (build output, logs) are never part of a turn and never written by one."""
        if (self.root / "d").is_file() or (self.root / "d").is_symlink():
            return
        data = self._token("dev") + b"\n"
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_bytes(data)
        self.ignored[path] = data


pytestmark = pytest.mark.skipif(GIT is None, reason="the git CLI is the oracle and is not installed")

DulwichMachine.TestCase.settings = budget(30, steps=25)
TestDulwichWorkspaceMachine = DulwichMachine.TestCase


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_sequences_found_by_the_deep_hunt(case: Case) -> None:
    """Sequences that once broke a promise (see `voicecoder.testing.workspace_machine_cases`) hold now."""
    replay(DulwichMachine, case)


def _marked_file_the_agent_removes(m: DulwichMachine) -> None:
    """The developer marks the agent's new file intent-to-add while the change waits; Reject deletes the file."""
    m.agent_turn_that_commits([("d/c.txt", "write", "text")], [], "commit")
    m.developer_intends_to_add("d/c.txt")
    m.agent_continues([])
    m.reject()


def _marked_directory_the_agent_replaces(m: DulwichMachine) -> None:
    """`git add -N x` marks x/y.txt; the agent then makes x a symlink, and the change is committed with my edits."""
    m.agent_turn_that_commits([("x/y.txt", "write", "text")], [], "commit")
    m.developer_intends_to_add("x")
    m.agent_continues([("x", "write", "symlink")])
    m.approve(ApprovalChoice.WITH_MY_EDITS)


def _marked_file_the_agent_replaces_then_the_change_is_extended(m: DulwichMachine) -> None:
    """The agent's `commit -a` drops the developer's marked x (replaced by x/y.txt); Reject of the extension."""
    m.developer_edits([("x", "write", "text")])
    m.developer_intends_to_add("x")
    m.agent_turn_that_commits([("x/y.txt", "write", "text")], [], "commit -a")
    m.agent_continues([])
    m.reject()


def _directory_marked_while_the_change_waits(m: DulwichMachine) -> None:
    """`git add -N x` marks the agent's new x/y.txt while the change waits; Reject leaves the mark."""
    m.agent_turn_that_commits([("x/y.txt", "write", "text")], [], "commit")
    m.developer_intends_to_add("x")
    m.reject()


def _approved_file_marked_then_the_agent_commits_all(m: DulwichMachine, decide: str) -> None:
    """
    The developer marks the agent's new b.py intent-to-add while the change waits and it is approved; the next
    turn's agent runs `git commit -a`.
    """
    m.developer_commits("commit")
    m.agent_turn([("b.py", "write", "text")])
    m.developer_intends_to_add("b.py")
    m.approve(None)
    m.agent_turn_that_commits([("a.txt", "write", "text")], [], "commit -a")
    if decide == "approve":
        m.approve(None)
    else:
        m.reject()


@pytest.mark.parametrize(
    "case",
    [
        lambda m: _approved_file_marked_then_the_agent_commits_all(m, "approve"),
        lambda m: _approved_file_marked_then_the_agent_commits_all(m, "reject"),
        _marked_file_the_agent_removes,
        _marked_directory_the_agent_replaces,
        _directory_marked_while_the_change_waits,
        _marked_file_the_agent_replaces_then_the_change_is_extended,
    ],
)
def test_sequences_of_the_git_machine(case: Callable[[DulwichMachine], None]) -> None:
    """Sequences with the git machine's own steps that a deep hunt once failed on (its view of the marks)."""
    state = DulwichMachine()
    try:
        case(state)
    finally:
        state.teardown()
