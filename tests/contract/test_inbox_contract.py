"""The `Inbox` contract, run against the SQLite inbox every transport stores its updates in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.domain.ports import Inbox
from voicecoder.testing.contracts.inbox import InboxContract


class TestSqliteInbox(InboxContract):
    @pytest.fixture
    async def inbox(self, tmp_path: Path) -> AsyncIterator[Inbox]:
        """An inbox in a fresh file."""
        async with SqliteInbox(tmp_path / "inbox.sqlite3") as inbox:
            yield inbox

    @pytest.fixture
    def unopened_inbox(self, tmp_path: Path) -> Inbox:
        """Built on a fresh path, never opened."""
        return SqliteInbox(tmp_path / "never-opened.sqlite3")

    @pytest.fixture
    def unopenable_inbox(self, tmp_path: Path) -> Inbox:
        """Its path is a directory: SQLite cannot open it as a database."""
        directory = tmp_path / "a-directory"
        directory.mkdir()
        return SqliteInbox(directory)
