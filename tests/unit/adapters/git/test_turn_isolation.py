"""
The four ways turn isolation broke (issue 10), each replayed through `DulwichWorkspace` with git as the oracle.

1. Reject destroyed the developer's edits made while a change was pending.
2. Approve committed the developer's own unstaged lines in a file the agent also edited.
3. A directory that became a file could not be approved.
4. An approve left both ``x`` and ``x/y.txt`` in the index, wedging every later ``begin_turn``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.gitoracle import fsck, git, git_bytes, init_repo, porcelain, requires_git, tree_of, write_clashing_index
from voicecoder.adapters import DulwichWorkspace
from voicecoder.domain.errors import WorkspaceError
from voicecoder.domain.model import Baseline, CommitMessage, Ownership, TurnId

pytestmark = requires_git

MESSAGE = CommitMessage("Apply changes from Claude", "Prompt: test")
APP = b"def main():\n    return 1\n"


def write(repo: Path, path: str, data: bytes, *, executable: bool = False) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o755 if executable else 0o644)


def changed_lines(diff: str) -> list[str]:
    """The + and - lines of a unified diff, without the file headers."""
    return [line for line in diff.splitlines() if line.startswith(("+", "-")) and line[:3] not in ("+++", "---")]


def git_accepts(repo: Path) -> None:
    """The index is one git can write a tree from, and every object and ref is sound."""
    git(repo, "write-tree")
    fsck(repo)


async def approve(ws: DulwichWorkspace, baseline: Baseline) -> str:
    diff = await ws.changes_since(baseline)
    return (await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)).sha


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo", {"a.txt": b"one\n", "src/app.py": APP})


@pytest.fixture(name="ws")
def _ws(repo: Path) -> DulwichWorkspace:
    return DulwichWorkspace(repo, init_if_missing=False)


class TestIssue10Regressions:
    async def test_reject_keeps_edits_made_while_the_change_is_pending(self, repo: Path, ws: DulwichWorkspace) -> None:
        """
        Case 1: the agent writes src/app.py and new.txt; while the change waits, the developer edits a.txt,
        creates later.txt and adds a line to src/app.py. Reject removes only the agent's work and says so.
        """
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "src/app.py", APP + b"\n\ndef helper():\n    return 2\n")
        write(repo, "new.txt", b"agent\n")
        baseline = (await ws.end_turn(baseline)).baseline
        write(repo, "a.txt", b"one\nmine\n")
        write(repo, "later.txt", b"mine\n")
        write(repo, "src/app.py", b"# mine\n" + APP + b"\n\ndef helper():\n    return 2\n")

        restored = await ws.restore_turn(baseline)

        assert (repo / "a.txt").read_bytes() == b"one\nmine\n"
        assert (repo / "later.txt").read_bytes() == b"mine\n"
        assert (repo / "src/app.py").read_bytes() == b"# mine\n" + APP
        assert not (repo / "new.txt").exists()
        assert restored.restored == ("new.txt", "src/app.py")
        assert restored.merged == ("src/app.py",)
        assert porcelain(repo) == {(" M", "a.txt"), (" M", "src/app.py"), ("??", "later.txt")}
        assert changed_lines(git(repo, "diff", "--", "src/app.py")) == ["+# mine"]
        git_accepts(repo)

    async def test_approve_leaves_the_developers_unstaged_lines_uncommitted(
        self, repo: Path, ws: DulwichWorkspace
    ) -> None:
        """
        Case 2: a.txt has the developer's unstaged `user-edit` line; the agent appends `agent-line`. The commit
        holds only `agent-line`; `git diff` afterwards shows exactly `user-edit`, `git diff --cached` nothing.
        """
        write(repo, "a.txt", b"one\nuser-edit\n")
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\nuser-edit\nagent-line\n")
        baseline = (await ws.end_turn(baseline)).baseline
        diff = await ws.changes_since(baseline)

        await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        assert git_bytes(repo, "show", "HEAD:a.txt") == b"one\nagent-line\n"
        assert changed_lines(git(repo, "show", "--format=", "HEAD")) == ["+agent-line"]
        assert git(repo, "diff", "--cached") == ""
        assert changed_lines(git(repo, "diff", "--", "a.txt")) == ["+user-edit"]
        assert (repo / "a.txt").read_bytes() == b"one\nuser-edit\nagent-line\n"
        assert [(f.path, f.owner) for f in diff.files] == [("a.txt", Ownership.BOTH)]
        assert changed_lines(diff.unified) == ["+agent-line"]
        assert changed_lines(diff.yours) == ["+user-edit"]
        git_accepts(repo)

    async def test_a_directory_that_becomes_a_file_can_be_approved(self, repo: Path, ws: DulwichWorkspace) -> None:
        """
        Case 3: a turn adds file x (committed); the developer replaces it by x/y.txt; the next turn replaces x/
        by an executable file x. Approve commits the tree `git add -A x && git commit` would.
        """
        first = await ws.begin_turn(TurnId("t1"))
        write(repo, "x", b"file\n")
        await approve(ws, (await ws.end_turn(first)).baseline)
        (repo / "x").unlink()
        write(repo, "x/y.txt", b"mine\n")
        second = await ws.begin_turn(TurnId("t2"))
        shutil.rmtree(repo / "x")
        write(repo, "x", b"#!/bin/sh\necho x\n", executable=True)
        second = (await ws.end_turn(second)).baseline
        oracle = repo.parent / "oracle"
        shutil.copytree(repo, oracle, symlinks=True)
        git(oracle, "add", "-A", "x")
        git(oracle, "commit", "-q", "-m", "oracle")

        await approve(ws, second)

        assert tree_of(repo) == tree_of(oracle)
        assert tree_of(repo)["x"][0] == "100755"
        assert porcelain(repo) == set()
        git_accepts(repo)

    async def test_agent_staging_a_file_then_a_directory_leaves_a_sound_index(
        self, repo: Path, ws: DulwichWorkspace
    ) -> None:
        """
        Case 4: in a turn x is created and staged (`git add -A`), then replaced by x/y.txt. After Approve the
        index lists x/y.txt alone, git accepts it, and the next turn begins.
        """
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "x", b"file\n")
        git(repo, "add", "-A")
        (repo / "x").unlink()
        write(repo, "x/y.txt", b"below\n")
        baseline = (await ws.end_turn(baseline)).baseline

        await approve(ws, baseline)
        after = await ws.begin_turn(TurnId("t2"))

        assert git(repo, "ls-files", "--", "x", "x/y.txt").split() == ["x/y.txt"]
        assert porcelain(repo) == set()
        assert (await ws.changes_since(after)).is_empty
        git_accepts(repo)

    async def test_begin_turn_on_a_broken_index_says_how_to_repair_it(self, repo: Path, ws: DulwichWorkspace) -> None:
        """
        An index already listing x as a file and x/y.txt (as the old approve left it) is refused with the git
        command that repairs it; nothing is written, and after the repair turns work again.
        """
        write(repo, "x/y.txt", b"below\n")
        write_clashing_index(repo, [b"x", b"x/y.txt"], b"below\n")
        before = (repo / ".git" / "index").read_bytes()
        refs_before = git(repo, "for-each-ref")

        with pytest.raises(WorkspaceError, match=r"git rm --cached -q -- x\b") as raised:
            await ws.begin_turn(TurnId("t1"))

        assert "both as a file and as a directory" in str(raised.value)
        assert (repo / ".git" / "index").read_bytes() == before
        assert git(repo, "for-each-ref") == refs_before
        assert (repo / "x" / "y.txt").read_bytes() == b"below\n"
        git(repo, "rm", "--cached", "-q", "--", "x")
        baseline = await ws.begin_turn(TurnId("t1"))
        assert (await ws.changes_since(baseline)).is_empty
        git_accepts(repo)
