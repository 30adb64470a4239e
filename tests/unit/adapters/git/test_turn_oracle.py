"""
Turn isolation under sequences the first audit did not cover, with the git CLI as the oracle.

Each test drives `DulwichWorkspace` as the product does (begin_turn → the agent's edits → the developer's
edits at any moment → end_turn → Approve, Reject or /undo) and reads the result back with git itself:
`status --porcelain=v2`, `ls-files -s --debug` (which shows the index flags), `ls-tree`, `cat-file`, `rev-parse`,
`for-each-ref`, `stash list`, `config`, `write-tree` and `fsck --strict`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.gitoracle import changed_paths, fsck, git, git_bytes, git_may_fail, init_repo, requires_git, worktree_tree
from voicecoder.adapters import DulwichWorkspace
from voicecoder.domain.errors import WorkspaceError
from voicecoder.domain.model import ApprovalChoice, Baseline, CommitMessage, Ownership, TurnId

pytestmark = requires_git

MESSAGE = CommitMessage("Apply changes from Claude", "Prompt: test")


def write(repo: Path, path: str, data: bytes) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def status(repo: Path) -> str:
    """`git status --porcelain=v2` with untracked files one by one: staged and unstaged state per path."""
    return git(repo, "status", "--porcelain=v2", "-uall")


def changes(repo: Path) -> dict[str, str]:
    """{path: XY} of `git status --porcelain=v2` (ordinary and untracked entries; names without spaces)."""
    return {line.split()[-1]: line.split()[1] if line[0] != "?" else "??" for line in status(repo).splitlines()}


def index_listing(repo: Path) -> list[tuple[str, str]]:
    """Each index entry as git lists it (mode, blob, stage and path) with its flags (intent-to-add shows there)."""
    entries: list[tuple[str, str]] = []
    for line in git(repo, "ls-files", "-s", "--debug").splitlines():
        if not line.startswith(" "):
            entries.append((line, ""))
        elif "flags: " in line:
            entries[-1] = (entries[-1][0], line.split("flags: ")[1])
    return entries


def other_state(repo: Path) -> tuple[str, str, str, str]:
    """What a turn must leave as it was: other branches and tags, the stash, the config, the branch HEAD is on."""
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags", "refs/stash")
    return (
        "".join(line + "\n" for line in refs.splitlines() if not line.startswith("refs/heads/main ")),
        git(repo, "stash", "list", "--format=%H %gs"),
        git(repo, "config", "--local", "--list"),
        git(repo, "symbolic-ref", "-q", "HEAD"),
    )


def git_accepts(repo: Path) -> None:
    git(repo, "write-tree")
    fsck(repo)


async def end(ws: DulwichWorkspace, baseline: Baseline) -> Baseline:
    return (await ws.end_turn(baseline)).baseline


async def approve(ws: DulwichWorkspace, baseline: Baseline) -> str:
    diff = await ws.changes_since(baseline)
    return (await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)).sha


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo", {"a.txt": b"one\n", "b.txt": b"bee\n"})


@pytest.fixture(name="ws")
def _ws(repo: Path) -> DulwichWorkspace:
    return DulwichWorkspace(repo, init_if_missing=False)


class TestTheAgentCommitsDuringItsTurn:
    """
    Tool approval may let the agent run `git commit`. Its commits are part of its change: nothing is committed
    without approval, so Reject moves the branch back, and Approve makes the one approved commit of it all.
    """

    async def test_reject_takes_back_the_agents_commits(self, repo: Path, ws: DulwichWorkspace) -> None:
        write(repo, "b.txt", b"bee\nmine\n")
        before = git(repo, "rev-parse", "HEAD").strip()
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\nagent\n")
        git(repo, "commit", "-q", "-m", "agent's own commit", "--", "a.txt")
        write(repo, "c.txt", b"agent\n")
        ended = await ws.end_turn(baseline)
        agent_commit = git(repo, "rev-parse", "HEAD").strip()

        assert [(f.path, f.owner) for f in ended.diff.files] == [("a.txt", Ownership.AGENT), ("c.txt", Ownership.AGENT)]
        assert ended.diff.yours == ""  # the agent's commit is not shown as the developer's edit
        restored = await ws.restore_turn(ended.baseline)

        assert restored.restored == ("a.txt", "c.txt")
        assert restored.commits == (agent_commit[:7],)
        assert git(repo, "rev-parse", "HEAD").strip() == before
        assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
        assert changes(repo) == {"b.txt": ".M"}
        assert (repo / "a.txt").read_bytes() == b"one\n"
        assert (repo / "b.txt").read_bytes() == b"bee\nmine\n"
        assert not (repo / "c.txt").exists()
        assert agent_commit in git(repo, "reflog", "--format=%H", "main")  # nothing is lost for good
        git_accepts(repo)

    async def test_approve_makes_one_commit_of_the_agents_commits_and_edits(
        self, repo: Path, ws: DulwichWorkspace
    ) -> None:
        before = git(repo, "rev-parse", "HEAD").strip()
        write(repo, "b.txt", b"bee\nmine\n")
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\nagent\n")
        git(repo, "commit", "-q", "-m", "agent 1", "--", "a.txt")
        write(repo, "d/e.txt", b"agent\n")
        git(repo, "add", "d/e.txt")
        git(repo, "commit", "-q", "-m", "agent 2")
        write(repo, "c.txt", b"agent\n")
        baseline = await end(ws, baseline)
        agents = git(repo, "rev-list", f"{before}..HEAD").split()  # newest first

        diff = await ws.changes_since(baseline)
        commit = await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)
        sha = commit.sha

        assert commit.squashed == tuple(c[:7] for c in agents)
        assert len(commit.squashed) == 2
        assert git(repo, "rev-parse", "HEAD").strip() == sha
        assert git(repo, "rev-parse", f"{sha}^").strip() == before
        assert git(repo, "show", "--format=%s", "--name-status", sha).split() == [
            "Apply", "changes", "from", "Claude", "M", "a.txt", "A", "c.txt", "A", "d/e.txt",
        ]  # fmt: skip
        assert git_bytes(repo, "show", "HEAD:b.txt") == b"bee\n"  # the developer's edit stays uncommitted
        assert changes(repo) == {"b.txt": ".M"}
        git_accepts(repo)

    async def test_an_extended_change_still_takes_back_the_first_turns_commit(
        self, repo: Path, ws: DulwichWorkspace
    ) -> None:
        before = git(repo, "rev-parse", "HEAD").strip()
        first = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\nagent\n")
        git(repo, "commit", "-q", "-m", "agent", "--", "a.txt")
        first = await end(ws, first)
        second = await ws.begin_turn(TurnId("t2"), extends=first)
        write(repo, "b.txt", b"bee\nagent again\n")
        second = await end(ws, second)

        diff = await ws.changes_since(second)
        restored = await ws.restore_turn(second)

        assert [(f.path, f.owner) for f in diff.files] == [("a.txt", Ownership.AGENT), ("b.txt", Ownership.AGENT)]
        assert restored.restored == ("a.txt", "b.txt")
        assert git(repo, "rev-parse", "HEAD").strip() == before
        assert status(repo) == ""
        git_accepts(repo)

    @pytest.mark.parametrize("action", ["approve", "reject"])
    async def test_a_commit_the_developer_makes_after_the_turn_end_stays(
        self, repo: Path, ws: DulwichWorkspace, action: str
    ) -> None:
        """Only commits made *during* the turn are the agent's: Approve commits onto a HEAD moved since."""
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\nagent\n")
        baseline = await end(ws, baseline)
        write(repo, "b.txt", b"bee\nmine\n")
        git(repo, "commit", "-q", "-m", "mine", "--", "b.txt")
        mine = git(repo, "rev-parse", "HEAD").strip()

        if action == "approve":
            sha = await approve(ws, baseline)
            assert git(repo, "rev-parse", f"{sha}^").strip() == mine
            assert git_bytes(repo, "show", "HEAD:a.txt") == b"one\nagent\n"
        else:
            restored = await ws.restore_turn(baseline)
            assert (restored.restored, restored.commits) == (("a.txt",), ())
            assert git(repo, "rev-parse", "HEAD").strip() == mine
        assert git_bytes(repo, "show", "HEAD:b.txt") == b"bee\nmine\n"
        assert status(repo) == ""
        git_accepts(repo)

    @pytest.mark.parametrize("commits", [False, True], ids=["edits", "commits"])
    async def test_reject_returns_to_the_branch_the_agent_switched_from(
        self, repo: Path, ws: DulwichWorkspace, commits: bool
    ) -> None:
        before = git(repo, "rev-parse", "HEAD").strip()
        write(repo, "b.txt", b"bee\nmine\n")
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, "checkout", "-q", "-b", "feature")
        write(repo, "a.txt", b"one\nagent\n")
        if commits:
            git(repo, "commit", "-q", "-a", "-m", "agent on its branch")
        baseline = await end(ws, baseline)

        restored = await ws.restore_turn(baseline)

        assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
        assert git(repo, "rev-parse", "main", "feature").split() == [before, before]
        assert (restored.branch, restored.left_branch, len(restored.commits)) == ("main", "feature", int(commits))
        assert changes(repo) == {"b.txt": ".M"}
        assert (repo / "b.txt").read_bytes() == b"bee\nmine\n"
        git_accepts(repo)

    @pytest.mark.parametrize("action", ["approve", "reject"])
    async def test_on_a_branch_with_no_commits_yet(self, tmp_path: Path, action: str) -> None:
        """The agent's first commit of a new repository is its change too: Reject leaves the branch unborn."""
        repo = init_repo(tmp_path / "new")
        write(repo, "mine.txt", b"mine\n")
        ws = DulwichWorkspace(repo, init_if_missing=False)
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "app.py", b"agent\n")
        git(repo, "add", "app.py")
        git(repo, "commit", "-q", "-m", "agent's first commit")
        baseline = await end(ws, baseline)

        if action == "approve":
            sha = await approve(ws, baseline)
            assert git(repo, "rev-list", "--parents", "HEAD").split() == [sha]  # one root commit
            assert git(repo, "show", "--format=%s", "--name-only", sha).split() == [*MESSAGE.subject.split(), "app.py"]
        else:
            restored = await ws.restore_turn(baseline)
            assert len(restored.commits) == 1
            assert git_may_fail(repo, "rev-parse", "-q", "--verify", "HEAD") != 0
            assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
            assert not (repo / "app.py").exists()
        assert changes(repo) == {"mine.txt": "??"}
        fsck(repo)


class TestTheIndexMovedAfterTheTurnEnd:
    """
    An index entry that changed after the turn end is the developer's staging and stays, unless it is HEAD's entry:
    then nothing is staged there, and after Approve the index holds the new commit's entry (`git diff --cached`
    empty), not the old one (a staged revert of the agent's lines).
    """

    async def test_a_pull_after_the_turn_end(self, tmp_path: Path) -> None:
        upstream = init_repo(tmp_path / "upstream", {"a.txt": b"".join(b"%d\n" % i for i in range(8))})
        repo = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(upstream), str(repo))
        write(upstream, "a.txt", b"upstream\n" + (upstream / "a.txt").read_bytes())
        git(upstream, "commit", "-q", "-a", "-m", "upstream")
        ws = DulwichWorkspace(repo, init_if_missing=False)
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", (repo / "a.txt").read_bytes() + b"agent\n")
        baseline = await end(ws, baseline)
        git(repo, "pull", "-q", "--no-rebase", "--autostash")
        pulled = git(repo, "rev-parse", "HEAD").strip()

        sha = await approve(ws, baseline)

        assert git(repo, "rev-parse", f"{sha}^").strip() == pulled
        assert git_bytes(repo, "show", "HEAD:a.txt") == b"upstream\n" + b"".join(b"%d\n" % i for i in range(8)) + (
            b"agent\n"
        )
        assert status(repo) == ""
        git_accepts(repo)

    async def test_the_developer_unstages_what_the_agent_staged(self, repo: Path, ws: DulwichWorkspace) -> None:
        baseline = await agent_stages_everything(repo, ws, {"a.txt": b"one\nagent\n"})
        git(repo, "restore", "--staged", "a.txt")

        await approve(ws, baseline)

        assert git_bytes(repo, "show", "HEAD:a.txt") == b"one\nagent\n"
        assert status(repo) == ""
        git_accepts(repo)

    async def test_what_the_developer_stages_after_the_turn_end_stays_staged(
        self, repo: Path, ws: DulwichWorkspace
    ) -> None:
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\nagent\n")
        baseline = await end(ws, baseline)
        write(repo, "a.txt", b"mine\none\nagent\n")
        git(repo, "add", "a.txt")
        diff = await ws.changes_since(baseline)

        await ws.commit_turn(baseline, fingerprint=diff.fingerprint, message=MESSAGE)

        assert git_bytes(repo, "show", "HEAD:a.txt") == b"one\nagent\n"
        assert git_bytes(repo, "show", ":a.txt") == b"mine\none\nagent\n"
        assert changes(repo) == {"a.txt": "M."}
        git_accepts(repo)


class TestRepositoryStateSurvives:
    @pytest.mark.parametrize("action", ["approve", "reject"])
    async def test_refs_stash_branches_and_config_are_left_alone(
        self, repo: Path, ws: DulwichWorkspace, action: str
    ) -> None:
        git(repo, "branch", "feature")
        git(repo, "tag", "-a", "-m", "v1", "v1")
        write(repo, "b.txt", b"bee\nstashed\n")
        git(repo, "stash", "push", "-q", "-m", "my stash")
        git(repo, "config", "core.fileMode", "true")
        git(repo, "config", "user.name", "Dev")
        write(repo, "b.txt", b"bee\nstaged\n")
        git(repo, "add", "b.txt")
        state, index = other_state(repo), index_listing(repo)
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\nagent\n")
        baseline = await end(ws, baseline)

        if action == "approve":
            await approve(ws, baseline)
            assert git(repo, "diff", "--cached", "--name-only") == "b.txt\n"
        else:
            await ws.restore_turn(baseline)
            assert index_listing(repo) == index
        await ws.release_turn(baseline)

        assert other_state(repo) == state
        assert git(repo, "for-each-ref", "refs/voicecoder") == ""
        git(repo, "stash", "show", "-p", "stash@{0}")
        git_accepts(repo)


async def agent_stages_everything(repo: Path, ws: DulwichWorkspace, edits: dict[str, bytes]) -> Baseline:
    """A turn in which the agent writes *edits* and runs `git add -A`; git then writes the index as version 2."""
    baseline = await ws.begin_turn(TurnId("t1"))
    for path, data in edits.items():
        write(repo, path, data)
    git(repo, "add", "-A")
    return await end(ws, baseline)


class TestIntentToAdd:
    """
    `git add -N` marks a file as tracked with nothing staged (`git status`: ` A`). A tree cannot record the mark,
    so a turn that put the entry back as a plain one staged an empty file (`AM`) instead.
    """

    @pytest.fixture(name="intended")
    def _intended(self, repo: Path) -> tuple[str, list[tuple[str, str]]]:
        write(repo, "new.txt", b"mine\n")
        git(repo, "add", "-N", "new.txt")
        return status(repo), index_listing(repo)

    @pytest.mark.parametrize("agent_edits_it", [False, True], ids=["other-file", "the-file"])
    async def test_reject_after_the_agent_staged_everything_keeps_the_mark(
        self, repo: Path, ws: DulwichWorkspace, intended: tuple[str, list[tuple[str, str]]], agent_edits_it: bool
    ) -> None:
        edits = {"a.txt": b"one\nagent\n"} | ({"new.txt": b"mine\nagent\n"} if agent_edits_it else {})
        baseline = await agent_stages_everything(repo, ws, edits)

        await ws.restore_turn(baseline)

        assert (status(repo), index_listing(repo)) == intended
        assert changes(repo) == {"new.txt": ".A"}
        assert (repo / "new.txt").read_bytes() == b"mine\n"
        git_accepts(repo)

    async def test_approve_of_other_files_keeps_the_mark(
        self, repo: Path, ws: DulwichWorkspace, intended: tuple[str, list[tuple[str, str]]]
    ) -> None:
        baseline = await agent_stages_everything(repo, ws, {"a.txt": b"one\nagent\n"})

        sha = await approve(ws, baseline)

        assert git(repo, "show", "--format=", "--name-only", sha) == "a.txt\n"
        assert (status(repo), [e for e in index_listing(repo) if "new.txt" in e[0]]) == (
            intended[0],
            [e for e in intended[1] if "new.txt" in e[0]],
        )
        git_accepts(repo)

    async def test_an_extended_change_keeps_the_mark_of_its_first_baseline(
        self, repo: Path, ws: DulwichWorkspace, intended: tuple[str, list[tuple[str, str]]]
    ) -> None:
        first = await agent_stages_everything(repo, ws, {"a.txt": b"one\nagent\n"})
        second = await ws.begin_turn(TurnId("t2"), extends=first)
        write(repo, "b.txt", b"bee\nagent\n")
        second = await end(ws, second)

        await ws.restore_turn(second)

        assert (status(repo), index_listing(repo)) == intended
        git_accepts(repo)

    async def test_committing_the_file_with_my_edits_drops_the_mark(self, repo: Path, ws: DulwichWorkspace) -> None:
        """An intent-to-add file the agent edits overlaps; committing it makes an ordinary tracked file."""
        write(repo, "new.txt", b"mine\n")
        git(repo, "add", "-N", "new.txt")
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "new.txt", b"mine\nagent\n")
        baseline = await end(ws, baseline)
        diff = await ws.changes_since(baseline)
        assert diff.overlapping == ("new.txt",)

        await ws.commit_turn(
            baseline, fingerprint=diff.fingerprint, message=MESSAGE, choice=ApprovalChoice.WITH_MY_EDITS
        )

        assert git_bytes(repo, "show", "HEAD:new.txt") == b"mine\nagent\n"
        assert status(repo) == ""
        assert [flags for path, flags in index_listing(repo) if "new.txt" in path] == ["0"]
        git_accepts(repo)

    async def test_approving_the_agents_new_file_the_developer_marked_fulfils_the_mark(
        self, repo: Path, ws: DulwichWorkspace
    ) -> None:
        """
        The developer runs `git add -N` on the agent's new file while the change waits. Once Approve commits it, a
        kept mark would stage its deletion against the new HEAD (`git status`: `DA`), and the developer's next
        `git commit` would remove what was just approved.
        """
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "new.txt", b"agent\n")
        baseline = await end(ws, baseline)
        git(repo, "add", "-N", "new.txt")

        sha = await approve(ws, baseline)

        assert git(repo, "show", "--format=", "--name-only", sha) == "new.txt\n"
        assert status(repo) == ""
        assert [flags for path, flags in index_listing(repo) if "new.txt" in path] == ["0"]
        git(repo, "commit", "--allow-empty", "-qm", "the developer's next commit")
        assert git_bytes(repo, "show", "HEAD:new.txt") == b"agent\n"
        git_accepts(repo)


LINE_ENDINGS = {
    "eol=crlf attribute": ({".gitattributes": b"*.txt text eol=crlf\n"}, {}),
    "core.autocrlf=true": ({}, {"core.autocrlf": "true"}),
    "text=auto, CRLF from the agent": ({".gitattributes": b"* text=auto eol=lf\n"}, {}),
    "core.autocrlf=input": ({}, {"core.autocrlf": "input"}),
}


def stored_tree(repo: Path) -> str:
    """The tree `git add -A` stores for the working tree, every file hashed afresh (no stat data to trust)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "add", "-A", env=env)
        return git(repo, "write-tree", env=env).strip()


def checked_out(tmp_path: Path, attributes: dict[str, bytes], config: dict[str, str]) -> Path:
    """A repository whose files git itself checked out with the given end-of-line settings."""
    repo = init_repo(tmp_path / "eol", {**attributes, "a.txt": b"one\ntwo\n", "bin.dat": b"\0\r\n\0\n"})
    for key, value in config.items():
        git(repo, "config", key, value)
    (repo / "a.txt").unlink()
    (repo / "bin.dat").unlink()
    git(repo, "checkout", "--", ".")
    return repo


class TestLineEndings:
    """
    With git's end-of-line conversion, what is committed is what `git add` would store and what Reject and /undo
    write is what a checkout writes; before, CRLF files were committed raw (every line changed, `git status`
    dirty afterwards) and LF written where a checkout puts CRLF.
    """

    @pytest.mark.parametrize("setting", LINE_ENDINGS.values(), ids=list(LINE_ENDINGS))
    async def test_approve_commits_what_git_add_stores(
        self, tmp_path: Path, setting: tuple[dict[str, bytes], dict[str, str]]
    ) -> None:
        repo = checked_out(tmp_path, *setting)
        crlf = (repo / "a.txt").read_bytes().endswith(b"\r\n")
        ws = DulwichWorkspace(repo, init_if_missing=False)
        baseline = await ws.begin_turn(TurnId("t1"))
        newline = b"\r\n" if crlf or "CRLF" in str(setting) else b"\n"
        write(repo, "a.txt", (repo / "a.txt").read_bytes() + b"agent" + newline)
        write(repo, "new.txt", b"agent" + b"\r\n")
        write(repo, "bin.dat", (repo / "bin.dat").read_bytes() + b"agent\r\n")
        ended = await ws.end_turn(baseline)

        assert [line for line in ended.diff.unified.split("\n") if line.startswith(("+", "-"))] == [
            "--- a/a.txt", "+++ b/a.txt", "+agent", "--- /dev/null", "+++ b/new.txt", "+agent",
        ]  # fmt: skip
        await approve(ws, ended.baseline)

        assert status(repo) == ""
        assert git(repo, "rev-parse", "HEAD^{tree}").strip() == stored_tree(repo)
        git_accepts(repo)

    @pytest.mark.parametrize("setting", LINE_ENDINGS.values(), ids=list(LINE_ENDINGS))
    async def test_reject_and_undo_write_what_a_checkout_writes(
        self, tmp_path: Path, setting: tuple[dict[str, bytes], dict[str, str]]
    ) -> None:
        repo = checked_out(tmp_path, *setting)
        checkout = (repo / "a.txt").read_bytes()
        ws = DulwichWorkspace(repo, init_if_missing=False)
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"rewritten\n")
        await ws.restore_turn(await end(ws, baseline))

        assert (repo / "a.txt").read_bytes() == checkout
        assert status(repo) == ""

        baseline = await ws.begin_turn(TurnId("t2"))
        (repo / "a.txt").unlink()
        sha = await approve(ws, await end(ws, baseline))
        await ws.revert_commit(sha, message=CommitMessage("Revert"))

        assert (repo / "a.txt").read_bytes() == checkout
        assert status(repo) == ""
        git_accepts(repo)

    async def test_a_file_committed_with_crlf_stays_as_git_add_would_leave_it(self, tmp_path: Path) -> None:
        """Under text=auto git does not convert a file whose staged version already has CRs; nor do we."""
        repo = init_repo(tmp_path / "legacy", {"a.txt": b"one\r\ntwo\r\n"})
        write(repo, ".gitattributes", b"* text=auto\n")
        git(repo, "add", ".gitattributes")
        git(repo, "commit", "-q", "-m", "attributes")
        ws = DulwichWorkspace(repo, init_if_missing=False)
        baseline = await ws.begin_turn(TurnId("t1"))
        write(repo, "a.txt", b"one\r\ntwo\r\nagent\r\n")
        expected = worktree_tree(repo)  # `git add -A` onto the index as it is: the file changed, so it is hashed

        await approve(ws, await end(ws, baseline))

        assert git_bytes(repo, "show", "HEAD:a.txt") == b"one\r\ntwo\r\nagent\r\n"
        assert git(repo, "rev-parse", "HEAD^{tree}").strip() == expected
        assert status(repo) == ""


class TestAnEmptyFileMarkedIntentToAdd:
    """Marked or staged, an empty file has the same index entry: only the checkpoints' lists of marks tell."""

    @pytest.mark.parametrize("action", ["approve", "reject"])
    async def test_the_agents_git_add_all_is_taken_back(self, repo: Path, ws: DulwichWorkspace, action: str) -> None:
        write(repo, "empty.txt", b"")
        git(repo, "add", "-N", "empty.txt")
        marked = [entry for entry in index_listing(repo) if "empty.txt" in entry[0]]
        baseline = await agent_stages_everything(repo, ws, {"a.txt": b"one\nagent\n"})

        if action == "approve":
            await approve(ws, baseline)
        else:
            await ws.restore_turn(baseline)

        assert [entry for entry in index_listing(repo) if "empty.txt" in entry[0]] == marked
        assert changes(repo) == {"empty.txt": ".A"}
        git_accepts(repo)


def head_state(repo: Path) -> tuple[str, str, list[tuple[str, str]], str, str]:
    """Everything HEAD is: the ref it names (or detached), every branch tip, the index, the files, the status."""
    return (
        git(repo, "symbolic-ref", "-q", "HEAD") if git_may_fail(repo, "symbolic-ref", "-q", "HEAD") == 0 else "",
        git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
        index_listing(repo),
        worktree_tree(repo),
        status(repo),
    )


class TestTheAgentMovesHead:
    """
    The agent resets its branch or switches to another existing branch during its turn (ADR 0048): that move is
    part of its change. Reject puts HEAD, the branch tips, the index and the files back; Approve refuses to guess
    which commit the change belongs on; where HEAD moved again since, Reject refuses and changes nothing.
    """

    @pytest.fixture(name="two")
    def _two(self, repo: Path) -> tuple[str, str]:
        """A second commit on main (a.txt changed), and the branch `other` at a third commit off the first."""
        first = git(repo, "rev-parse", "HEAD").strip()
        git(repo, "switch", "-q", "-c", "other")
        write(repo, "o.txt", b"other\n")
        write(repo, "a.txt", b"one\nother\n")
        git(repo, "commit", "-q", "-a", "-m", "on other")
        git(repo, "add", "o.txt")
        git(repo, "commit", "-q", "-m", "o.txt on other")
        git(repo, "switch", "-q", "main")
        write(repo, "a.txt", b"one\ntwo\n")
        git(repo, "commit", "-q", "-a", "-m", "second")
        return first, git(repo, "rev-parse", "HEAD").strip()

    @pytest.mark.parametrize("mode", ["--soft", "--mixed", "--hard"])
    async def test_reject_undoes_a_reset(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str], mode: str
    ) -> None:
        first, second = two
        write(repo, "b.txt", b"bee\nmine\n")  # the developer's uncommitted edit: --hard destroys it, Reject not
        write(repo, "new.txt", b"mine, staged\n")
        git(repo, "add", "new.txt")
        before = head_state(repo)
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, "reset", "-q", mode, "HEAD~1")
        write(repo, "c.txt", b"agent\n")
        baseline = await end(ws, baseline)

        restored = await ws.restore_turn(baseline)

        assert head_state(repo) == before
        assert (restored.moved_from, restored.back_at) == (f"main at {first[:7]}", f"main at {second[:7]}")
        assert restored.commits == ()  # nothing made during the turn is taken off
        assert (repo / "b.txt").read_bytes() == b"bee\nmine\n"
        assert git(repo, "reflog", "-1", "--format=%H %gs", "main").split() == [
            second,
            "voicecoder:",
            "reject",
            "turn",
            "t1",
        ]
        git_accepts(repo)

    @pytest.mark.parametrize("how", [("switch", "other"), ("checkout", "other"), ("checkout", "--detach", "other")])
    async def test_reject_undoes_a_switch_to_an_existing_branch(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str], how: tuple[str, ...]
    ) -> None:
        _, second = two
        other = git(repo, "rev-parse", "other").strip()
        write(repo, "b.txt", b"bee\nmine\n")  # carried over by the switch, kept by Reject
        before = head_state(repo)
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, *how, "-q")
        write(repo, "o.txt", b"other\nagent\n")
        ended = await ws.end_turn(baseline)

        assert {f.path for f in ended.diff.files} == {"a.txt", "o.txt"}  # seen against main, where the turn began
        restored = await ws.restore_turn(ended.baseline)

        assert head_state(repo) == before
        assert git(repo, "rev-parse", "other").strip() == other  # the branch switched to is left as it was
        detached = "--detach" in how
        assert (restored.moved_from, restored.back_at) == (
            f"{'a detached HEAD' if detached else 'other'} at {other[:7]}",
            f"main at {second[:7]}",
        )
        assert (restored.branch, restored.left_branch) == (("", "") if detached else ("main", "other"))
        assert set(restored.restored) == {"a.txt", "o.txt"}
        git_accepts(repo)

    async def test_reject_after_the_agent_committed_on_the_branch_it_switched_to(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str]
    ) -> None:
        before = head_state(repo)
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, "switch", "-q", "other")
        write(repo, "o.txt", b"other\nagent\n")
        git(repo, "commit", "-q", "-a", "-m", "agent on other")
        agents = git(repo, "rev-parse", "HEAD").strip()
        baseline = await end(ws, baseline)

        await ws.restore_turn(baseline)

        assert head_state(repo)[0] == before[0]
        assert head_state(repo)[2:] == before[2:]
        assert git(repo, "rev-parse", "main", "other").split() == [two[1], agents]  # left where the agent put it

    @pytest.mark.parametrize("ahead", [False, True], ids=["same-commit", "ahead"])
    async def test_a_switch_to_an_existing_branch_at_or_past_the_start(
        self, repo: Path, ws: DulwichWorkspace, ahead: bool
    ) -> None:
        """Its commits were there before the turn: they are not the agent's, and that branch is never moved back."""
        start = git(repo, "rev-parse", "HEAD").strip()
        git(repo, "branch", "next")
        if ahead:
            git(repo, "switch", "-q", "next")
            write(repo, "n.txt", b"the developer's, committed on next\n")
            git(repo, "add", "n.txt")
            git(repo, "commit", "-q", "-m", "next")
            git(repo, "switch", "-q", "main")
        tip = git(repo, "rev-parse", "next").strip()
        write(repo, "b.txt", b"bee\nmine\n")
        before = head_state(repo)
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, "switch", "-q", "next")
        write(repo, "c.txt", b"agent\n")
        baseline = await end(ws, baseline)

        with pytest.raises(WorkspaceError, match=f"from main at {start[:7]} to next at {tip[:7]}"):
            await approve(ws, baseline)
        assert git(repo, "rev-parse", "next").strip() == tip
        restored = await ws.restore_turn(baseline)

        assert head_state(repo) == before
        assert (restored.moved_from, restored.left_branch, restored.commits) == (f"next at {tip[:7]}", "next", ())
        git_accepts(repo)

    @pytest.mark.parametrize("move", [("reset", "-q", "--soft", "HEAD~1"), ("switch", "-q", "other")])
    async def test_approve_refuses_and_changes_nothing(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str], move: tuple[str, ...]
    ) -> None:
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, *move)
        write(repo, "c.txt", b"agent\n")
        baseline = await end(ws, baseline)
        after_turn = head_state(repo)

        with pytest.raises(WorkspaceError, match="Claude moved HEAD during this turn, from main at") as caught:
            await approve(ws, baseline)

        assert "Reject" in str(caught.value)
        assert "nothing was committed" in str(caught.value)
        assert head_state(repo) == after_turn

    async def test_approve_after_the_developer_moved_head_back(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str]
    ) -> None:
        _, second = two
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, "reset", "-q", "--mixed", "HEAD~1")
        write(repo, "c.txt", b"agent\n")
        baseline = await end(ws, baseline)
        git(repo, "reset", "-q", "--soft", second)  # the developer puts the branch back, as the refusal says

        sha = await approve(ws, baseline)

        assert git(repo, "rev-parse", f"{sha}^").strip() == second
        assert changed_paths(repo, sha) == {"c.txt": "A"}
        assert status(repo) == ""
        git_accepts(repo)

    async def test_reject_refuses_where_head_moved_again(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str]
    ) -> None:
        _, second = two
        write(repo, "b.txt", b"bee\nmine\n")
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, "switch", "-q", "other")
        write(repo, "n.txt", b"agent\n")
        baseline = await end(ws, baseline)
        git(repo, "switch", "-q", "-c", "elsewhere")  # the developer moves HEAD too
        moved_again = head_state(repo)

        with pytest.raises(WorkspaceError, match="has moved again since") as caught:
            await ws.restore_turn(baseline)
        assert "nothing was changed" in str(caught.value)
        assert "git switch" in str(caught.value)
        assert head_state(repo) == moved_again

        git(repo, "switch", "-q", "main")  # n.txt (the agent's new file) comes along
        restored = await ws.restore_turn(baseline)

        assert restored.moved_from == ""  # HEAD was back already
        assert git(repo, "rev-parse", "HEAD").strip() == second
        assert changes(repo) == {"b.txt": ".M"}
        assert not (repo / "o.txt").exists()
        assert not (repo / "n.txt").exists()
        git_accepts(repo)

    async def test_reject_refuses_where_the_developers_branch_moved(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str]
    ) -> None:
        baseline = await ws.begin_turn(TurnId("t1"))
        git(repo, "switch", "-q", "other")
        git(repo, "branch", "-f", "main", "HEAD")  # the agent moved main too: main is no longer where it began
        baseline = await end(ws, baseline)
        after_turn = head_state(repo)

        with pytest.raises(WorkspaceError, match="no longer at"):
            await ws.restore_turn(baseline)
        assert head_state(repo) == after_turn

    async def test_an_extended_change_still_goes_back_to_the_first_turns_branch(
        self, repo: Path, ws: DulwichWorkspace, two: tuple[str, str]
    ) -> None:
        other = git(repo, "rev-parse", "other").strip()
        before = head_state(repo)
        first = await ws.begin_turn(TurnId("t1"))
        git(repo, "switch", "-q", "other")
        write(repo, "o.txt", b"other\nagent\n")
        first = await end(ws, first)
        second = await ws.begin_turn(TurnId("t2"), extends=first)
        write(repo, "c.txt", b"agent, second prompt\n")
        second = await end(ws, second)

        restored = await ws.restore_turn(second)

        assert head_state(repo) == before
        assert git(repo, "rev-parse", "other").strip() == other
        assert restored.moved_from == f"other at {other[:7]}"
