"""
`SqliteProjectChoices`: each chat's (or forum topic's) project, and the prompts that wait for it; one SQLite file.

Every update of a bot with projects asks for its chat's choice, so the choices are read once and kept in memory;
a choice or a held prompt is written through (``synchronous=FULL``) before the call returns, so a restart keeps it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio.to_thread

from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.model import ChatId
from voicecoder.domain.projects import HELD_COLUMNS, HeldPrompt, held_of, held_row

__all__ = ["SqliteProjectChoices"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS project_choices (
    chat_id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,  -- 0: the chat itself (no forum topic)
    project TEXT NOT NULL,
    chosen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (chat_id, thread_id)
);
CREATE TABLE IF NOT EXISTS held_prompts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    audio BLOB,
    mime_type TEXT,
    filename TEXT,
    duration_s REAL,
    language TEXT,
    reply_to INTEGER,
    user_name TEXT
);
CREATE INDEX IF NOT EXISTS held_prompts_chat ON held_prompts (chat_id, thread_id, id);
"""


def _key(chat: ChatId) -> tuple[int, int]:
    return chat.value, chat.thread or 0


class SqliteProjectChoices:
    """The `ProjectChoices` port on SQLite. Raises `StateStoreError` as the port documents."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._cache: dict[tuple[int, int], str] | None = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
                rows = db.execute("SELECT chat_id, thread_id, project FROM project_choices").fetchall()
            except (OSError, sqlite3.Error) as exc:
                raise StateStoreError(
                    f"The project choices in {self._path} cannot be opened ({exc}). Check DATA_DIR's permissions "
                    "and free space."
                ) from exc
            self._cache = {(int(c), int(t)): str(p) for c, t, p in rows}
            self._db = db
        return self._db

    def _chosen(self, key: tuple[int, int]) -> str | None:
        with self._lock:
            self._open()
            assert self._cache is not None
            return self._cache.get(key)

    def _choose(self, key: tuple[int, int], project: str) -> None:
        with self._lock:
            db = self._open()
            try:
                db.execute(
                    "INSERT INTO project_choices (chat_id, thread_id, project) VALUES (?, ?, ?) "
                    "ON CONFLICT (chat_id, thread_id) DO UPDATE SET project = excluded.project, "
                    "chosen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                    (*key, project),
                )
            except sqlite3.Error as exc:
                raise StateStoreError(f"The project choice could not be saved in {self._path} ({exc}).") from exc
            assert self._cache is not None
            self._cache[key] = project

    def _query(self, statement: str, args: tuple[object, ...], what: str) -> sqlite3.Cursor:
        with self._lock:
            db = self._open()
            try:
                return db.execute(statement, args)
            except sqlite3.Error as exc:
                raise StateStoreError(f"{what} failed in {self._path} ({exc}).") from exc

    def _hold(self, key: tuple[int, int], prompt: HeldPrompt) -> int:
        with self._lock:
            db = self._open()
            try:
                db.execute(
                    f"INSERT INTO held_prompts (chat_id, thread_id, {HELD_COLUMNS}) VALUES (?, ?{', ?' * 10})",  # noqa: S608 - fixed columns
                    (*key, *held_row(prompt)),
                )
                (count,) = db.execute(
                    "SELECT count(*) FROM held_prompts WHERE chat_id = ? AND thread_id = ?", key
                ).fetchone()
            except sqlite3.Error as exc:
                raise StateStoreError(f"The held message could not be saved in {self._path} ({exc}).") from exc
            return int(count)

    def _held(self, key: tuple[int, int]) -> int:
        (count,) = self._query(
            "SELECT count(*) FROM held_prompts WHERE chat_id = ? AND thread_id = ?", key, "Reading held messages"
        ).fetchone()
        return int(count)

    def _pop_held(self, key: tuple[int, int]) -> HeldPrompt | None:
        with self._lock:
            db = self._open()
            try:
                row = db.execute(
                    f"SELECT id, {HELD_COLUMNS} FROM held_prompts WHERE chat_id = ? AND thread_id = ? "  # noqa: S608
                    "ORDER BY id LIMIT 1",
                    key,
                ).fetchone()
                if row is None:
                    return None
                db.execute("DELETE FROM held_prompts WHERE id = ?", (row[0],))
            except sqlite3.Error as exc:
                raise StateStoreError(f"A held message could not be taken from {self._path} ({exc}).") from exc
            return held_of(tuple(row[1:]))

    async def hold(self, chat: ChatId, prompt: HeldPrompt, /) -> int:
        """
        Keep *prompt* for *chat*'s choice; on disk when this returns. Returns how many wait.

        Raises:
            StateStoreError: It could not be written.
        """
        return await anyio.to_thread.run_sync(self._hold, _key(chat), prompt)

    async def held(self, chat: ChatId, /) -> int:
        """
        How many prompts wait for *chat*'s choice.

        Raises:
            StateStoreError: They could not be read.
        """
        return await anyio.to_thread.run_sync(self._held, _key(chat))

    async def pop_held(self, chat: ChatId, /) -> HeldPrompt | None:
        """
        The oldest prompt waiting for *chat*'s choice, removed (None: none waits).

        Raises:
            StateStoreError: It could not be read or removed.
        """
        return await anyio.to_thread.run_sync(self._pop_held, _key(chat))

    async def chosen(self, chat: ChatId, /) -> str | None:
        """
        The project *chat* chose, or None.

        Raises:
            StateStoreError: The choices file cannot be opened.
        """
        key = _key(chat)
        if self._cache is not None:
            return self._cache.get(key)
        return await anyio.to_thread.run_sync(self._chosen, key)

    async def choose(self, chat: ChatId, project: str, /) -> None:
        """
        Remember *project* for *chat*; on disk when this returns.

        Raises:
            StateStoreError: The choice could not be written.
        """
        await anyio.to_thread.run_sync(self._choose, _key(chat), project)

    async def aclose(self) -> None:
        """Close the file. Raises nothing."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
                self._cache = None
