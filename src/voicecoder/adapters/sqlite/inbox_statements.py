"""
The statements one inbox commit runs: its new rows and its claim and done marks, each folded into few statements.

Fewer statements mean fewer GIL hand-offs between the writer thread and the busy event loop on the same core. A
statement holds at most 999 parameters on SQLite builds before 3.32 (later ones allow 32,766), so a commit's rows
and ids go in pieces below that, one piece in the common case. Placeholders are the only text interpolated.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["Row", "apply_marks", "insert_new", "insert_returning"]

Row = tuple[int, str, bytes, float]
"""An update's row: ``update_id``, ``lane``, ``body``, ``received_at``."""

_T = TypeVar("_T")
_ROWS_PER_INSERT = 200  # 4 parameters each
_IDS_PER_LIST = 900


def insert_new(conn: sqlite3.Connection, rows: Sequence[Row]) -> bool:
    """
    Insert *rows* (distinct ids); True when every one was new, False as soon as one was stored already.

    Without ``RETURNING``: that hands back one row per step, and the sqlite3 module gives up and retakes the GIL
    around each step (a batch of 40 puts was 40 GIL hand-offs with the busy event loop on the same core). On False
    the caller rolls back and learns row by row with `insert_returning`.
    """
    return all(_insert(conn, chunk, "").rowcount == len(chunk) for chunk in _chunks(rows, _ROWS_PER_INSERT))


def insert_returning(conn: sqlite3.Connection, rows: Sequence[Row]) -> set[int]:
    """Insert *rows* (distinct ids) where their id is new; the ids that were."""
    inserted: set[int] = set()
    for chunk in _chunks(rows, _ROWS_PER_INSERT):
        inserted.update(int(row[0]) for row in _insert(conn, chunk, " RETURNING update_id").fetchall())
    return inserted


def apply_marks(conn: sqlite3.Connection, marks: Sequence[tuple[str, int]]) -> None:
    """Count each ``("claim", id)`` as an attempt of a pending update and finish each ``("done", id)``."""
    claims = collections.Counter(update_id for kind, update_id in marks if kind == "claim")
    once = [update_id for update_id, count in claims.items() if count == 1]
    for ids in _chunks(once, _IDS_PER_LIST):
        conn.execute(
            "UPDATE updates SET attempts = attempts + 1 WHERE state = 'pending' AND update_id IN "  # noqa: S608
            f"({','.join('?' * len(ids))})",
            ids,
        )
    # An update claimed twice before one commit (rare: a retry with no wait) counts both attempts.
    repeated = [(count, update_id) for update_id, count in claims.items() if count > 1]
    if repeated:
        conn.executemany(
            "UPDATE updates SET attempts = attempts + ? WHERE state = 'pending' AND update_id = ?", repeated
        )
    dones = [update_id for kind, update_id in marks if kind == "done"]
    finished_at = time.time()
    for ids in _chunks(dones, _IDS_PER_LIST):
        conn.execute(
            "UPDATE updates SET state = 'done', finished_at = ? WHERE update_id IN "  # noqa: S608
            f"({','.join('?' * len(ids))})",
            [finished_at, *ids],
        )


def _insert(conn: sqlite3.Connection, rows: Sequence[Row], tail: str) -> sqlite3.Cursor:
    """One multi-row ``INSERT OR IGNORE`` of *rows*, *tail* appended to the statement."""
    return conn.execute(
        "INSERT OR IGNORE INTO updates (update_id, lane, body, received_at) VALUES "  # noqa: S608
        f"{','.join(['(?,?,?,?)'] * len(rows))}{tail}",
        [value for row in rows for value in row],
    )


def _chunks(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    """*items* in consecutive pieces of at most *size* (one piece when they fit, the common case)."""
    if len(items) <= size:
        return [items] if items else []
    return [items[start : start + size] for start in range(0, len(items), size)]
