from __future__ import annotations

from pathlib import Path

import pytest

from voicecoder.adapters.git import DulwichWorkspace
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
        """Edits go straight into the fake's file map."""
        return FakeWorkspaceTree(fake)


class TestDulwichWorkspace(WorkspaceContract):
    @pytest.fixture
    async def workspace(self, tmp_path: Path) -> Workspace:
        """A fresh repository created by the adapter itself (empty initial commit)."""
        workspace = DulwichWorkspace(tmp_path / "repo")
        await workspace.open()
        return workspace

    @pytest.fixture
    def tree(self, tmp_path: Path) -> WorkspaceTree:
        """The same directory, edited on disk."""
        return DiskTree(tmp_path / "repo")
