"""
The three-way part of the `Workspace` contract: the agent's change, exactly, and nothing of the developer's.

`WorkspaceContract` includes `WorkspaceIsolationContract`; its fixtures (``workspace``, ``tree``, ``seeded``,
``break_index``) come from there. Each test is one of the README's promises in a situation a developer meets:
their own staged and unstaged edits beside the agent's, edits made while a change is pending, edits made
after the agent finished, a change extended by a second prompt, files becoming directories and back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from voicecoder.domain.errors import ApprovalChoiceRequiredError, StaleChangeError, WorkspaceError
from voicecoder.domain.model import ApprovalChoice, Baseline, CommitInfo, Ownership, TurnId
from voicecoder.domain.ports import Workspace
from voicecoder.testing.contracts.workspace_tree import MESSAGE, SEED, WorkspaceTree, commit_files

__all__ = ["WorkspaceIsolationContract"]

APP = b"def main():\n    return 1\n"
APP_AGENT = b"def main():\n    return 1\n\n\ndef helper():\n    return 2\n"
APP_AGENT_AND_MINE = b"# mine\ndef main():\n    return 1\n\n\ndef helper():\n    return 2\n"


async def _turn(workspace: Workspace, turn: str, *edits: Callable[[], None]) -> Baseline:
    """A turn in which *edits* run (the agent at work), ended with its turn-end snapshot."""
    baseline = await workspace.begin_turn(TurnId(turn))
    for edit in edits:
        edit()
    return (await workspace.end_turn(baseline)).baseline


class WorkspaceIsolationContract:
    """The agent's change and the developer's edits kept apart. Mixed into `WorkspaceContract`."""

    async def test_approve_commits_only_the_agents_lines(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """
        Approve commits the agent's line onto HEAD, not the developer's unstaged line in the same file.

        The developer's line stays in the tree, unstaged; the diff shows the two apart and is what was committed.
        """
        tree.write("src/app.py", b"# mine\n" + APP)
        baseline = await _turn(workspace, "t1", lambda: tree.write("src/app.py", APP_AGENT_AND_MINE))

        diff = await workspace.changes_since(baseline)
        await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        (change,) = diff.files
        assert (change.path, change.owner, change.additions, change.deletions) == ("src/app.py", Ownership.BOTH, 4, 0)
        assert "+def helper():" in diff.unified
        assert "# mine" not in diff.unified
        assert "+# mine" in diff.yours
        assert tree.committed("src/app.py") == APP_AGENT
        assert tree.staged("src/app.py") == APP_AGENT
        assert tree.read("src/app.py") == APP_AGENT_AND_MINE
        assert (await workspace.status()).unstaged == ("src/app.py",)

    async def test_staged_edits_stay_staged(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """What the developer had staged is still staged after Approve, on top of the agent's committed change."""
        tree.write("src/app.py", b"# staged\n" + APP)
        tree.stage("src/app.py")
        tree.write("src/app.py", b"# staged\n" + APP + b"# unstaged\n")
        tree.write("notes.txt", b"staged notes\n")
        tree.stage("notes.txt")
        agent = b"# staged\n" + APP.replace(b"return 1", b"return 2") + b"# unstaged\n"
        baseline = await _turn(workspace, "t1", lambda: tree.write("src/app.py", agent))

        diff = await workspace.changes_since(baseline)
        await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        assert tree.committed("src/app.py") == APP.replace(b"return 1", b"return 2")
        assert tree.staged("src/app.py") == b"# staged\n" + APP.replace(b"return 1", b"return 2")
        assert tree.read("src/app.py") == agent
        assert (tree.staged("notes.txt"), tree.committed("notes.txt")) == (b"staged notes\n", None)

    async def test_overlapping_edits_need_a_choice(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """
        Where the agent's edit overlaps the developer's uncommitted line, Approve needs a choice.

        The file is marked, Approve without a choice is refused, and "leave this file out" commits the rest
        while the file stays as it is.
        """
        tree.write("src/util.py", b"X = 'mine'\n")
        baseline = await _turn(
            workspace,
            "t1",
            lambda: tree.write("src/util.py", b"X = 'agent'\n"),
            lambda: tree.write("src/new.py", b"NEW = 1\n"),
        )
        diff = await workspace.changes_since(baseline)

        with pytest.raises(ApprovalChoiceRequiredError):
            await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)
        assert (await workspace.status()).head == seeded.short_sha
        await workspace.commit_turn(
            baseline, fingerprint=diff.fingerprint, message=MESSAGE, choice=ApprovalChoice.LEAVE_OUT
        )

        assert {f.path: f.owner for f in diff.files} == {
            "src/new.py": Ownership.AGENT,
            "src/util.py": Ownership.OVERLAP,
        }
        assert diff.overlapping == ("src/util.py",)
        assert "+X = 'mine'" in diff.yours
        assert (tree.committed("src/util.py"), tree.committed("src/new.py")) == (SEED["src/util.py"], b"NEW = 1\n")
        assert tree.read("src/util.py") == b"X = 'agent'\n"
        assert tree.staged("src/util.py") == SEED["src/util.py"]

    async def test_overlapping_edits_can_be_committed_with_mine(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """With my edits, the overlapping file is committed as the agent left it, the developer's edits in it."""
        tree.write("src/util.py", b"X = 'mine'\nY = 1\n")
        baseline = await _turn(workspace, "t1", lambda: tree.write("src/util.py", b"X = 'mine, then agent'\nY = 1\n"))
        diff = await workspace.changes_since(baseline)

        await workspace.commit_turn(
            baseline, fingerprint=diff.fingerprint, message=MESSAGE, choice=ApprovalChoice.WITH_MY_EDITS
        )

        assert tree.committed("src/util.py") == b"X = 'mine, then agent'\nY = 1\n"
        assert tree.staged("src/util.py") == b"X = 'mine, then agent'\nY = 1\n"
        assert (await workspace.status()).unstaged == ()

    async def test_end_turn_gives_the_diff_of_that_moment(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """end_turn's diff is what changes_since says right then; later edits show only in later looks."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", APP_AGENT)
        ended = await workspace.end_turn(baseline)
        right_then = await workspace.changes_since(ended.baseline)
        tree.write("late.txt", b"late\n")

        later = await workspace.changes_since(ended.baseline)

        assert ended.diff == right_then
        assert ended.diff.paths == ("src/app.py",)
        assert ended.diff.late == ()
        assert [f.path for f in later.late] == ["late.txt"]
        assert later.fingerprint != ended.diff.fingerprint

    async def test_late_edits_are_never_committed_silently(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """
        Edits after the turn end are never committed silently.

        They make Approve of the shown diff stale; the diff then lists them as late edits, and approving it
        commits the agent's change without them.
        """
        baseline = await _turn(workspace, "t1", lambda: tree.write("src/app.py", APP_AGENT))
        shown = await workspace.changes_since(baseline)
        tree.write("src/app.py", APP_AGENT + b"# late\n")
        tree.write("late.txt", b"late\n")

        with pytest.raises(StaleChangeError):
            await workspace.commit_turn(baseline, fingerprint=shown.fingerprint, message=MESSAGE)
        now = await workspace.changes_since(baseline)
        await workspace.commit_turn(baseline, fingerprint=now.fingerprint, message=MESSAGE)

        assert [f.path for f in now.late] == ["late.txt", "src/app.py"]
        assert "+# late" in now.late_unified
        assert now.unified == shown.unified
        assert tree.committed("src/app.py") == APP_AGENT
        assert tree.committed("late.txt") is None
        assert tree.read("src/app.py") == APP_AGENT + b"# late\n"

    async def test_reject_keeps_edits_made_while_the_change_is_pending(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """
        Reject takes out the agent's hunks and files only, and says what it restored and kept.

        The developer's edit to another file, their new file and their line in the agent's file stay.
        """
        baseline = await _turn(
            workspace, "t1", lambda: tree.write("src/app.py", APP_AGENT), lambda: tree.write("new.txt", b"agent\n")
        )
        tree.write("README.md", b"# demo\nmine\n")
        tree.write("later.txt", b"mine\n")
        tree.write("src/app.py", APP_AGENT_AND_MINE)

        restored = await workspace.restore_turn(baseline)

        assert (restored.restored, restored.merged, restored.kept) == (("new.txt", "src/app.py"), ("src/app.py",), ())
        assert tree.read("src/app.py") == b"# mine\n" + APP
        assert not tree.exists("new.txt")
        assert (tree.read("README.md"), tree.read("later.txt")) == (b"# demo\nmine\n", b"mine\n")

    async def test_reject_leaves_overlapping_paths_alone(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """A path whose later edits overlap the agent's lines is not written; Reject says so and does the rest."""
        baseline = await _turn(
            workspace, "t1", lambda: tree.write("src/app.py", APP_AGENT), lambda: tree.write("src/util.py", b"X = 2\n")
        )
        tree.write("src/app.py", APP_AGENT.replace(b"return 2", b"return 3"))

        restored = await workspace.restore_turn(baseline)

        assert (restored.restored, restored.kept) == (("src/util.py",), ("src/app.py",))
        assert tree.read("src/app.py") == APP_AGENT.replace(b"return 2", b"return 3")
        assert tree.read("src/util.py") == SEED["src/util.py"]

    async def test_an_extended_change_keeps_the_developers_edits_theirs(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """
        A second prompt on a pending change extends it; edits the developer made in between stay theirs.

        They are not in the agent's diff, not committed, not reverted.
        """
        first = await _turn(workspace, "t1", lambda: tree.write("src/app.py", APP_AGENT))
        tree.write("src/app.py", APP_AGENT_AND_MINE)
        tree.write("README.md", b"# demo\nmine\n")
        second = await workspace.begin_turn(TurnId("t2"), extends=first)
        tree.write("src/new.py", b"NEW = 1\n")
        second = (await workspace.end_turn(second)).baseline

        diff = await workspace.changes_since(second)
        restored = await workspace.restore_turn(second)

        assert diff.paths == ("src/app.py", "src/new.py")
        assert "# mine" not in diff.unified
        assert diff.late == ()
        assert restored.restored == ("src/app.py", "src/new.py")
        assert tree.read("src/app.py") == b"# mine\n" + APP
        assert tree.read("README.md") == b"# demo\nmine\n"
        assert not tree.exists("src/new.py")

    async def test_a_directory_that_becomes_a_file_is_committed(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """
        A directory that becomes a file again is committed as git would (`git add -A x`).

        A committed file ``x`` the developer replaced by ``x/y.txt`` is replaced by an executable file ``x``.
        """
        await commit_files(workspace, tree, {"x": b"file\n"}, turn="t1")
        tree.write("x/y.txt", b"mine\n")
        baseline = await _turn(workspace, "t2", lambda: tree.write("x", b"#!/bin/sh\n", executable=True))

        diff = await workspace.changes_since(baseline)
        await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        assert tree.committed("x") == b"#!/bin/sh\n"
        assert tree.staged("x") == b"#!/bin/sh\n"
        assert tree.staged("x/y.txt") is None
        assert tree.is_executable("x")
        status = await workspace.status()
        assert (status.staged, status.unstaged, status.untracked) == ((), (), ())

    async def test_agent_staging_a_file_that_becomes_a_directory(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """
        The agent stages ``x`` and then replaces it by ``x/y.txt``: the index stays one git accepts.

        Approve commits ``x/y.txt``, the index lists it alone, and the next turn begins normally.
        """

        def agent() -> None:
            tree.write("x", b"file\n")
            tree.stage()
            tree.write("x/y.txt", b"below\n")

        baseline = await _turn(workspace, "t1", agent)
        diff = await workspace.changes_since(baseline)
        await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)
        after = await workspace.begin_turn(TurnId("t2"))

        assert diff.paths == ("x/y.txt",)
        assert (tree.committed("x/y.txt"), tree.staged("x/y.txt"), tree.staged("x")) == (b"below\n", b"below\n", None)
        assert (await workspace.changes_since(after)).is_empty
        assert (await workspace.status()).is_clean

    async def test_a_broken_index_is_refused_with_its_repair(
        self,
        workspace: Workspace,
        tree: WorkspaceTree,
        seeded: CommitInfo,
        break_index: Callable[[], None],
    ) -> None:
        """An index listing ``clash`` as a file and as a directory: begin_turn says how to repair it, loses nothing."""
        tree.write("mine.txt", b"mine\n")
        break_index()

        with pytest.raises(WorkspaceError, match="git rm") as raised:
            await workspace.begin_turn(TurnId("t1"))

        assert "clash" in str(raised.value)
        assert tree.read("mine.txt") == b"mine\n"
        assert (await workspace.status()).head == seeded.short_sha

    async def test_symlinks_empty_files_and_bytes_round_trip(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Symlinks, empty files, CRLF and non-UTF-8 content are committed and restored byte for byte."""
        files = {"empty.txt": b"", "win.txt": b"a\r\nb\r\n", "latin1.txt": b"caf\xe9\n", "blob.bin": b"\x00\x01\x02"}

        def agent() -> None:
            for path, data in files.items():
                tree.write(path, data)
            tree.symlink("link", "src/app.py")

        baseline = await _turn(workspace, "t1", agent)
        diff = await workspace.changes_since(baseline)
        await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)
        again = await _turn(workspace, "t2", *(functools.partial(tree.delete, p) for p in [*files, "link"]))
        await workspace.restore_turn(again)

        for path, data in files.items():
            assert (tree.committed(path), tree.read(path)) == (data, data)
        assert (tree.committed("link"), tree.read("link")) == (b"src/app.py", b"src/app.py")
        assert {f.path for f in diff.files if f.binary} == {"blob.bin"}
        assert (await workspace.status()).is_clean
