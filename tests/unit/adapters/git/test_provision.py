"""A project's workspace is a clone made on first use: local paths need no network, failures leave nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitoracle import git, init_repo, requires_git
from tests.loopback import free_port
from voicecoder.adapters.git.provision import ProvisionError, clone_workspace

pytestmark = requires_git


async def test_a_local_project_is_cloned_with_its_commits_not_its_uncommitted_edits(tmp_path: Path) -> None:
    source = init_repo(tmp_path / "src", {"app.py": b"print(1)\n"})
    (source / "app.py").write_text("print('uncommitted')\n")
    git(source, "checkout", "-q", "-b", "develop")
    (source / "dev.txt").write_text("on develop\n")
    git(source, "add", "dev.txt")
    git(source, "commit", "-q", "-m", "develop work")
    git(source, "checkout", "-q", "main")

    tree = await clone_workspace(str(source), tmp_path / "trees" / "api" / "user-1", branch="develop")

    assert git(tree, "status", "--porcelain") == ""
    assert git(tree, "rev-parse", "--abbrev-ref", "HEAD").strip() == "develop"
    assert (tree / "dev.txt").read_text() == "on develop\n"
    assert (tree / "app.py").read_text() == "print(1)\n"
    assert git(source, "status", "--porcelain") == " M app.py\n"  # the source is left as it was
    # A second open finds the tree and clones nothing (its own edits survive).
    (tree / "mine.txt").write_text("mine\n")
    assert await clone_workspace(str(source), tree) == tree
    assert (tree / "mine.txt").exists()


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{tmp}/not-a-repo", "is not a git repository"),
        ("http://127.0.0.1:{port}/nobody/home.git", "cannot clone http://127.0.0.1"),
        ("http://deploy:s3cr3t-token@127.0.0.1:{port}/team/web.git", "cannot clone http://127.0.0.1"),
    ],
)
async def test_a_failed_clone_says_what_to_fix_and_leaves_nothing(tmp_path: Path, source: str, says: str) -> None:
    (tmp_path / "not-a-repo").mkdir()
    url = source.format(tmp=tmp_path, port=free_port())
    target = tmp_path / "trees" / "web" / "user-1"

    with pytest.raises(ProvisionError) as raised:
        await clone_workspace(url, target)

    assert says in str(raised.value)
    assert "s3cr3t-token" not in str(raised.value)  # a credential in the remote's URL is never shown
    assert raised.value.__cause__ is None
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []  # no staging directory left
