"""The `ProjectChoices` contract, run against the SQLite store `serve` uses and the in-memory fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from voicecoder.adapters.sqlite.project_choices import SqliteProjectChoices
from voicecoder.domain.projects import ProjectChoices
from voicecoder.testing.contracts.project_choices import ProjectChoicesContract
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
