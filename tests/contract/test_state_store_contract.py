from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecoder.adapters.sqlite_state_store import SqliteStateStore
from voicecoder.domain.ports import StateStore
from voicecoder.testing.contracts.state_store import StateStoreContract
from voicecoder.testing.fakes import InMemoryStateStore


class TestInMemoryStateStore(StateStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[StateStore]:
        """The fake every domain test uses."""
        yield InMemoryStateStore()  # noqa: PT022 - the contract's fixture is an async generator


class TestSqliteStateStore(StateStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[StateStore]:
        """A fresh database file per test, closed afterwards."""
        store = SqliteStateStore(tmp_path / "data" / "state.sqlite3")
        yield store
        await store.close()
