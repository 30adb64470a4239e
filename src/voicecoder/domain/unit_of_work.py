"""
Sessions for the use cases: read one, or change one as a unit of work.

`Sessions.update` is the unit of work of one operation on one chat's session: it takes the state lock, loads the
session once, hands it to the operation and saves it once when the operation returns (nothing is saved when it
raises, or when it changed nothing). Every writer of a session goes through it, so two operations never interleave
a load and a save (a tool rule allowed during a turn is not lost when the turn settles). A lock rather than an
optimistic version check: every writer is in this process (one `VoiceCoder` per workspace) and the store port has
no compare-and-set. `Sessions.read` is for an operation that only looks; it takes no lock.

Hold the unit of work only for state and for the git step that must be atomic with it (a turn's begin, a
commit, a restore): never across an agent run or a message to the chat, and never nest two (the lock is not
reentrant).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from voicecoder.domain.model import ChatId, Session
from voicecoder.domain.ports import StateStore

__all__ = ["Sessions"]


class Sessions:
    """The chats' sessions in a `StateStore`, read or changed one operation at a time."""

    def __init__(self, store: StateStore, *, compaction_threshold: int) -> None:
        self._store = store
        self._threshold = compaction_threshold
        self._lock = anyio.Lock()

    async def read(self, chat: ChatId) -> Session:
        """
        The session of *chat* as stored now (a new one if it has none); changing it changes nothing stored.

        Raises:
            StateStoreError: The store cannot be read.
        """
        session = await self._store.load_session(chat)
        if session is None:
            session = Session(chat_id=chat, compaction_threshold=self._threshold)
        return session

    @asynccontextmanager
    async def update(self, chat: ChatId) -> AsyncIterator[Session]:
        """
        The session of *chat* for one operation: loaded once under the lock, saved once if the operation succeeds.

        Raises:
            StateStoreError: The store cannot be read or written (what the operation changed is not saved).
        """
        async with self._lock:
            session = await self.read(chat)
            before = copy.deepcopy(session)
            yield session
            if session != before:
                await self._store.save_session(session)
