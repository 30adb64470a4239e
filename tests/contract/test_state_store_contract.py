from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import settings

from voicecoder.adapters.sqlite.state_store import SqliteStateStore
from voicecoder.domain.ports import StateStore
from voicecoder.testing.contracts.state_store import OpenStore, StateStoreContract
from voicecoder.testing.fakes import InMemoryStateStore
from voicecoder.testing.state_store_machine import StateStoreMachine


class TestInMemoryStateStore(StateStoreContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        """The fake every domain test uses."""

        @asynccontextmanager
        async def fresh() -> AsyncIterator[StateStore]:
            store = InMemoryStateStore()
            yield store
            await store.close()

        return fresh

    @pytest.fixture
    async def unavailable_store(self) -> AsyncIterator[StateStore]:
        """A closed fake."""
        store = InMemoryStateStore()
        await store.close()
        yield store
        assert (store.sessions, store.changes, store.audit) == ({}, {}, [])


class TestSqliteStateStore(StateStoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> OpenStore:
        """A fresh database file each time, closed afterwards."""
        files = itertools.count()

        @asynccontextmanager
        async def fresh() -> AsyncIterator[StateStore]:
            store = SqliteStateStore(tmp_path / "data" / f"state-{next(files)}.sqlite3")
            try:
                yield store
            finally:
                await store.close()

        return fresh

    @pytest.fixture
    async def unavailable_store(self, tmp_path: Path) -> AsyncIterator[StateStore]:
        """A store whose path is a directory's place taken by a file: it cannot open the database."""
        (tmp_path / "data").write_text("not a directory\n")
        store = SqliteStateStore(tmp_path / "data" / "state.sqlite3")
        yield store
        await store.close()


class SqliteMachine(StateStoreMachine):
    """SqliteStateStore against the reference; a restart closes the file and opens it again."""

    async def open_store(self) -> StateStore:
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "state.sqlite3"
        return SqliteStateStore(self.path)

    async def reopen(self, store: StateStore) -> StateStore:
        assert isinstance(store, SqliteStateStore)
        await store.close()
        return SqliteStateStore(self.path)

    async def close(self, store: StateStore) -> None:
        assert isinstance(store, SqliteStateStore)
        await store.close()
        self.tmp.cleanup()


SqliteMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestSqliteMachine = SqliteMachine.TestCase
