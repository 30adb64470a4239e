"""
`PostgresProjectChoices`: the `ProjectChoices` port of a cluster worker with PROJECTS (ADR 0028).

Every worker must see a chat's choice (the claim routes by it) and the prompts that wait for it (the lobby's owner
holds them, the chosen workspace's owner runs them, maybe on another host, maybe after a failover), so both live
in PostgreSQL: ``voicecoder_project_routes`` and ``voicecoder_held_prompts``.

Routing happens at claim time, so while a worker runs an update it answers `chosen` with the project of the
workspace the update was claimed for (`IN_HAND`), not with a route another worker may have written since: the
update runs where it was routed. In the lobby that is None (no project yet: the router asks).

A workspace's owner takes only its own user's held prompts (all of them for a shared project): another user's
prompt held in the same group chat waits for that user's workspace, whose tree may be on another host.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import anyio.to_thread
import attrs
import psycopg

from voicecoder.adapters.postgres.leases import FENCE, Lease, LeaseStore, OwnershipLostError
from voicecoder.domain.model import ChatId
from voicecoder.domain.projects import HELD_COLUMNS, HeldPrompt, held_of, held_row

__all__ = ["IN_HAND", "InHand", "PostgresProjectChoices"]


@attrs.frozen
class InHand:
    """The workspace whose update this task runs: its lease, its project (None: the lobby) and user (None: shared)."""

    lease: Lease
    project: str | None
    user: int | None


IN_HAND: ContextVar[InHand | None] = ContextVar("voicecoder_workspace_in_hand", default=None)
"""Set by the worker for the tasks of one ownership period (their children inherit it)."""


def _key(chat: ChatId) -> tuple[int, int]:
    return chat.value, chat.thread or 0


def _fence(conn: psycopg.Connection[Any], hand: InHand | None, what: str) -> None:
    """A write made while running a workspace's update needs that workspace's live lease (see `LeaseStore`)."""
    if hand is not None and conn.execute(FENCE, hand.lease.params()).fetchone() is None:
        raise OwnershipLostError(f"Workspace {hand.lease.workspace} is no longer owned: {what} refused.")


def _mine(hand: InHand | None) -> tuple[str, tuple[object, ...]]:
    """The held prompts this task may count and take: its user's in a personal workspace, else all of the chat's."""
    if hand is not None and hand.project is not None and hand.user is not None:
        return " AND user_id = %s", (hand.user,)
    return "", ()


class PostgresProjectChoices:
    """The `ProjectChoices` port on PostgreSQL (the worker's lease store's pool). Raises `StateStoreError`."""

    def __init__(self, store: LeaseStore) -> None:
        self._store = store

    async def aclose(self) -> None:
        """Nothing to close: the pool is the lease store's."""

    async def chosen(self, chat: ChatId, /) -> str | None:
        """
        The project of the workspace this update was claimed for (see the module docstring), else the route's.

        Raises:
            StateStoreError: The route could not be read.
        """
        hand = IN_HAND.get()
        if hand is not None:
            return hand.project
        row = await anyio.to_thread.run_sync(
            self._store.run,
            "read a chat's project",
            lambda conn: conn.execute(
                "SELECT project FROM voicecoder_project_routes WHERE chat = %s AND thread = %s", _key(chat)
            ).fetchone(),
        )
        return None if row is None else str(row[0])

    async def choose(self, chat: ChatId, project: str, /) -> None:
        """
        Route *chat* to *project* for every worker from now on (committed when this returns).

        Raises:
            StateStoreError: It could not be written (`OwnershipLostError`: this worker lost the workspace).
        """
        hand = IN_HAND.get()

        def write(conn: psycopg.Connection[Any]) -> None:
            _fence(conn, hand, "choosing a project")
            conn.execute(
                "INSERT INTO voicecoder_project_routes (chat, thread, project) VALUES (%s, %s, %s) "
                "ON CONFLICT (chat, thread) DO UPDATE SET project = excluded.project, chosen_at = now()",
                (*_key(chat), project),
            )

        await anyio.to_thread.run_sync(self._store.run, "save a chat's project", write)

    async def hold(self, chat: ChatId, prompt: HeldPrompt, /) -> int:
        """
        Keep *prompt* until *chat* chooses (committed when this returns); how many of the chat's wait now.

        Raises:
            StateStoreError: It could not be written.
        """
        hand = IN_HAND.get()

        def write(conn: psycopg.Connection[Any]) -> int:
            _fence(conn, hand, "holding a message")
            conn.execute(
                f"INSERT INTO voicecoder_held_prompts (chat, thread, {HELD_COLUMNS}) "  # noqa: S608 - fixed columns
                f"VALUES (%s, %s{', %s' * 10})",
                (*_key(chat), *held_row(prompt)),
            )
            row = conn.execute(
                "SELECT count(*) FROM voicecoder_held_prompts WHERE chat = %s AND thread = %s", _key(chat)
            ).fetchone()
            return int(row[0]) if row else 1

        count: int = await anyio.to_thread.run_sync(self._store.run, "hold a message", write)
        return count

    async def held(self, chat: ChatId, /) -> int:
        """
        How many of *chat*'s held prompts this task may run (see the module docstring).

        Raises:
            StateStoreError: They could not be counted.
        """
        extra, args = _mine(IN_HAND.get())
        row = await anyio.to_thread.run_sync(
            self._store.run,
            "count held messages",
            lambda conn: conn.execute(
                "SELECT count(*) FROM voicecoder_held_prompts WHERE chat = %s AND thread = %s" + extra,  # noqa: S608
                (*_key(chat), *args),
            ).fetchone(),
        )
        return int(row[0]) if row else 0

    async def pop_held(self, chat: ChatId, /) -> HeldPrompt | None:
        """
        The oldest held prompt of *chat* this task may run, no longer held once this returns (fenced).

        Raises:
            StateStoreError: It could not be taken (`OwnershipLostError`: this worker lost the workspace).
        """
        hand = IN_HAND.get()
        extra, args = _mine(hand)

        def take(conn: psycopg.Connection[Any]) -> HeldPrompt | None:
            _fence(conn, hand, "taking a held message")
            row = conn.execute(
                f"DELETE FROM voicecoder_held_prompts WHERE id = (SELECT id FROM voicecoder_held_prompts "  # noqa: S608
                f"WHERE chat = %s AND thread = %s{extra} ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                f"RETURNING {HELD_COLUMNS}",
                (*_key(chat), *args),
            ).fetchone()
            return None if row is None else held_of(tuple(row))

        held: HeldPrompt | None = await anyio.to_thread.run_sync(self._store.run, "take a held message", take)
        return held
