"""
The `Workspace` contract: every agent turn is a transaction, as an abstract pytest class.

Subclass `WorkspaceContract` in a ``test_*.py`` module, name the subclass ``Test…`` and override its fixtures:
``workspace`` (the adapter under test, ready to use, with at least one commit), ``tree`` (a `WorkspaceTree`
that edits the same working tree behind the adapter's back, as the agent and the developer do), and three
capabilities, each a callable that puts the workspace into a state the port must refuse:
``break_repository`` (no longer a usable repository), ``break_index`` (the index lists ``clash`` both as a file
and as a directory, as a broken git index can) and ``lock`` (another git process holds the repository's
locks)::

    class TestMyWorkspace(WorkspaceContract):
        @pytest.fixture
        async def workspace(self, tmp_path: Path) -> Workspace:
            ws = MyWorkspace(tmp_path / "repo")
            await ws.open()
            return ws

        @pytest.fixture
        def tree(self, tmp_path: Path) -> WorkspaceTree:
            return DiskTree(tmp_path / "repo")

        ...  # break_repository, break_index, lock

`DiskTree` serves any adapter whose working tree is a git checkout on disk. The three-way behaviour (the
developer's edits beside the agent's, late edits, overlaps, extensions, file/directory changes) is in
`WorkspaceIsolationContract`, which `WorkspaceContract` includes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from voicecoder.domain.errors import NotARepositoryError, StaleChangeError, WorkspaceConflictError, WorkspaceError
from voicecoder.domain.model import Baseline, ChangeKind, CommitInfo, CommitMessage, Diff, TurnId
from voicecoder.domain.ports import Workspace
from voicecoder.testing.contracts.workspace_isolation import WorkspaceIsolationContract
from voicecoder.testing.contracts.workspace_tree import MESSAGE, SEED, DiskTree, WorkspaceTree, commit_files

__all__ = ["DiskTree", "WorkspaceContract", "WorkspaceTree", "commit_files"]


def _kinds(diff: Diff) -> dict[str, ChangeKind]:
    return {change.path: change.kind for change in diff.files}


class WorkspaceContract(WorkspaceIsolationContract):
    """What every `Workspace` must do. Not collected by itself: subclass it as ``Test…``."""

    @pytest.fixture
    def workspace(self) -> Workspace:
        raise NotImplementedError("Override the `workspace` fixture: the adapter under test, with one commit.")

    @pytest.fixture
    def tree(self) -> WorkspaceTree:
        raise NotImplementedError("Override the `tree` fixture: a WorkspaceTree over the adapter's working tree.")

    @pytest.fixture
    def break_repository(self) -> Callable[[], None]:
        raise NotImplementedError(
            "Override `break_repository`: a callable after which the workspace is no longer a usable repository."
        )

    @pytest.fixture
    def break_index(self) -> Callable[[], None]:
        raise NotImplementedError(
            "Override `break_index`: a callable after which the index lists `clash` as a file and as a directory."
        )

    @pytest.fixture
    def lock(self) -> Callable[[], None]:
        raise NotImplementedError(
            "Override `lock`: a callable after which another git process holds the repository's locks."
        )

    @pytest.fixture
    async def seeded(self, workspace: Workspace, tree: WorkspaceTree) -> CommitInfo:
        """A commit holding README.md, src/app.py and src/util.py."""
        return await commit_files(workspace, tree, SEED)

    async def test_untouched_tree_has_no_changes(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """A turn that changes nothing yields an empty diff."""
        baseline = await workspace.begin_turn(TurnId("t1"))

        diff = await workspace.changes_since(baseline)

        assert diff.is_empty
        assert diff.unified == ""

    async def test_changes_are_classified(self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo) -> None:
        """Added, modified, deleted and mode-only changes are reported with their kind and line counts."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/new.py", b"a\nb\n")
        tree.write("src/app.py", b"def main():\n    return 2\n")
        tree.delete("src/util.py")
        tree.chmod("README.md", executable=True)

        diff = await workspace.changes_since(baseline)

        assert _kinds(diff) == {
            "src/new.py": ChangeKind.ADDED,
            "src/app.py": ChangeKind.MODIFIED,
            "src/util.py": ChangeKind.DELETED,
            "README.md": ChangeKind.MODE_CHANGED,
        }
        by_path = {change.path: change for change in diff.files}
        assert (by_path["src/new.py"].additions, by_path["src/new.py"].deletions) == (2, 0)
        assert (by_path["src/app.py"].additions, by_path["src/app.py"].deletions) == (1, 1)
        assert (by_path["src/util.py"].additions, by_path["src/util.py"].deletions) == (0, 1)
        assert by_path["README.md"].new_mode == 0o100755
        for path in by_path:
            assert f"diff --git a/{path} b/{path}" in diff.unified
        assert "+    return 2" in diff.unified
        assert "-    return 1" in diff.unified

    async def test_changes_before_the_turn_are_not_the_turns(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Edits made before begin_turn are part of the baseline, not of the turn's diff."""
        tree.write("src/util.py", b"X = 2\n")
        tree.write("notes.txt", b"mine\n")
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"changed\n")

        diff = await workspace.changes_since(baseline)

        assert diff.paths == ("src/app.py",)

    async def test_binary_files_are_marked(self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo) -> None:
        """A file with NUL bytes is a binary change without line counts."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00")

        diff = await workspace.changes_since(baseline)

        (change,) = diff.files
        assert change.binary
        assert (change.additions, change.deletions) == (0, 0)
        assert "Binary files" in diff.unified

    async def test_fingerprint_follows_content(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """The fingerprint is a sha256 hex that is stable for the same tree and changes with any edit."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"one\n")
        first = await workspace.changes_since(baseline)
        again = await workspace.changes_since(baseline)
        tree.write("src/app.py", b"two\n")
        second = await workspace.changes_since(baseline)
        tree.write("src/app.py", b"two\n", executable=True)
        third = await workspace.changes_since(baseline)

        assert len(first.fingerprint) == 64
        int(first.fingerprint, 16)
        assert first.fingerprint == again.fingerprint
        assert len({first.fingerprint, second.fingerprint, third.fingerprint}) == 3

    async def test_commit_takes_only_the_turns_paths(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Approve commits the turn's paths; the developer's own edits stay uncommitted and untouched."""
        tree.write("src/util.py", b"X = 'mine'\n")
        tree.write("scratch.txt", b"todo\n")
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"def main():\n    return 2\n")
        tree.write("src/greet.py", b"print('hi')\n")
        diff = await workspace.changes_since(baseline)

        commit = await workspace.commit_turn(baseline, fingerprint=diff.fingerprint[:12], message=MESSAGE)

        status = await workspace.status()
        assert status.head == commit.short_sha
        assert status.latest_subject == "Apply changes from Claude"
        assert "src/util.py" in status.unstaged
        assert "scratch.txt" in status.untracked
        for path in ("src/app.py", "src/greet.py"):
            assert path not in status.unstaged
            assert path not in status.untracked
        assert tree.read("src/util.py") == b"X = 'mine'\n"
        assert commit.message == MESSAGE.render()
        assert commit.subject == "Apply changes from Claude"
        assert (await workspace.changes_since(await workspace.begin_turn(TurnId("t2")))).is_empty

    async def test_stale_fingerprint_is_refused(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """A commit with a fingerprint of an older diff raises StaleChangeError and commits nothing."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"first\n")
        shown = await workspace.changes_since(baseline)
        tree.write("src/app.py", b"second\n")
        before = await workspace.status()

        with pytest.raises(StaleChangeError):
            await workspace.commit_turn(baseline, fingerprint=shown.fingerprint, message=MESSAGE)

        assert (await workspace.status()).head == before.head
        assert tree.read("src/app.py") == b"second\n"

    async def test_nothing_to_commit_is_an_error(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """commit_turn never makes an empty commit."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        head = (await workspace.status()).head

        with pytest.raises(WorkspaceError):
            await workspace.commit_turn(baseline, fingerprint="", message=MESSAGE)

        assert (await workspace.status()).head == head

    async def test_edits_undone_by_hand_leave_nothing_to_commit(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """A turn whose edits were reverted before approval has nothing to commit."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"temporary\n")
        diff = await workspace.changes_since(baseline)
        tree.write("src/app.py", SEED["src/app.py"])

        with pytest.raises(WorkspaceError):
            await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

    async def test_a_turn_that_leaves_head_as_it_is_commits_nothing(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Deleting a file that was never committed is a change of the turn, but there is nothing to commit."""
        tree.write("scratch.txt", b"never committed\n")
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.delete("scratch.txt")
        diff = await workspace.changes_since(baseline)

        with pytest.raises(WorkspaceError):
            await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        assert _kinds(diff) == {"scratch.txt": ChangeKind.DELETED}
        assert (await workspace.status()).head == seeded.short_sha

    async def test_restore_puts_back_exactly_the_turns_paths(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Reject restores modified and deleted files, removes created ones and keeps prior edits."""
        tree.write("src/util.py", b"X = 'mine'\n")
        tree.write("scratch.txt", b"todo\n")
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"broken\n")
        tree.delete("README.md")
        tree.write("src/new/deep.py", b"pass\n")
        tree.write("scratch.txt", b"todo\nmore\n")
        tree.chmod("src/util.py", executable=True)

        restored = await workspace.restore_turn(baseline)

        assert restored.restored == ("README.md", "scratch.txt", "src/app.py", "src/new/deep.py", "src/util.py")
        assert (restored.merged, restored.kept) == ((), ())
        assert tree.read("src/app.py") == SEED["src/app.py"]
        assert tree.read("README.md") == SEED["README.md"]
        assert not tree.exists("src/new/deep.py")
        assert tree.read("scratch.txt") == b"todo\n"
        assert tree.read("src/util.py") == b"X = 'mine'\n"
        assert not tree.is_executable("src/util.py")
        assert (await workspace.changes_since(baseline)).is_empty
        status = await workspace.status()
        assert status.unstaged == ("src/util.py",)
        assert status.untracked == ("scratch.txt",)

    async def test_release_leaves_the_tree_alone(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Releasing a settled turn's checkpoint changes no file and no commit, and may be repeated."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"changed\n")
        before = await workspace.status()

        await workspace.release_turn(baseline)
        await workspace.release_turn(baseline)

        assert await workspace.status() == before
        assert tree.read("src/app.py") == b"changed\n"

    async def test_unknown_baseline_is_an_error(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """A baseline (or turn end) the workspace never made raises WorkspaceError, and nothing changes."""
        bogus = Baseline(TurnId("nope"), "0" * 40)
        real = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"agent\n")
        bogus_end = Baseline(real.turn_id, real.snapshot, "0" * 40)

        for call in (
            lambda: workspace.changes_since(bogus),
            lambda: workspace.end_turn(bogus),
            lambda: workspace.restore_turn(bogus),
            lambda: workspace.commit_turn(bogus, fingerprint="", message=MESSAGE),
            lambda: workspace.begin_turn(TurnId("t2"), extends=bogus),
            lambda: workspace.changes_since(bogus_end),
            lambda: workspace.restore_turn(bogus_end),
        ):
            with pytest.raises(WorkspaceError):
                await call()

        assert tree.read("src/app.py") == b"agent\n"
        assert (await workspace.status()).head == seeded.short_sha

    async def test_a_broken_repository_is_not_a_repository(
        self, workspace: Workspace, seeded: CommitInfo, break_repository: Callable[[], None]
    ) -> None:
        """A workspace that stopped being a usable repository raises NotARepositoryError."""
        break_repository()

        with pytest.raises(NotARepositoryError):
            await workspace.begin_turn(TurnId("t1"))
        with pytest.raises(NotARepositoryError):
            await workspace.status()

    async def test_locks_held_by_another_process_change_nothing(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo, lock: Callable[[], None]
    ) -> None:
        """With the repository locked, Reject and releasing a checkpoint raise WorkspaceError and change nothing."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"agent\n")
        baseline = (await workspace.end_turn(baseline)).baseline
        lock()

        with pytest.raises(WorkspaceError):
            await workspace.restore_turn(baseline)
        with pytest.raises(WorkspaceError):
            await workspace.release_turn(baseline)

        assert tree.read("src/app.py") == b"agent\n"
        assert (await workspace.changes_since(baseline)).paths == ("src/app.py",)

    async def test_revert_undoes_a_commit(self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo) -> None:
        """revert_commit restores the files of an approved turn in a new commit."""
        baseline = await workspace.begin_turn(TurnId("t1"))
        tree.write("src/app.py", b"v2\n")
        tree.write("added.txt", b"new\n")
        diff = await workspace.changes_since(baseline)
        approved = await workspace.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        revert = await workspace.revert_commit(approved.sha, message=CommitMessage("Revert"))

        assert revert.sha != approved.sha
        assert tree.read("src/app.py") == SEED["src/app.py"]
        assert not tree.exists("added.txt")
        status = await workspace.status()
        assert status.is_clean
        assert status.head == revert.short_sha

    async def test_revert_refuses_when_paths_moved_on(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """A commit whose paths changed in a later commit is not reverted."""
        first = await commit_files(workspace, tree, {"src/app.py": b"v2\n"}, turn="t1")
        later = await commit_files(workspace, tree, {"src/app.py": b"v3\n"}, turn="t2")

        with pytest.raises(WorkspaceConflictError):
            await workspace.revert_commit(first.sha, message=CommitMessage("Revert"))

        assert (await workspace.status()).head == later.short_sha
        assert tree.read("src/app.py") == b"v3\n"

    async def test_revert_refuses_over_uncommitted_edits(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Reverting a commit whose paths now have uncommitted edits would destroy them: refused."""
        approved = await commit_files(workspace, tree, {"src/app.py": b"v2\n"}, turn="t1")
        tree.write("src/app.py", b"v3, not committed\n")

        with pytest.raises(WorkspaceConflictError):
            await workspace.revert_commit(approved.sha, message=CommitMessage("Revert"))

        assert tree.read("src/app.py") == b"v3, not committed\n"
        assert (await workspace.status()).head == approved.short_sha

    async def test_revert_of_unknown_commit_is_an_error(self, workspace: Workspace, seeded: CommitInfo) -> None:
        """An unknown sha raises WorkspaceError."""
        with pytest.raises(WorkspaceError):
            await workspace.revert_commit("f" * 40, message=CommitMessage("Revert"))

    async def test_status_reports_branch_and_counts(
        self, workspace: Workspace, tree: WorkspaceTree, seeded: CommitInfo
    ) -> None:
        """Status names the branch and HEAD, counts tracked files and lists untracked ones."""
        tree.write("loose.txt", b"x\n")

        status = await workspace.status()

        assert status.branch
        assert status.head == seeded.short_sha
        assert status.tracked_files >= len(SEED)
        assert status.untracked == ("loose.txt",)
        assert not status.is_clean
