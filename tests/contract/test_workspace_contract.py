from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecoder.adapters.dulwich_workspace import DulwichWorkspace
from voicecoder.domain.ports import Workspace
from voicecoder.testing.contracts.workspace import DiskTree, FakeTree, WorkspaceContract, WorkspaceTree
from voicecoder.testing.fakes import FakeWorkspace


class TestFakeWorkspace(WorkspaceContract):
    @pytest.fixture(name="fake")
    def _fake(self) -> FakeWorkspace:
        return FakeWorkspace()

    @pytest.fixture
    async def workspace(self, fake: FakeWorkspace) -> AsyncIterator[Workspace]:
        """The in-memory workspace every domain test uses."""
        yield fake  # noqa: PT022 - mirrors the async generator of the real adapter

    @pytest.fixture
    def tree(self, fake: FakeWorkspace) -> WorkspaceTree:
        """Edits go straight into the fake's file map."""
        return FakeTree(fake)


class TestDulwichWorkspace(WorkspaceContract):
    @pytest.fixture
    async def workspace(self, tmp_path: Path) -> AsyncIterator[Workspace]:
        """A fresh repository created by the adapter itself (empty initial commit)."""
        workspace = DulwichWorkspace(tmp_path / "repo")
        await workspace.open()
        yield workspace

    @pytest.fixture
    def tree(self, tmp_path: Path) -> WorkspaceTree:
        """The same directory, edited on disk."""
        return DiskTree(tmp_path / "repo")
