"""The state store's schema: `MIGRATIONS`, applied in order; ``PRAGMA user_version`` is the schema version."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

from voicecoder.adapters.sqlite.state_rows import _utc_sort_key, decode_datetime

Migration = Callable[[sqlite3.Connection], None]


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


def _v8_owner_fence(db: sqlite3.Connection) -> None:
    """
    The fence of a cluster worker's state (ADR 0030): the workspace and lease epoch of its newest owner.

    One row at most, written only by a worker taking the workspace over; the single-process mode never writes it.
    """
    db.execute(
        "CREATE TABLE owner_fence (id INTEGER PRIMARY KEY CHECK (id = 1), workspace TEXT NOT NULL, "
        "epoch INTEGER NOT NULL)"
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
    _v8_owner_fence,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
