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

Datetimes are stored as ISO 8601 text with their UTC offset; a `zoneinfo.ZoneInfo` zone is kept as an RFC 9557
suffix (``2026-03-29T02:30:00+01:00[Europe/Berlin]``), so aware datetimes come back equal, with the same zone,
wall time and offset, even inside a DST gap or fold.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio.to_thread

from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.model import (
    AuditAction,
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeKind,
    ChangeStatus,
    ChatId,
    CommitInfo,
    Diagnostic,
    Diff,
    FileChange,
    Ownership,
    PendingChange,
    Prompt,
    PromptSource,
    SecretFinding,
    Session,
    TurnId,
    UserId,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteStateStore", "decode_datetime", "encode_datetime"]

log = logging.getLogger(__name__)

_R = TypeVar("_R")

Migration = Callable[[sqlite3.Connection], None]

#: How long a statement waits for another process (e.g. `voicecoder doctor`) holding the write lock.
BUSY_TIMEOUT_MS: Final = 5_000


# --- datetimes ----------------------------------------------------------------------


def encode_datetime(value: datetime) -> str:
    """ISO 8601 with offset; a named `ZoneInfo` zone is appended in brackets (RFC 9557)."""
    text = value.isoformat()
    if isinstance(value.tzinfo, ZoneInfo) and value.tzinfo.key is not None:
        text += f"[{value.tzinfo.key}]"
    return text


def decode_datetime(text: str) -> datetime:
    """The inverse of `encode_datetime`: same instant, wall time, offset and zone."""
    zone_key: str | None = None
    if text.endswith("]"):
        text, _, zone_key = text[:-1].partition("[")
    value = _parse_iso(text)
    if zone_key is None:
        return value
    offset = value.utcoffset()
    zoned = value.replace(tzinfo=ZoneInfo(zone_key), fold=0)
    if zoned.utcoffset() != offset:
        # The wall time is ambiguous (a fold) or missing (a gap); the stored offset says which side it was.
        zoned = zoned.replace(fold=1)
    return zoned


_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{6}))?)?$")


def _parse_iso(text: str) -> datetime:
    """`datetime.fromisoformat`, but keeping the sub-second part of an offset (3.11 drops it)."""
    match = _OFFSET.search(text) if len(text) > 19 else None
    if match is None:
        return datetime.fromisoformat(text)
    sign, hours, minutes, seconds, micros = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0), microseconds=int(micros or 0))
    naive = datetime.fromisoformat(text[: match.start()])
    return naive.replace(tzinfo=timezone(-offset if sign == "-" else offset))


def _utc_sort_key(value: datetime) -> str:
    """Fixed-width UTC text that sorts like the instants it encodes."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def _opt_dt(value: datetime | None) -> str | None:
    return encode_datetime(value) if value is not None else None


def _opt_decode(text: str | None) -> datetime | None:
    return decode_datetime(text) if text is not None else None


# --- migrations -----------------------------------------------------------------------


def _v1_initial(db: sqlite3.Connection) -> None:
    """Sessions, changes and the audit trail."""
    db.execute(
        """
        CREATE TABLE changes (
            chat_id INTEGER NOT NULL,
            id TEXT NOT NULL,
            turn_id TEXT NOT NULL,
            status TEXT NOT NULL,
            prompt_text TEXT NOT NULL,
            prompt_source TEXT NOT NULL,
            prompt_confidence REAL,
            prompt_audio_digest TEXT,
            baseline_turn_id TEXT NOT NULL,
            baseline_snapshot TEXT NOT NULL,
            diff_unified TEXT NOT NULL,
            diff_files TEXT NOT NULL,
            diff_fingerprint TEXT NOT NULL,
            findings TEXT NOT NULL,
            created_at TEXT NOT NULL,
            decided_at TEXT,
            decided_by INTEGER,
            commit_sha TEXT,
            commit_message TEXT,
            commit_author TEXT,
            commit_time TEXT,
            agent_session_id TEXT,
            PRIMARY KEY (chat_id, id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE sessions (
            chat_id INTEGER PRIMARY KEY,
            agent_session_id TEXT,
            turn_count INTEGER NOT NULL,
            compaction_threshold INTEGER NOT NULL,
            approved_count INTEGER NOT NULL,
            rejected_count INTEGER NOT NULL,
            pending_change_id TEXT,
            started_at TEXT,
            last_activity TEXT,
            FOREIGN KEY (chat_id, pending_change_id) REFERENCES changes (chat_id, id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            chat_id INTEGER NOT NULL,
            user_id INTEGER,
            action TEXT NOT NULL,
            change_id TEXT,
            audio_digest TEXT,
            transcript TEXT,
            prompt TEXT,
            agent_session_id TEXT,
            diff_fingerprint TEXT,
            commit_sha TEXT,
            detail TEXT
        )
        """
    )


def _v2_history_index(db: sqlite3.Connection) -> None:
    """A UTC sort key for decisions (offsets make `decided_at` text unsortable) and indexes for the history reads."""
    db.execute("ALTER TABLE changes ADD COLUMN decided_utc TEXT")
    rows = db.execute("SELECT chat_id, id, decided_at FROM changes WHERE decided_at IS NOT NULL").fetchall()
    for chat_id, change_id, decided_at in rows:
        db.execute(
            "UPDATE changes SET decided_utc = ? WHERE chat_id = ? AND id = ?",
            (_utc_sort_key(decode_datetime(decided_at)), chat_id, change_id),
        )
    db.execute("CREATE INDEX changes_by_decision ON changes (chat_id, decided_utc)")
    db.execute("CREATE INDEX audit_by_chat ON audit (chat_id, id)")


def _v3_open_turn(db: sqlite3.Connection) -> None:
    """The baseline of a turn cut off by a restart, so its edits still go through approval."""
    db.execute("ALTER TABLE sessions ADD COLUMN open_turn_id TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN open_turn_snapshot TEXT")


def _v4_summary_message(db: sqlite3.Connection) -> None:
    """The messages that show a change with its buttons, so they can be edited when it is decided or replaced."""
    db.execute("ALTER TABLE changes ADD COLUMN message_ids TEXT NOT NULL DEFAULT '[]'")


def _v5_tool_rules(db: sqlite3.Connection) -> None:
    """The tool rules a chat allowed "for this session" (a JSON list of rule strings)."""
    db.execute("ALTER TABLE sessions ADD COLUMN tool_rules TEXT NOT NULL DEFAULT '[]'")


def _v6_turn_end(db: sqlite3.Connection) -> None:
    """
    The turn-end snapshot beside each baseline, and the three-way diff (the developer's edits, late edits).

    Rows from before have no turn end (NULL): their whole diff counts as the agent's, as it did then.
    """
    db.execute("ALTER TABLE changes ADD COLUMN baseline_turn_end TEXT")
    db.execute("ALTER TABLE changes ADD COLUMN diff_yours TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE changes ADD COLUMN diff_late_unified TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE changes ADD COLUMN diff_late_files TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE sessions ADD COLUMN open_turn_end TEXT")


def _v7_reverts_and_prompts(db: sqlite3.Connection) -> None:
    """
    Which approved change /undo reverted, and when; the open turn's prompt and a prompt offered to run again.

    Before, only the audit trail said which change was reverted (an ``undo`` record: the reverted commit in
    ``detail``, the revert in ``commit_sha``); those records are carried over. The prompts are JSON (see
    `_prompt_json`); an open turn from before has none, so its prompt, delivered again, runs as it did then.
    """
    db.execute("ALTER TABLE sessions ADD COLUMN open_prompt TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN rerun_prompt TEXT")
    db.execute("ALTER TABLE changes ADD COLUMN reverted_by TEXT")
    db.execute("ALTER TABLE changes ADD COLUMN reverted_at TEXT")
    undos = db.execute(
        "SELECT chat_id, detail, commit_sha, at FROM audit WHERE action = 'undo' AND detail IS NOT NULL ORDER BY id"
    ).fetchall()
    for chat_id, reverted, revert, at in undos:
        db.execute(
            "UPDATE changes SET reverted_by = ?, reverted_at = ? "
            "WHERE chat_id = ? AND commit_sha = ? AND reverted_by IS NULL",
            (revert, at, chat_id, reverted),
        )


#: Ordered; migration ``i`` takes a database from schema version ``i`` to ``i + 1``. Never edit a released one.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    _v1_initial,
    _v2_history_index,
    _v3_open_turn,
    _v4_summary_message,
    _v5_tool_rules,
    _v6_turn_end,
    _v7_reverts_and_prompts,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


# --- row mapping ------------------------------------------------------------------------

_CHANGE_COLUMNS: Final = (
    "chat_id",
    "id",
    "turn_id",
    "status",
    "prompt_text",
    "prompt_source",
    "prompt_confidence",
    "prompt_audio_digest",
    "baseline_turn_id",
    "baseline_snapshot",
    "diff_unified",
    "diff_files",
    "diff_fingerprint",
    "findings",
    "created_at",
    "decided_at",
    "decided_utc",
    "decided_by",
    "commit_sha",
    "commit_message",
    "commit_author",
    "commit_time",
    "agent_session_id",
    "message_ids",
    "baseline_turn_end",
    "diff_yours",
    "diff_late_unified",
    "diff_late_files",
    "reverted_by",
    "reverted_at",
)


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """INSERT … ON CONFLICT (key) DO UPDATE every other column; *table* and *columns* are our constants."""
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"  # noqa: S608


_UPSERT_CHANGE: Final = _upsert_sql("changes", _CHANGE_COLUMNS, ("chat_id", "id"))
_SELECT_CHANGE: Final = f"SELECT {', '.join(_CHANGE_COLUMNS)} FROM changes"  # noqa: S608 - constant column names
_UPSERT_SESSION: Final = """
    INSERT INTO sessions (chat_id, agent_session_id, turn_count, compaction_threshold, approved_count,
                          rejected_count, pending_change_id, started_at, last_activity,
                          open_turn_id, open_turn_snapshot, tool_rules, open_turn_end, open_prompt, rerun_prompt)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (chat_id) DO UPDATE SET
        agent_session_id = excluded.agent_session_id,
        turn_count = excluded.turn_count,
        compaction_threshold = excluded.compaction_threshold,
        approved_count = excluded.approved_count,
        rejected_count = excluded.rejected_count,
        pending_change_id = excluded.pending_change_id,
        started_at = excluded.started_at,
        last_activity = excluded.last_activity,
        open_turn_id = excluded.open_turn_id,
        open_turn_snapshot = excluded.open_turn_snapshot,
        tool_rules = excluded.tool_rules,
        open_turn_end = excluded.open_turn_end,
        open_prompt = excluded.open_prompt,
        rerun_prompt = excluded.rerun_prompt
"""
_AUDIT_COLUMNS: Final = (
    "at",
    "chat_id",
    "user_id",
    "action",
    "change_id",
    "audio_digest",
    "transcript",
    "prompt",
    "agent_session_id",
    "diff_fingerprint",
    "commit_sha",
    "detail",
)

_INSERT_AUDIT: Final = (
    f"INSERT INTO audit ({', '.join(_AUDIT_COLUMNS)}) VALUES ({', '.join('?' * len(_AUDIT_COLUMNS))})"  # noqa: S608
)


def _prompt_json(prompt: Prompt | None, sent_at: datetime | None = None) -> str | None:
    if prompt is None:
        return None
    return json.dumps(
        {
            "text": prompt.text,
            "source": prompt.source.value,
            "confidence": prompt.confidence,
            "audio_digest": prompt.audio_digest,
            "sent_at": _opt_dt(sent_at),
        }
    )


def _prompt_from_json(text: str | None) -> tuple[Prompt | None, datetime | None]:
    if text is None:
        return None, None
    fields = json.loads(text)
    prompt = Prompt(
        text=fields["text"],
        source=PromptSource(fields["source"]),
        confidence=fields["confidence"],
        audio_digest=fields["audio_digest"],
    )
    return prompt, _opt_decode(fields["sent_at"])


def _files_json(files: tuple[FileChange, ...]) -> str:
    return json.dumps(
        [
            {
                "path": f.path,
                "kind": f.kind.value,
                "additions": f.additions,
                "deletions": f.deletions,
                "binary": f.binary,
                "old_mode": f.old_mode,
                "new_mode": f.new_mode,
                "owner": f.owner.value,
            }
            for f in files
        ]
    )


def _files_from_json(text: str) -> tuple[FileChange, ...]:
    return tuple(
        FileChange(
            path=f["path"],
            kind=ChangeKind(f["kind"]),
            additions=f["additions"],
            deletions=f["deletions"],
            binary=f["binary"],
            old_mode=f["old_mode"],
            new_mode=f["new_mode"],
            owner=Ownership(f.get("owner", Ownership.AGENT.value)),
        )
        for f in json.loads(text)
    )


def _change_row(change: PendingChange) -> tuple[Any, ...]:
    commit = change.commit
    findings = [{"path": f.path, "line": f.line, "kind": f.kind} for f in change.findings]
    return (
        change.chat_id.value,
        change.id.value,
        change.turn_id.value,
        change.status.value,
        change.prompt.text,
        change.prompt.source.value,
        change.prompt.confidence,
        change.prompt.audio_digest,
        change.baseline.turn_id.value,
        change.baseline.snapshot,
        change.diff.unified,
        _files_json(change.diff.files),
        change.diff.fingerprint,
        json.dumps(findings),
        encode_datetime(change.created_at),
        _opt_dt(change.decided_at),
        _utc_sort_key(change.decided_at) if change.decided_at is not None else None,
        change.decided_by.value if change.decided_by is not None else None,
        commit.sha if commit else None,
        commit.message if commit else None,
        commit.author if commit else None,
        encode_datetime(commit.committed_at) if commit else None,
        change.agent_session_id,
        json.dumps(list(change.message_ids)),
        change.baseline.turn_end,
        change.diff.yours,
        change.diff.late_unified,
        _files_json(change.diff.late),
        change.reverted_by,
        _opt_dt(change.reverted_at),
    )


def _change_from_row(row: sqlite3.Row) -> PendingChange:
    commit = None
    if row["commit_sha"] is not None:
        commit = CommitInfo(
            sha=row["commit_sha"],
            message=row["commit_message"],
            author=row["commit_author"],
            committed_at=decode_datetime(row["commit_time"]),
        )
    findings = tuple(SecretFinding(path=f["path"], line=f["line"], kind=f["kind"]) for f in json.loads(row["findings"]))
    return PendingChange(
        id=ChangeId(row["id"]),
        turn_id=TurnId(row["turn_id"]),
        chat_id=ChatId(row["chat_id"]),
        prompt=Prompt(
            text=row["prompt_text"],
            source=PromptSource(row["prompt_source"]),
            confidence=row["prompt_confidence"],
            audio_digest=row["prompt_audio_digest"],
        ),
        baseline=Baseline(
            turn_id=TurnId(row["baseline_turn_id"]),
            snapshot=row["baseline_snapshot"],
            turn_end=row["baseline_turn_end"],
        ),
        diff=Diff(
            unified=row["diff_unified"],
            files=_files_from_json(row["diff_files"]),
            fingerprint=row["diff_fingerprint"],
            yours=row["diff_yours"],
            late=_files_from_json(row["diff_late_files"]),
            late_unified=row["diff_late_unified"],
        ),
        created_at=decode_datetime(row["created_at"]),
        agent_session_id=row["agent_session_id"],
        findings=findings,
        status=ChangeStatus(row["status"]),
        decided_at=_opt_decode(row["decided_at"]),
        decided_by=UserId(row["decided_by"]) if row["decided_by"] is not None else None,
        commit=commit,
        message_ids=tuple(int(i) for i in json.loads(row["message_ids"])),
        reverted_by=row["reverted_by"],
        reverted_at=_opt_decode(row["reverted_at"]),
    )


def _audit_row(record: AuditRecord) -> tuple[Any, ...]:
    return (
        encode_datetime(record.at),
        record.chat_id.value,
        record.user_id.value if record.user_id is not None else None,
        record.action.value,
        record.change_id.value if record.change_id is not None else None,
        record.audio_digest,
        record.transcript,
        record.prompt,
        record.agent_session_id,
        record.diff_fingerprint,
        record.commit_sha,
        record.detail,
    )


def _audit_from_row(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        at=decode_datetime(row["at"]),
        chat_id=ChatId(row["chat_id"]),
        user_id=UserId(row["user_id"]) if row["user_id"] is not None else None,
        action=AuditAction(row["action"]),
        change_id=ChangeId(row["change_id"]) if row["change_id"] is not None else None,
        audio_digest=row["audio_digest"],
        transcript=row["transcript"],
        prompt=row["prompt"],
        agent_session_id=row["agent_session_id"],
        diff_fingerprint=row["diff_fingerprint"],
        commit_sha=row["commit_sha"],
        detail=row["detail"],
    )


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


# --- the adapter ------------------------------------------------------------------------


class SqliteStateStore:
    """
    The `StateStore` port on a SQLite file (WAL, ``synchronous=FULL``).

    Construct it anywhere (nothing happens until the first call or `open()`); call `close()` at shutdown.
    Every failure is a `StateStoreError` naming the file. A cancelled call still finishes its transaction in
    the worker thread, so cancellation never leaves half a save behind.
    """

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
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
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"The state store at {self._path} has schema version {version}, but this voicecoder only knows "
                f"versions up to {SCHEMA_VERSION}: it was written by a newer voicecoder. Upgrade voicecoder, "
                "or point it at another data dir."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            migration = MIGRATIONS[target - 1]
            with _transaction(db):
                migration(db)
                db.execute(f"PRAGMA user_version = {target}")
            log.info("state store %s migrated to schema version %d (%s)", self._path, target, migration.__name__)

    async def _run(self, operation: Callable[[sqlite3.Connection], _R], action: str) -> _R:
        return await anyio.to_thread.run_sync(self._locked, operation, action)

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
            with _transaction(db):
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

        await self._run(save, "write")

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
            with _transaction(db):
                known = db.execute(
                    "SELECT 1 FROM changes WHERE chat_id = ? AND id = ?", (change.chat_id.value, change.id.value)
                ).fetchone()
                if known is None:
                    raise StateStoreError(
                        f"Chat {change.chat_id} has no change {change.id} in the state store at {self._path}: "
                        "a change is first saved with its session."
                    )
                db.execute(_UPSERT_CHANGE, row)

        await self._run(save, "write")

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
            with _transaction(db):
                db.execute(_INSERT_AUDIT, row)

        await self._run(append, "write")

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
