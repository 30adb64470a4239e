"""The tree patcher against git: the trees we write are the trees `git write-tree` writes for the same entries."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.objects import Blob
from dulwich.repo import Repo

from tests.gitoracle import fsck, git, init_repo, requires_git, tree_of
from voicecoder.adapters.git.trees import Entry, Flat, TreeStore, df_conflicts, with_git_df_rules

pytestmark = requires_git


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Iterator[Repo]:
    path = init_repo(tmp_path / "repo", {"a.txt": b"a\n", "src/b.py": b"b\n", "src/deep/c.py": b"c\n", "x": b"x\n"})
    repo = Repo(str(path))
    yield repo
    repo.close()


def root(repo: Repo) -> Path:
    return Path(repo.path)


def git_tree(repo: Repo, flat: Flat) -> str:
    """The tree git writes for exactly *flat* (a fresh index, `update-index --index-info`, `write-tree`)."""
    env = {"GIT_INDEX_FILE": str(root(repo) / ".git" / "oracle-index")}
    info = "".join(f"{mode:o} {sha.decode()}\t{path.decode()}\n" for path, (mode, sha) in flat.items())
    subprocess.run(
        ["git", "-C", str(root(repo)), "update-index", "--add", "--index-info"],
        input=info.encode(),
        env={**env, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return git(root(repo), "write-tree", env=env).strip()


def blob(repo: Repo, data: bytes) -> bytes:
    obj = Blob.from_string(data)
    repo.object_store.add_object(obj)
    return bytes(obj.id)


def head_tree(repo: Repo) -> bytes:
    return bytes(repo[repo.head()].tree)  # type: ignore[attr-defined]


class TestTreeStore:
    def test_flatten_is_ls_tree(self, repo: Repo) -> None:
        """A flattened tree lists every file with git's mode and sha."""
        flat = TreeStore().flatten(repo.object_store, head_tree(repo))

        assert {p.decode(): (f"{m:o}", s.decode()) for p, (m, s) in flat.items()} == tree_of(root(repo))

    def test_patched_trees_are_gits_trees(self, repo: Repo) -> None:
        """Adding, changing, deleting (and emptying a directory) gives the tree git writes for the result."""
        trees = TreeStore()
        base_flat = trees.flatten(repo.object_store, head_tree(repo))
        changes: dict[bytes, Entry | None] = {
            b"new/deeper/n.txt": (0o100644, blob(repo, b"n\n")),
            b"a.txt": (0o100755, blob(repo, b"A\n")),
            b"src/deep/c.py": None,
            b"link": (0o120000, blob(repo, b"a.txt")),
        }

        sha, flat = trees.patch(repo.object_store, head_tree(repo), changes, base_flat=base_flat)

        assert sha.decode() == git_tree(repo, flat)
        assert b"src/deep/c.py" not in flat
        assert flat == trees.flatten(repo.object_store, sha)

    def test_a_file_replaces_a_directory_and_back_as_git_does(self, repo: Repo) -> None:
        """Setting file `src` drops src/…; setting `x/y` drops file `x` (the rules of `git add -A`)."""
        trees = TreeStore()
        base_flat = trees.flatten(repo.object_store, head_tree(repo))
        changes: dict[bytes, Entry | None] = {
            b"src": (0o100644, blob(repo, b"now a file\n")),
            b"x/y.txt": (0o100644, blob(repo, b"below\n")),
        }

        sha, flat = trees.patch(repo.object_store, head_tree(repo), changes, base_flat=base_flat)

        assert sorted(flat) == [b"a.txt", b"src", b"x/y.txt"]
        assert sha.decode() == git_tree(repo, flat)
        assert df_conflicts(flat) == []
        commit = git(root(repo), "commit-tree", sha.decode(), "-m", "check").strip()
        git(root(repo), "update-ref", "refs/heads/check", commit)
        fsck(root(repo))

    def test_unchanged_trees_are_reused(self, repo: Repo) -> None:
        """No changes: the very same tree, nothing written."""
        trees = TreeStore()
        base_flat = trees.flatten(repo.object_store, head_tree(repo))

        sha, flat = trees.patch(repo.object_store, head_tree(repo), {}, base_flat=base_flat)

        assert (sha, flat) == (head_tree(repo), base_flat)


class TestDirectoryRules:
    def test_df_conflicts_names_each_clash(self) -> None:
        """A name listed as a file and as a directory is reported with an entry below it."""
        assert df_conflicts([b"x", b"x/y", b"a/b", b"a/c"]) == [(b"x", b"x/y")]

    def test_with_git_df_rules_adds_the_removals(self) -> None:
        """The removals are added; what the changes set is never removed."""
        base = {b"x": (0o100644, b"1" * 40), b"d/e": (0o100644, b"2" * 40), b"d/f/g": (0o100644, b"3" * 40)}

        full = with_git_df_rules(base, {b"x/y": (0o100644, b"4" * 40), b"d": (0o100644, b"5" * 40)})

        assert full == {
            b"x/y": (0o100644, b"4" * 40),
            b"d": (0o100644, b"5" * 40),
            b"x": None,
            b"d/e": None,
            b"d/f/g": None,
        }
