"""
`SqliteStateStore`: sessions, changes and the audit trail in one SQLite file.

One connection, opened on first use (or by `open()`), used only in worker threads and only while holding a
lock, so the event loop never blocks on disk I/O and SQLite never sees two statements at once.

Layout (see `MIGRATIONS`; `PRAGMA user_version` is the schema version):

* ``sessions``: one row per chat; ``pending_change_id`` references the session's current change; ``tool_rules``
  the rules the chat allowed "for this session" (JSON).
* ``changes``: every change a session ever referenced, keyed by ``(chat_id, id)``. Decided rows (approved,
  auto-approved, rejected, superseded) are the approval history that `recent_changes` reads; ``reverted_by`` names
  the commit /undo reverted an approved one with (`approved_changes` leaves those out).
* ``audit``: append-only, ordered by an autoincrement id.
* ``owner_fence``: in a cluster worker's file, the workspace and lease epoch of its newest owner (ADR 0030).

A cluster worker's store is *fenced* (`OwnerFence`): a new owner raises the file's fence to its lease epoch
(`take_over`) before it reads or writes anything, and every write transaction first checks, under SQLite's write
lock, that the fence still names the epoch the writing task works for; a stale owner's write is rolled back and
raises `OwnershipLostError`. SQLite serialises writers, so once the raise commits no stale write can land. The
single-process mode has no fence and no extra statement.

The migrations are in `voicecoder.adapters.sqlite.state_schema`; how values become rows (datetimes keep their
zone) is in `voicecoder.adapters.sqlite.state_rows`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Protocol, TypeVar
from zoneinfo import ZoneInfoNotFoundError

import anyio.to_thread

from voicecoder.adapters.sqlite.state_rows import (
    _AUDIT_COLUMNS,
    _INSERT_AUDIT,
    _SELECT_CHANGE,
    _UPSERT_CHANGE,
    _UPSERT_SESSION,
    _audit_from_row,
    _audit_row,
    _change_from_row,
    _change_row,
    _opt_decode,
    _opt_dt,
    _prompt_from_json,
    _prompt_json,
    _utc_sort_key,
    decode_datetime,
    encode_datetime,
)
from voicecoder.adapters.sqlite.state_schema import MIGRATIONS, SCHEMA_VERSION, Migration
from voicecoder.domain.errors import OwnershipLostError, StateStoreError
from voicecoder.domain.model import (
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeStatus,
    ChatId,
    Diagnostic,
    PendingChange,
    Session,
    TurnId,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "OwnerFence",
    "SqliteStateStore",
    "decode_datetime",
    "encode_datetime",
]

log = logging.getLogger(__name__)

_R = TypeVar("_R")

#: How long a statement waits for another process (e.g. `voicecoder doctor`) holding the write lock.
BUSY_TIMEOUT_MS: Final = 5_000


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (the connection is in autocommit mode)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class OwnerFence(Protocol):
    """Which ownership period (workspace, lease epoch) a write to a cluster worker's store is made for."""

    def held(self) -> tuple[str, int] | None:
        """The (workspace, epoch) the calling task works for, or None outside any ownership period (event loop)."""

    def refused(self) -> None:
        """A write of the calling task was refused: the file is fenced at another epoch (event loop)."""


def _owner(at: tuple[str, int] | None) -> str:
    return "no owner" if at is None else f"workspace {at[0]} epoch {at[1]}"


def _fenced_at(db: sqlite3.Connection) -> tuple[str, int] | None:
    """The (workspace, epoch) the file is fenced at, or None before any cluster owner took it."""
    row = db.execute("SELECT workspace, epoch FROM owner_fence WHERE id = 1").fetchone()
    return None if row is None else (str(row["workspace"]), int(row["epoch"]))


# --- the adapter ------------------------------------------------------------------------


class SqliteStateStore:
    """
    The `StateStore` port on a SQLite file (WAL, ``synchronous=FULL``).

    Construct it anywhere (nothing happens until the first call or `open()`); call `close()` at shutdown.
    Every failure is a `StateStoreError` naming the file. A cancelled call still finishes its transaction in
    the worker thread, so cancellation never leaves half a save behind. With *fence* (a cluster worker) every
    write is fenced by the lease epoch (see the module docstring) and raises `OwnershipLostError` when stale.
    """

    def __init__(self, path: Path | str, *, fence: OwnerFence | None = None) -> None:
        self._path = Path(path)
        self._fence = fence
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self._path)!r})"

    # --- lifecycle

    async def open(self) -> None:
        """Open the file and bring its schema up to date now, rather than on first use."""
        await self._run(lambda _: None, "open")

    async def close(self) -> None:
        """Close the connection; later calls raise `StateStoreError`. Closing twice is fine."""
        await anyio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StateStoreError(f"The state store at {self._path} is closed.")
        if self._db is not None:
            return self._db
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("state store %s runs in journal mode %s, not WAL", self._path, mode)
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        if self._schema_version(db) == SCHEMA_VERSION:
            return  # the usual start: no write lock taken
        # Several processes may open one new file at once (a host's workers starting together): the version is
        # read again under the write lock, so exactly one of them migrates and the others find it done.
        with _transaction(db):
            version = self._schema_version(db)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target - 1](db)
                db.execute(f"PRAGMA user_version = {target}")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            log.info(
                "state store %s migrated to schema version %d (%s)", self._path, target, MIGRATIONS[target - 1].__name__
            )

    def _schema_version(self, db: sqlite3.Connection) -> int:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"The state store at {self._path} has schema version {version}, but this voicecoder only knows "
                f"versions up to {SCHEMA_VERSION}: it was written by a newer voicecoder. Upgrade voicecoder, "
                "or point it at another data dir."
            )
        return version

    async def _run(self, operation: Callable[[sqlite3.Connection], _R], action: str) -> _R:
        return await anyio.to_thread.run_sync(self._locked, operation, action)

    async def _write(self, operation: Callable[[sqlite3.Connection], None]) -> None:
        """*operation* in one write transaction; fenced by the caller's lease epoch when this store has a fence."""
        fence = self._fence
        if fence is None:

            def unfenced(db: sqlite3.Connection) -> None:
                with _transaction(db):
                    operation(db)

            await self._run(unfenced, "write")
            return
        held = fence.held()

        def fenced(db: sqlite3.Connection) -> None:
            with _transaction(db):
                at = _fenced_at(db)
                if held is None or at != held:
                    raise OwnershipLostError(
                        f"The state store at {self._path} is fenced at {_owner(at)}, not {_owner(held)}: "
                        "this worker no longer owns the workspace, the write was refused."
                    )
                operation(db)

        try:
            await self._run(fenced, "write")
        except OwnershipLostError:
            fence.refused()
            raise

    async def take_over(self, workspace: str, epoch: int) -> None:
        """
        Fence the file at *workspace*'s lease *epoch*, just granted to this worker, before it reads or writes.

        From the commit on, every write fenced at an older epoch is refused (see the module docstring).

        Raises:
            OwnershipLostError: The file is already fenced at a newer epoch of *workspace* (this lease is stale).
            StateStoreError: The file cannot be opened or written.
        """

        def raise_fence(db: sqlite3.Connection) -> None:
            with _transaction(db):
                at = _fenced_at(db)
                if at is not None and at[0] == workspace and at[1] > epoch:
                    raise OwnershipLostError(
                        f"The state store at {self._path} is fenced at {_owner(at)}, "
                        f"newer than this worker's epoch {epoch}: it no longer owns the workspace."
                    )
                db.execute(
                    "INSERT INTO owner_fence (id, workspace, epoch) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET workspace = excluded.workspace, epoch = excluded.epoch",
                    (workspace, epoch),
                )

        await self._run(raise_fence, "fence")

    def _locked(self, operation: Callable[[sqlite3.Connection], _R], action: str) -> _R:
        with self._lock:
            try:
                return operation(self._connect())
            except StateStoreError:
                raise
            except (sqlite3.Error, OSError, OverflowError) as exc:
                raise StateStoreError(
                    f"Could not {action} the state store at {self._path}: {exc}. "
                    "Is the data dir writable by this user, and is there free disk space?"
                ) from exc
            except (ValueError, KeyError, TypeError, ZoneInfoNotFoundError) as exc:
                raise StateStoreError(
                    f"Could not {action} the state store at {self._path}: it holds a value this voicecoder cannot "
                    f"read or write ({type(exc).__name__}: {exc})."
                ) from exc

    # --- the port

    async def load_session(self, chat: ChatId, /) -> Session | None:
        """The session of *chat*, with its pending change, or None."""

        def load(db: sqlite3.Connection) -> Session | None:
            row = db.execute("SELECT * FROM sessions WHERE chat_id = ?", (chat.value,)).fetchone()
            if row is None:
                return None
            latest = None
            if row["pending_change_id"] is not None:
                change_row = db.execute(
                    f"{_SELECT_CHANGE} WHERE chat_id = ? AND id = ?", (chat.value, row["pending_change_id"])
                ).fetchone()
                if change_row is None:
                    raise KeyError(f"change {row['pending_change_id']} of chat {chat} is missing")
                latest = _change_from_row(change_row)
            open_prompt, open_prompt_sent_at = _prompt_from_json(row["open_prompt"])
            return Session(
                chat_id=chat,
                agent_session_id=row["agent_session_id"],
                turn_count=row["turn_count"],
                compaction_threshold=row["compaction_threshold"],
                approved_count=row["approved_count"],
                rejected_count=row["rejected_count"],
                latest_change=latest,
                started_at=_opt_decode(row["started_at"]),
                last_activity=_opt_decode(row["last_activity"]),
                open_turn=(
                    Baseline(TurnId(row["open_turn_id"]), row["open_turn_snapshot"], row["open_turn_end"])
                    if row["open_turn_id"] is not None
                    else None
                ),
                tool_rules=tuple(r for r in json.loads(row["tool_rules"]) if isinstance(r, str)),
                open_prompt=open_prompt,
                open_prompt_sent_at=open_prompt_sent_at,
                rerun=_prompt_from_json(row["rerun_prompt"])[0],
            )

        return await self._run(load, "read")

    async def save_session(self, session: Session, /) -> None:
        """
        Persist *session* and its pending change in one transaction.

        A change the session referenced before, still pending in the file, that the session no longer
        references was superseded (the port has no other way to tell us): it is marked so, decided at the
        new change's creation time, or at the session's last activity when nothing replaced it.
        """
        latest = session.latest_change
        latest_id = latest.id.value if latest is not None else None
        if latest is not None and latest.chat_id != session.chat_id:
            raise StateStoreError(
                f"Refusing to save chat {session.chat_id}: its change {latest.id} belongs to chat {latest.chat_id}."
            )
        session_row = (
            session.chat_id.value,
            session.agent_session_id,
            session.turn_count,
            session.compaction_threshold,
            session.approved_count,
            session.rejected_count,
            latest_id,
            _opt_dt(session.started_at),
            _opt_dt(session.last_activity),
            session.open_turn.turn_id.value if session.open_turn is not None else None,
            session.open_turn.snapshot if session.open_turn is not None else None,
            json.dumps(list(session.tool_rules)),
            session.open_turn.turn_end if session.open_turn is not None else None,
            _prompt_json(session.open_prompt, session.open_prompt_sent_at),
            _prompt_json(session.rerun),
        )
        change_row = _change_row(latest) if latest is not None else None
        superseded_at = latest.created_at if latest is not None else session.last_activity

        def save(db: sqlite3.Connection) -> None:
            before = db.execute(
                "SELECT pending_change_id FROM sessions WHERE chat_id = ?", (session.chat_id.value,)
            ).fetchone()
            if change_row is not None:
                db.execute(_UPSERT_CHANGE, change_row)
            db.execute(_UPSERT_SESSION, session_row)
            previous = before["pending_change_id"] if before is not None else None
            if previous is not None and previous != latest_id:
                db.execute(
                    "UPDATE changes SET status = ?, decided_at = ?, decided_utc = ? "
                    "WHERE chat_id = ? AND id = ? AND status = ?",
                    (
                        ChangeStatus.SUPERSEDED.value,
                        _opt_dt(superseded_at),
                        _utc_sort_key(superseded_at) if superseded_at is not None else None,
                        session.chat_id.value,
                        previous,
                        ChangeStatus.PENDING.value,
                    ),
                )

        await self._write(save)

    async def load_change(self, chat: ChatId, change: ChangeId, /) -> PendingChange | None:
        """The change *change* of *chat*, pending or decided, or None."""

        def load(db: sqlite3.Connection) -> PendingChange | None:
            row = db.execute(f"{_SELECT_CHANGE} WHERE chat_id = ? AND id = ?", (chat.value, change.value)).fetchone()
            return _change_from_row(row) if row is not None else None

        return await self._run(load, "read")

    async def save_change(self, change: PendingChange, /) -> None:
        """Persist a change its chat already has; StateStoreError when it has none with this id."""
        row = _change_row(change)

        def save(db: sqlite3.Connection) -> None:
            known = db.execute(
                "SELECT 1 FROM changes WHERE chat_id = ? AND id = ?", (change.chat_id.value, change.id.value)
            ).fetchone()
            if known is None:
                raise StateStoreError(
                    f"Chat {change.chat_id} has no change {change.id} in the state store at {self._path}: "
                    "a change is first saved with its session."
                )
            db.execute(_UPSERT_CHANGE, row)

        await self._write(save)

    async def approved_changes(self, chat: ChatId, /, limit: int = 20) -> Sequence[PendingChange]:
        """*chat*'s latest *limit* approved changes not reverted yet, the last decided first."""
        if limit < 1:
            return []

        def read(db: sqlite3.Connection) -> list[PendingChange]:
            rows = db.execute(
                f"{_SELECT_CHANGE} WHERE chat_id = ? AND status IN (?, ?) AND reverted_by IS NULL "
                "ORDER BY decided_utc DESC, rowid DESC LIMIT ?",
                (chat.value, ChangeStatus.APPROVED.value, ChangeStatus.AUTO_APPROVED.value, limit),
            ).fetchall()
            return [_change_from_row(r) for r in rows]

        return await self._run(read, "read")

    async def append_audit(self, record: AuditRecord, /) -> None:
        """Append one audit record."""
        row = _audit_row(record)

        def append(db: sqlite3.Connection) -> None:
            db.execute(_INSERT_AUDIT, row)

        await self._write(append)

    async def audit_trail(self, chat: ChatId, /, limit: int = 20) -> Sequence[AuditRecord]:
        """The latest *limit* records of *chat*, oldest first; none for a *limit* below 1."""
        if limit < 1:
            return []

        def read(db: sqlite3.Connection) -> list[AuditRecord]:
            rows = db.execute(
                f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM audit "  # noqa: S608 - constant column names
                "WHERE chat_id = ? ORDER BY id DESC LIMIT ?",
                (chat.value, limit),
            ).fetchall()
            return [_audit_from_row(r) for r in reversed(rows)]

        return await self._run(read, "read")

    # --- beyond the port

    async def recent_changes(self, chat: ChatId, /, limit: int = 10) -> Sequence[PendingChange]:
        """The approval history of *chat*: its latest *limit* decided changes, most recently decided first."""
        if limit < 1:
            return []

        def read(db: sqlite3.Connection) -> list[PendingChange]:
            rows = db.execute(
                f"{_SELECT_CHANGE} WHERE chat_id = ? AND status != ? "
                "ORDER BY decided_utc IS NULL, decided_utc DESC, rowid DESC LIMIT ?",
                (chat.value, ChangeStatus.PENDING.value, limit),
            ).fetchall()
            return [_change_from_row(r) for r in rows]

        return await self._run(read, "read")

    async def diagnose(self) -> Sequence[Diagnostic]:
        """One check: the file opens, is at our schema version and answers a query. Raises nothing."""

        def check(db: sqlite3.Connection) -> tuple[int, int, str]:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            sessions = int(db.execute("SELECT count(*) FROM sessions").fetchone()[0])
            mode = str(db.execute("PRAGMA journal_mode").fetchone()[0])
            return version, sessions, mode

        try:
            version, sessions, mode = await self._run(check, "read")
        except StateStoreError as exc:
            return [
                Diagnostic(
                    name="state store",
                    ok=False,
                    detail=str(exc),
                    fix="Set the data dir to a writable directory on a local disk.",
                )
            ]
        return [
            Diagnostic(
                name="state store",
                ok=True,
                detail=f"{self._path}: schema v{version}, {sessions} session(s), journal {mode}",
                warning=mode.lower() != "wal",
            )
        ]
