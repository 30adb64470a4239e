from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gitoracle import fsck, git, write_clashing_index
from voicecoder.adapters import DulwichWorkspace
from voicecoder.domain.ports import Workspace
from voicecoder.testing.contracts.workspace import DiskTree, WorkspaceContract, WorkspaceTree
from voicecoder.testing.fakes import FakeWorkspace, FakeWorkspaceTree


class TestFakeWorkspace(WorkspaceContract):
    @pytest.fixture(name="fake")
    def _fake(self) -> FakeWorkspace:
        return FakeWorkspace()

    @pytest.fixture
    def workspace(self, fake: FakeWorkspace) -> Workspace:
        """The in-memory workspace every domain test uses."""
        return fake

    @pytest.fixture
    def tree(self, fake: FakeWorkspace) -> WorkspaceTree:
        """Edits go straight into the fake's maps."""
        return FakeWorkspaceTree(fake)

    @pytest.fixture
    def break_repository(self, fake: FakeWorkspace) -> Callable[[], None]:
        """The fake turns into "not a repository" when told so."""

        def breaks() -> None:
            fake.broken = "/fake/workspace is not a git repository."

        return breaks

    @pytest.fixture
    def break_index(self, fake: FakeWorkspace) -> Callable[[], None]:
        """The fake's index is a plain map: it can hold a file and a directory of one name."""

        def breaks() -> None:
            fake.index["clash"] = (b"file\n", 0o100644)
            fake.index["clash/below.txt"] = (b"below\n", 0o100644)

        return breaks

    @pytest.fixture
    def lock(self, fake: FakeWorkspace) -> Callable[[], None]:
        """The fake refuses writes while `locked`."""

        def locks() -> None:
            fake.locked = True

        return locks


class TestDulwichWorkspace(WorkspaceContract):
    @pytest.fixture(name="root")
    def _root(self, tmp_path: Path) -> Path:
        return tmp_path / "repo"

    @pytest.fixture
    async def workspace(self, root: Path) -> Workspace:
        """A fresh repository created by the adapter itself (empty initial commit), then opened as is."""
        await DulwichWorkspace(root).open()
        return DulwichWorkspace(root, init_if_missing=False)

    @pytest.fixture
    def tree(self, root: Path) -> WorkspaceTree:
        """The same directory, edited on disk; the index through the git CLI."""
        return DiskTree(root)

    @pytest.fixture
    def break_repository(self, root: Path) -> Callable[[], None]:
        """Without .git the directory is no repository (and the adapter may not create one)."""
        return lambda: shutil.rmtree(root / ".git")

    @pytest.fixture
    def break_index(self, root: Path) -> Callable[[], None]:
        """git itself refuses to write such an index, so it is written with dulwich's index writer."""

        def breaks() -> None:
            write_clashing_index(root, [b"clash", b"clash/below.txt"], b"file\n")
            done = subprocess.run(["git", "-C", str(root), "write-tree"], capture_output=True, check=False)
            assert done.returncode != 0, "the index should be one git cannot write a tree from"

        return breaks

    @pytest.fixture
    def lock(self, root: Path) -> Callable[[], None]:
        """Lock files as a running git process holds them: the index, HEAD, every branch and checkpoint ref."""

        def locks() -> None:
            git_dir = root / ".git"
            refs = [git_dir / "index", git_dir / "HEAD", git_dir / "packed-refs"]
            refs += [p for p in (git_dir / "refs").rglob("*") if p.is_file()]
            for ref in refs:
                ref.with_name(ref.name + ".lock").write_bytes(b"")

        return locks

    @pytest.fixture(autouse=True)
    def _git_accepts_the_repository(self, root: Path, request: pytest.FixtureRequest) -> object:
        """After every contract test git must accept the objects and the index the adapter left."""
        yield
        broken = {"test_a_broken_repository_is_not_a_repository", "test_a_broken_index_is_refused_with_its_repair"}
        if request.node.originalname not in broken and (root / ".git").exists():
            for lock in (root / ".git").rglob("*.lock"):
                lock.unlink()
            fsck(root)
            git(root, "write-tree")
