"""The git CLI as the test oracle for workspace adapters (tests only; the product never runs git)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from dulwich.index import Index, IndexEntry
from dulwich.objects import Blob
from dulwich.repo import Repo

GIT = shutil.which("git")
requires_git = pytest.mark.skipif(GIT is None, reason="the git CLI is the oracle and is not installed")

_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "oracle",
    "GIT_AUTHOR_EMAIL": "oracle@localhost",
    "GIT_COMMITTER_NAME": "oracle",
    "GIT_COMMITTER_EMAIL": "oracle@localhost",
    "LC_ALL": "C",
}


def git_bytes(repo: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> bytes:
    """Run git in *repo* (with *stdin*) and return its stdout; a non-zero exit fails the test with git's stderr."""
    done = subprocess.run(
        ["git", "-c", "core.quotePath=false", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **_ENV, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"git {' '.join(args)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return done.stdout


def git_may_fail(repo: Path, *args: str) -> int:
    """Run git in *repo* for its effect alone (a command git may refuse); return its exit status."""
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env={**os.environ, **_ENV}, check=False)
    return done.returncode


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return git_bytes(repo, *args, env=env).decode("utf-8", "surrogateescape")


def init_repo(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """A repository made by the git CLI on branch main, with *files* in its first commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, data in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if files:
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial")
    return path


def porcelain(repo: Path) -> set[tuple[str, str]]:
    """`git status --porcelain -uall` as a set of (XY, path)."""
    out = git_bytes(repo, "status", "--porcelain=v1", "-z", "-uall", "--no-renames").split(b"\0")
    entries: set[tuple[str, str]] = set()
    items = iter(out)
    for item in items:
        if not item:
            continue
        code, path = item[:2].decode(), item[3:].decode("utf-8", "surrogateescape")
        if code[0] in "RC":
            next(items)
        entries.add((code, path))
    return entries


def fsck(repo: Path) -> None:
    """`git fsck --strict` must report nothing."""
    git(repo, "fsck", "--strict", "--no-progress", "--no-dangling")


def tree_of(repo: Path, rev: str = "HEAD") -> dict[str, tuple[str, str]]:
    """`git ls-tree -r` of *rev* as {path: (mode, sha)}."""
    out = git_bytes(repo, "ls-tree", "-r", "-z", rev).split(b"\0")
    tree: dict[str, tuple[str, str]] = {}
    for line in out:
        if line:
            meta, path = line.split(b"\t", 1)
            mode, _, sha = meta.decode().split()
            tree[path.decode("utf-8", "surrogateescape")] = (mode, sha)
    return tree


def worktree_tree(repo: Path) -> str:
    """The tree git would commit for the whole working tree (`git add -A` into a throwaway index)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        index = repo / ".git" / "index"
        if index.exists():
            shutil.copyfile(index, env["GIT_INDEX_FILE"])
        git(repo, "add", "-A", env=env)
        return git(repo, "write-tree", env=env).strip()


def changed_paths(repo: Path, rev: str = "HEAD") -> dict[str, str]:
    """`git show --name-status` of *rev* as {path: status letter}."""
    out = git(repo, "show", "--format=", "--name-status", "--no-renames", rev)
    return {line.split("\t", 1)[1]: line.split("\t", 1)[0] for line in out.splitlines() if line}


def numstat(repo: Path, old_tree: str, new_tree: str) -> dict[str, tuple[int, int]]:
    """`git diff --numstat` between two trees; binary files count as (-1, -1)."""
    out = git(repo, "diff", "--numstat", "--no-renames", old_tree, new_tree)
    stats: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        added, deleted, path = line.split("\t", 2)
        stats[path] = (-1, -1) if added == "-" else (int(added), int(deleted))
    return stats


def write_clashing_index(repo: Path, names: list[bytes], data: bytes) -> None:
    """
    Put *names* (all holding *data*) into the index as they are, even where one is a file and another below it.

    git refuses to write such an index, so this uses dulwich's plain index writer: it is what a broken tool
    (or an old voicecoder) could leave behind.
    """
    store = Repo(str(repo))
    try:
        blob = Blob.from_string(data)
        store.object_store.add_object(blob)
        index = Index(store.index_path())
        for name in names:
            index[name] = IndexEntry(
                ctime=(0, 0), mtime=(0, 0), dev=0, ino=0, mode=0o100644, uid=0, gid=0, size=len(data), sha=blob.id
            )
        index.write()
    finally:
        store.close()
