"""
The `ProjectChoices` contract, run against the SQLite store `serve` uses, the PostgreSQL one of a cluster worker
(outside any ownership period, as a fresh worker process sees it) and the in-memory fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from voicecoder.adapters.postgres.leases import LeaseStore
from voicecoder.adapters.postgres.project_choices import PostgresProjectChoices
from voicecoder.adapters.sqlite.project_choices import SqliteProjectChoices
from voicecoder.domain.projects import ProjectChoices
from voicecoder.testing.contracts.project_choices import ProjectChoicesContract
from voicecoder.testing.postgres_server import PostgresServer
from voicecoder.testing.projects import InMemoryProjectChoices


class TestSqliteProjectChoices(ProjectChoicesContract):
    @pytest.fixture
    async def choices(self, tmp_path: Path) -> AsyncIterator[ProjectChoices]:
        store = SqliteProjectChoices(tmp_path / "choices.sqlite3")
        yield store
        await store.aclose()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Callable[[], Awaitable[ProjectChoices]]:
        async def fresh() -> ProjectChoices:
            return SqliteProjectChoices(tmp_path / "choices.sqlite3")

        return fresh

    @pytest.fixture
    def broken(self, tmp_path: Path) -> ProjectChoices:
        """Its path is a directory: SQLite cannot open it as a database."""
        directory = tmp_path / "a-directory"
        directory.mkdir()
        return SqliteProjectChoices(directory)


def _lease_store(url: str) -> LeaseStore:
    store = LeaseStore(url, owner="h1/contract", host="h1", ttl_s=3.0)
    store.open()
    return store


class TestPostgresProjectChoices(ProjectChoicesContract):
    @pytest.fixture
    def stores(self) -> Iterator[list[LeaseStore]]:
        opened: list[LeaseStore] = []
        yield opened
        for store in opened:
            store.close()

    @pytest.fixture
    def choices(self, database_url: str, stores: list[LeaseStore]) -> ProjectChoices:
        stores.append(store := _lease_store(database_url))
        return PostgresProjectChoices(store)

    @pytest.fixture
    def reopen(self, database_url: str, stores: list[LeaseStore]) -> Callable[[], Awaitable[ProjectChoices]]:
        """Another worker process: a pool of its own on the same database."""

        async def fresh() -> ProjectChoices:
            stores.append(store := _lease_store(database_url))
            return PostgresProjectChoices(store)

        return fresh

    @pytest.fixture
    def broken(self, postgres_server: PostgresServer) -> ProjectChoices:
        """A store that could not be opened (a wrong password): every call fails."""
        url = postgres_server.url(password="not-the-password")
        return PostgresProjectChoices(LeaseStore(url, owner="h1/broken", host="h1", ttl_s=3.0))


class TestInMemoryProjectChoices(ProjectChoicesContract):
    @pytest.fixture
    def choices(self) -> ProjectChoices:
        return InMemoryProjectChoices()

    @pytest.fixture
    def reopen(self, choices: ProjectChoices) -> Callable[[], Awaitable[ProjectChoices]]:
        async def same() -> ProjectChoices:
            return choices

        return same

    @pytest.fixture
    def broken(self) -> ProjectChoices:
        return InMemoryProjectChoices(fail_next=5)
