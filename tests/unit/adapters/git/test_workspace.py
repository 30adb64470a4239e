from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.gitoracle import (
    changed_paths,
    fsck,
    git,
    git_bytes,
    init_repo,
    numstat,
    porcelain,
    requires_git,
    tree_of,
    worktree_tree,
)
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.adapters.git.index import GitIndex
from voicecoder.domain.errors import NotARepositoryError, StaleChangeError, WorkspaceConflictError, WorkspaceError
from voicecoder.domain.model import ChangeKind, CommitMessage, TurnId

pytestmark = requires_git

MESSAGE = CommitMessage("Apply changes from Claude", "Prompt: test\nAt: now", (("Change-Id", "abcdef12"),))
BASE = {
    "README.md": b"# demo\n",
    "src/app.py": b"def main():\n    return 1\n",
    "src/util.py": b"X = 1\n",
    "run.sh": b"#!/bin/sh\necho hi\n",
    ".gitignore": b"*.log\nnode_modules/\n",
}


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo", BASE)


@pytest.fixture(name="ws")
def _ws(repo: Path) -> DulwichWorkspace:
    return DulwichWorkspace(repo, author="Tester <tester@localhost>", init_if_missing=False)


def write(repo: Path, path: str, data: bytes) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


async def approve(ws: DulwichWorkspace, baseline_turn: str, edit: dict[str, bytes | None], repo: Path) -> str:
    """Run one turn that applies *edit* (None deletes) and commit it; return the commit sha."""
    baseline = await ws.begin_turn(TurnId(baseline_turn))
    for path, data in edit.items():
        if data is None:
            (repo / path).unlink()
        else:
            write(repo, path, data)
    diff = await ws.changes_since(baseline)
    return (await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)).sha


class TestDulwichWorkspaceOpen:
    async def test_creates_a_repository_with_an_empty_first_commit(self, tmp_path: Path) -> None:
        """A missing workspace becomes a repo on main with one empty commit; existing files stay uncommitted."""
        path = tmp_path / "new"
        path.mkdir()
        (path / "mine.txt").write_bytes(b"mine\n")
        ws = DulwichWorkspace(path, author="Bot <bot@localhost>")

        await ws.open()

        assert git(path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
        assert git(path, "log", "--format=%an <%ae>|%s").strip() == "Bot <bot@localhost>|Initial commit (voicecoder)"
        assert tree_of(path) == {}
        assert porcelain(path) == {("??", "mine.txt")}
        fsck(path)

    async def test_refuses_a_plain_directory_when_told_not_to_create(self, tmp_path: Path) -> None:
        """init_if_missing=False turns a plain directory into NotARepositoryError, and creates nothing."""
        ws = DulwichWorkspace(tmp_path, init_if_missing=False)

        with pytest.raises(NotARepositoryError, match="git init"):
            await ws.status()

        assert not (tmp_path / ".git").exists()

    async def test_refuses_a_directory_inside_another_repository(self, repo: Path) -> None:
        """A subdirectory of a repository is not silently turned into a nested repository."""
        ws = DulwichWorkspace(repo / "src")

        with pytest.raises(NotARepositoryError, match="inside the git repository"):
            await ws.open()

        assert not (repo / "src" / ".git").exists()

    async def test_works_on_a_repository_without_commits(self, tmp_path: Path) -> None:
        """On an unborn branch the first approved turn becomes the root commit."""
        path = init_repo(tmp_path / "empty")
        ws = DulwichWorkspace(path, init_if_missing=False)

        sha = await approve(ws, "t1", {"a.txt": b"a\n"}, path)

        assert git(path, "rev-list", "--count", "HEAD").strip() == "1"
        assert git(path, "rev-parse", "HEAD").strip() == sha
        assert porcelain(path) == set()
        fsck(path)


class TestDulwichWorkspaceTurns:
    async def test_checkpoint_is_the_tree_git_would_snapshot(self, repo: Path, ws: DulwichWorkspace) -> None:
        """The checkpoint commit holds tracked, modified and untracked files, never ignored ones or the index."""
        write(repo, "src/app.py", b"edited\n")
        write(repo, "new/file.txt", b"new\n")
        write(repo, "debug.log", b"ignored\n")
        write(repo, "node_modules/x/index.js", b"ignored\n")
        git(repo, "add", "src/app.py")
        index_before = (repo / ".git" / "index").read_bytes()
        status_before = porcelain(repo)

        baseline = await ws.begin_turn(TurnId("t1"))

        assert git(repo, "rev-parse", "refs/voicecoder/checkpoints/t1").strip() == baseline.snapshot
        assert git(repo, "rev-parse", f"{baseline.snapshot}^{{tree}}").strip() == worktree_tree(repo)
        assert (repo / ".git" / "index").read_bytes() == index_before
        assert porcelain(repo) == status_before
        fsck(repo)

    async def test_release_removes_only_its_checkpoint_ref(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Releasing a turn deletes its checkpoint ref; other turns' checkpoints stay; git stays consistent."""
        first = await ws.begin_turn(TurnId("t1"))
        await ws.begin_turn(TurnId("t2"))

        await ws.release_turn(first)
        await ws.release_turn(first)

        refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/voicecoder/").split()
        assert refs == ["refs/voicecoder/checkpoints/t2"]
        fsck(repo)

    async def test_the_turn_end_is_a_second_durable_checkpoint(self, repo: Path, ws: DulwichWorkspace) -> None:
        """end_turn records what the agent left under refs/voicecoder/turn-ends/; a new instance uses it; release
        drops both refs."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "src/app.py", b"agent\n")
        git(repo, "add", "src/app.py")
        ended = (await ws.end_turn(baseline)).baseline
        write(repo, "late.txt", b"late\n")

        diff = await DulwichWorkspace(repo, init_if_missing=False).changes_since(ended)

        assert ended.snapshot == baseline.snapshot
        assert ended.turn_end is not None
        assert git(repo, "rev-parse", "refs/voicecoder/turn-ends/t1").strip() == ended.turn_end
        assert git(repo, "rev-parse", f"{ended.turn_end}^{{tree}}").strip() != git(repo, "rev-parse", "HEAD^{tree}")
        assert (diff.paths, [f.path for f in diff.late]) == (("src/app.py",), ["late.txt"])
        await ws.release_turn(ended)
        assert git(repo, "for-each-ref", "refs/voicecoder/") == ""
        fsck(repo)

    async def test_baseline_survives_a_restart(self, repo: Path, ws: DulwichWorkspace) -> None:
        """A new adapter instance (empty caches) sees the same turn through the checkpoint ref."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "src/app.py", b"edited\n")
        before = await ws.changes_since(baseline)

        after = await DulwichWorkspace(repo, init_if_missing=False).changes_since(baseline)

        assert after == before
        assert after.paths == ("src/app.py",)

    async def test_diff_matches_git_and_applies(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Paths, kinds and line counts equal git's numstat; `git apply` of the diff recreates the turn."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "src/app.py", b"def main():\n    return 2\n\n\ndef extra():\n    pass")
        write(repo, "src/crlf.txt", b"one\r\ntwo\r\n")
        write(repo, "src/old_mac.txt", b"one\rtwo\rthree\n")
        write(repo, "docs/new.md", b"".join(b"line %d\n" % i for i in range(30)))
        (repo / "src/util.py").unlink()
        (repo / "run.sh").chmod(0o755)
        turn_tree = worktree_tree(repo)

        diff = await ws.changes_since(baseline)

        expected = numstat(repo, f"{baseline.snapshot}^{{tree}}", turn_tree)
        assert {f.path: (f.additions, f.deletions) for f in diff.files} == expected
        kinds = {f.path: f.kind for f in diff.files}
        assert kinds["run.sh"] is ChangeKind.MODE_CHANGED
        assert kinds["src/util.py"] is ChangeKind.DELETED
        assert "old mode 100644\nnew mode 100755\n" in diff.unified
        assert "\\ No newline at end of file" in diff.unified
        await ws.restore_turn(baseline)
        patch = repo.parent / "turn.patch"
        patch.write_bytes(diff.unified.encode())
        git(repo, "apply", str(patch))
        assert worktree_tree(repo) == turn_tree

    async def test_commit_takes_exactly_the_turn(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Only the turn's paths are committed; staged and unstaged edits from before stay as they were."""
        write(repo, "README.md", b"# staged by me\n")
        git(repo, "add", "README.md")
        write(repo, "src/util.py", b"X = 'unstaged'\n")
        write(repo, "notes.txt", b"untracked\n")
        status_before = porcelain(repo)
        staged_diff_before = git(repo, "diff", "--cached")
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "src/app.py", b"changed by the turn\n")
        write(repo, "src/feature.py", b"NEW = True\n")
        (repo / "run.sh").chmod(0o755)
        diff = await ws.changes_since(baseline)

        info = await ws.commit_turn(baseline, fingerprint=diff.fingerprint[:10], message=MESSAGE)

        assert git(repo, "rev-parse", "HEAD").strip() == info.sha
        assert changed_paths(repo) == {"src/app.py": "M", "src/feature.py": "A", "run.sh": "M"}
        assert tree_of(repo)["run.sh"][0] == "100755"
        assert porcelain(repo) == status_before
        assert git(repo, "diff", "--cached") == staged_diff_before
        assert git(repo, "log", "-1", "--format=%B") == MESSAGE.render() + "\n"
        assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "Tester <tester@localhost>"
        fsck(repo)

    async def test_commit_author_can_be_given(self, repo: Path, ws: DulwichWorkspace) -> None:
        """The caller's author is recorded as author and committer."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"a\n")
        diff = await ws.changes_since(baseline)

        await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE, author="Ann <ann@example.org>")

        assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == (
            "Ann <ann@example.org>|Ann <ann@example.org>"
        )

    async def test_stale_fingerprint_commits_nothing(self, repo: Path, ws: DulwichWorkspace) -> None:
        """A fingerprint of an older diff raises StaleChangeError; HEAD and the index stay put."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "src/app.py", b"one\n")
        shown = await ws.changes_since(baseline)
        write(repo, "src/app.py", b"two\n")
        head = git(repo, "rev-parse", "HEAD")
        index = (repo / ".git" / "index").read_bytes()

        with pytest.raises(StaleChangeError):
            await ws.commit_turn(baseline, fingerprint=shown.fingerprint, message=MESSAGE)

        assert git(repo, "rev-parse", "HEAD") == head
        assert (repo / ".git" / "index").read_bytes() == index

    async def test_same_size_edit_right_after_the_snapshot_is_seen(self, repo: Path, ws: DulwichWorkspace) -> None:
        """An edit that keeps the size and lands within the same clock tick is still detected (racy git)."""
        write(repo, "tick.txt", b"aaaa\n")
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "tick.txt", b"bbbb\n")
        first = await ws.changes_since(baseline)
        write(repo, "tick.txt", b"cccc\n")

        second = await ws.changes_since(baseline)

        assert first.paths == ("tick.txt",)
        assert second.fingerprint != first.fingerprint

    async def test_edit_hidden_behind_an_old_mtime_is_seen(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Resetting mtime after a same-size edit does not fool the stat cache: ctime changes."""
        path = repo / "src" / "util.py"
        old = time.time() - 3600
        os.utime(path, (old, old))
        git(repo, "update-index", "--refresh")
        baseline = await ws.begin_turn(TurnId("t1"))
        time.sleep(0.01)
        path.write_bytes(b"X = 2\n")
        os.utime(path, (old, old))

        diff = await ws.changes_since(baseline)

        assert diff.paths == ("src/util.py",)

    async def test_file_becomes_a_directory_and_back(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Replacing a file by a directory commits cleanly; rejecting the reverse turn restores the tree."""
        first = await ws.begin_turn(TurnId("t1"))
        (repo / "src" / "util.py").unlink()
        write(repo, "src/util.py/__init__.py", b"Y = 1\n")
        diff = await ws.changes_since(first)
        await ws.commit_turn(first, fingerprint=diff.fingerprint, message=MESSAGE)
        assert "src/util.py/__init__.py" in tree_of(repo)
        assert "src/util.py" not in tree_of(repo)
        assert porcelain(repo) == set()
        second = await ws.begin_turn(TurnId("t2"))
        (repo / "src" / "util.py" / "__init__.py").unlink()
        (repo / "src" / "util.py").rmdir()
        write(repo, "src/util.py", b"back to a file\n")

        await ws.restore_turn(second)

        assert (repo / "src" / "util.py" / "__init__.py").read_bytes() == b"Y = 1\n"
        assert porcelain(repo) == set()
        fsck(repo)

    async def test_symlinks_are_committed_and_restored(self, repo: Path, ws: DulwichWorkspace) -> None:
        """A symlink is committed as mode 120000 with its target; rejecting a retarget restores it."""
        baseline = await ws.begin_turn(TurnId("t1"))
        (repo / "latest").symlink_to("src/app.py")
        diff = await ws.changes_since(baseline)
        await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)
        assert tree_of(repo)["latest"][0] == "120000"
        assert git(repo, "cat-file", "blob", "HEAD:latest") == "src/app.py"
        second = await ws.begin_turn(TurnId("t2"))
        (repo / "latest").unlink()
        (repo / "latest").symlink_to("README.md")

        await ws.restore_turn(second)

        assert str((repo / "latest").readlink()) == "src/app.py"
        assert porcelain(repo) == set()

    async def test_bytes_are_kept_exactly(self, repo: Path, ws: DulwichWorkspace) -> None:
        """CRLF, non-UTF-8 and binary content is committed byte for byte, and diffs stay printable."""
        payloads = {
            "win.txt": b"a\r\nb\r\n",
            "latin1.txt": b"caf\xe9\n",
            "blob.bin": bytes(range(256)),
        }
        baseline = await ws.begin_turn(TurnId("t1"))
        for path, data in payloads.items():
            write(repo, path, data)
        diff = await ws.changes_since(baseline)

        await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        for path, data in payloads.items():
            assert git_bytes(repo, "cat-file", "blob", f"HEAD:{path}") == data
        assert {f.path for f in diff.files if f.binary} == {"blob.bin"}
        assert "Binary files /dev/null and b/blob.bin differ" in diff.unified
        assert porcelain(repo) == set()

    async def test_ignored_files_are_never_touched(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Ignored files are not in the diff, not committed and survive a reject."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "build.log", b"noise\n")
        write(repo, "node_modules/pkg/index.js", b"module\n")
        write(repo, "src/app.py", b"edited\n")
        diff = await ws.changes_since(baseline)

        await ws.restore_turn(baseline)

        assert diff.paths == ("src/app.py",)
        assert (repo / "build.log").read_bytes() == b"noise\n"
        assert (repo / "node_modules" / "pkg" / "index.js").exists()
        assert porcelain(repo) == set()

    async def test_non_ascii_names(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Names with accents and CJK characters are committed under their exact bytes."""
        name = "données/résumé 文件.txt"
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, name, b"ok\n")
        diff = await ws.changes_since(baseline)

        await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        assert diff.paths == (name,)
        assert name in tree_of(repo)
        assert porcelain(repo) == set()

    async def test_nested_repositories_are_left_out(self, repo: Path, ws: DulwichWorkspace) -> None:
        """A directory holding its own .git is not part of the turn."""
        baseline = await ws.begin_turn(TurnId("t1"))
        init_repo(repo / "vendor" / "lib", {"lib.py": b"L = 1\n"})
        write(repo, "src/app.py", b"edited\n")

        diff = await ws.changes_since(baseline)

        assert diff.paths == ("src/app.py",)

    async def test_reject_also_undoes_what_the_agent_staged(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Files the agent added to the index are unstaged again, so git status is as before the turn."""
        write(repo, "README.md", b"# staged by me\n")
        git(repo, "add", "README.md")
        status_before = porcelain(repo)
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "agent.py", b"A = 1\n")
        write(repo, "src/app.py", b"agent edit\n")
        git(repo, "add", "agent.py", "src/app.py")

        await ws.restore_turn(baseline)

        assert porcelain(repo) == status_before
        assert not (repo / "agent.py").exists()
        fsck(repo)

    async def test_reject_unstages_agent_files_on_a_clean_index(self, repo: Path, ws: DulwichWorkspace) -> None:
        """With the index equal to HEAD (checkpoint with one parent), agent-staged files are unstaged too."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "agent.py", b"A = 1\n")
        git(repo, "add", "agent.py")
        git(repo, "rm", "-q", "src/util.py")

        await ws.restore_turn(baseline)

        assert git(repo, "rev-list", "--parents", "-n1", baseline.snapshot).split()[1:] == [
            git(repo, "rev-parse", "HEAD").strip()
        ]
        assert porcelain(repo) == set()
        assert (repo / "src" / "util.py").read_bytes() == BASE["src/util.py"]

    async def test_status_matches_git(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Staged, unstaged and untracked lists agree with `git status --porcelain`."""
        write(repo, "README.md", b"staged\n")
        git(repo, "add", "README.md")
        write(repo, "src/app.py", b"unstaged\n")
        (repo / "src" / "util.py").unlink()
        write(repo, "new/one.txt", b"1\n")
        write(repo, "debug.log", b"ignored\n")

        status = await ws.status()

        oracle = porcelain(repo)
        assert set(status.staged) == {p for code, p in oracle if code[0] not in " ?"}
        assert set(status.unstaged) == {p for code, p in oracle if code[1] not in " ?"}
        assert set(status.untracked) == {p for code, p in oracle if code == "??"}
        assert status.branch == "main"
        assert status.head == git(repo, "rev-parse", "--short=7", "HEAD").strip()
        assert status.tracked_files == len(git(repo, "ls-files").splitlines())
        assert status.latest_subject == "initial"

    async def test_detached_head_commits_and_warns(self, repo: Path, ws: DulwichWorkspace) -> None:
        """On a detached HEAD status has no branch, diagnose warns, and a commit moves HEAD like git."""
        git(repo, "checkout", "-q", "--detach")

        sha = await approve(ws, "t1", {"a.txt": b"a\n"}, repo)

        assert (await ws.status()).branch is None
        assert git(repo, "rev-parse", "HEAD").strip() == sha
        assert git(repo, "rev-parse", "main").strip() != sha
        checks = {d.name: d for d in await ws.diagnose()}
        assert checks["branch"].warning
        assert checks["branch"].fix

    async def test_locked_index_is_a_clear_error(self, repo: Path, ws: DulwichWorkspace) -> None:
        """A stale index.lock makes commit_turn fail with an actionable WorkspaceError."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"a\n")
        diff = await ws.changes_since(baseline)
        (repo / ".git" / "index.lock").write_bytes(b"")

        head = git(repo, "rev-parse", "HEAD")

        with pytest.raises(WorkspaceError, match=r"index\.lock"):
            await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        assert git(repo, "rev-parse", "HEAD") == head
        (repo / ".git" / "index.lock").unlink()
        assert porcelain(repo) == {("??", "a.txt")}

    async def test_unsupported_index_format_is_a_clear_error(self, repo: Path, ws: DulwichWorkspace) -> None:
        """An index in format version 4 is refused with the command that converts it."""
        git(repo, "update-index", "--index-version", "4")

        with pytest.raises(WorkspaceError, match="index-version"):
            await ws.begin_turn(TurnId("t1"))

    async def test_revert_undoes_an_approved_turn(self, repo: Path, ws: DulwichWorkspace) -> None:
        """The revert commit restores the parent's content of exactly those paths."""
        sha = await approve(ws, "t1", {"src/app.py": b"v2\n", "added.txt": b"new\n", "run.sh": None}, repo)

        info = await ws.revert_commit(sha[:8], message=CommitMessage("Revert turn"))

        assert changed_paths(repo) == {"src/app.py": "M", "added.txt": "D", "run.sh": "A"}
        assert git(repo, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{sha}^^{{tree}}")
        assert git(repo, "rev-parse", "HEAD").strip() == info.sha
        assert porcelain(repo) == set()
        fsck(repo)

    async def test_revert_refuses_over_uncommitted_edits(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Reverting a commit whose paths now have uncommitted edits would destroy them: refused."""
        sha = await approve(ws, "t1", {"src/app.py": b"v2\n"}, repo)
        write(repo, "src/app.py", b"v3 not committed\n")

        with pytest.raises(WorkspaceConflictError, match="uncommitted"):
            await ws.revert_commit(sha, message=CommitMessage("Revert"))

        assert (repo / "src" / "app.py").read_bytes() == b"v3 not committed\n"
        assert git(repo, "rev-parse", "HEAD").strip() == sha

    async def test_revert_with_a_locked_index_changes_nothing(self, repo: Path, ws: DulwichWorkspace) -> None:
        """If index.lock is taken, revert fails before moving HEAD or touching files."""
        sha = await approve(ws, "t1", {"src/app.py": b"v2\n"}, repo)
        (repo / ".git" / "index.lock").write_bytes(b"")

        with pytest.raises(WorkspaceError, match=r"index\.lock"):
            await ws.revert_commit(sha, message=CommitMessage("Revert"))

        assert git(repo, "rev-parse", "HEAD").strip() == sha
        assert (repo / "src" / "app.py").read_bytes() == b"v2\n"

    async def test_reject_with_a_locked_index_changes_nothing(self, repo: Path, ws: DulwichWorkspace) -> None:
        """If index.lock is taken, reject fails before touching any file, like git would."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "src/app.py", b"agent\n")
        (repo / ".git" / "index.lock").write_bytes(b"")

        with pytest.raises(WorkspaceError, match=r"index\.lock"):
            await ws.restore_turn(baseline)

        assert (repo / "src" / "app.py").read_bytes() == b"agent\n"

    async def test_diagnose_reports_repository_branch_and_cleanliness(self, repo: Path, ws: DulwichWorkspace) -> None:
        """Diagnose lists the repository, the branch and whether the tree is clean."""
        write(repo, "loose.txt", b"x\n")

        checks = {d.name: d for d in await ws.diagnose()}

        assert checks["workspace"].ok
        assert "on main" in checks["branch"].detail
        assert checks["working tree"].detail == "1 uncommitted path"

    async def test_diagnose_of_a_missing_repository_says_how_to_fix_it(self, tmp_path: Path) -> None:
        """Diagnose never raises; a non-repository is a failed check with a fix."""
        ws = DulwichWorkspace(tmp_path, init_if_missing=False)

        (check,) = await ws.diagnose()

        assert not check.ok
        assert check.fix


class TestGitOracle:
    def test_fails_loudly(self, tmp_path: Path) -> None:
        """The oracle helper fails the test when git fails, so a broken oracle cannot pass silently."""
        with pytest.raises(pytest.fail.Exception):
            git(tmp_path, "rev-parse", "HEAD")

        assert subprocess.run(["git", "--version"], capture_output=True, check=True).stdout.startswith(b"git version")


class TestGitIndex:
    async def test_patched_view_equals_a_fresh_parse(self, repo: Path, ws: DulwichWorkspace) -> None:
        """After a commit the cached index is exactly what parsing the written file gives, and git accepts it."""
        write(repo, "src/deep/new.py", b"N = 1\n")
        git(repo, "add", "src/deep/new.py")
        await approve(ws, "t1", {"src/util.py": None, "a/b/c.txt": b"c\n", "src/app.py": b"v2\n"}, repo)

        cached = ws._git._index_cache

        assert cached is not None
        assert cached == GitIndex.load(str(repo / ".git" / "index"))
        assert b"a/b" in cached.tracked_dirs
        assert cached.tracked_dirs[b"src"] == 2
        git(repo, "ls-files", "--stage")
        assert porcelain(repo) == {("A ", "src/deep/new.py")}

    async def test_index_checksum_is_verified(self, repo: Path, ws: DulwichWorkspace) -> None:
        """A corrupt index is reported with the command that repairs it."""
        index = repo / ".git" / "index"
        data = bytearray(index.read_bytes())
        data[20] ^= 0xFF
        index.write_bytes(bytes(data))

        with pytest.raises(WorkspaceError, match="git reset"):
            await ws.status()


class TestDulwichWorkspaceSafety:
    async def test_restore_never_writes_through_a_symlinked_directory(
        self, repo: Path, ws: DulwichWorkspace, tmp_path: Path
    ) -> None:
        """A directory replaced by a symlink before the turn is not followed when restoring files below it."""
        outside = tmp_path / "outside"
        outside.mkdir()
        baseline = await ws.begin_turn(TurnId("t1"))
        (repo / "src" / "app.py").unlink()
        (repo / "src" / "util.py").unlink()
        (repo / "src").rmdir()
        (repo / "src").symlink_to(outside)

        await ws.restore_turn(baseline)

        assert list(outside.iterdir()) == []
        assert (repo / "src").is_dir()
        assert not (repo / "src").is_symlink()
        assert (repo / "src" / "app.py").read_bytes() == BASE["src/app.py"]
        assert porcelain(repo) == set()
