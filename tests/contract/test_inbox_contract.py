"""The `Inbox` contract, run against the SQLite inbox (the embedded mode) and the PostgreSQL inbox (the cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecoder.adapters.postgres.inbox import PostgresInbox
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.domain.ports import Inbox
from voicecoder.testing.contracts.inbox import InboxContract
from voicecoder.testing.postgres_server import PostgresServer


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


class TestPostgresInbox(InboxContract):
    """The same contract on a real PostgreSQL (the session's test server, a fresh database per test)."""

    @pytest.fixture
    async def inbox(self, database_url: str) -> AsyncIterator[Inbox]:
        async with PostgresInbox(database_url) as inbox:
            yield inbox

    @pytest.fixture
    def unopened_inbox(self, database_url: str) -> Inbox:
        return PostgresInbox(database_url)

    @pytest.fixture
    def unopenable_inbox(self, postgres_server: PostgresServer) -> Inbox:
        """The right server, a wrong password: authentication fails."""
        return PostgresInbox(postgres_server.url(password="not-the-password"))
