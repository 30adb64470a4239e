"""Reading an inbox file from another process, read-only: how far one update got (for `voicecoder selftest`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs

from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.inbox import ItemState

__all__ = ["ItemTiming", "read_item_timing"]


@attrs.frozen
class ItemTiming:
    """How far one update got, as another process reads it from the inbox file."""

    state: ItemState
    attempts: int
    received_at: float
    finished_at: float | None
    last_error: str | None


def read_item_timing(path: Path | str, update_id: int) -> ItemTiming | None:
    """
    The state and timestamps of *update_id*, read without writing; None while it is not stored.

    For a second process next to the running bot (`voicecoder selftest`); a missing file also gives None.

    Raises:
        StateStoreError: The file exists but cannot be read.
    """
    target = Path(path)
    if not target.exists():
        return None
    try:
        connection = sqlite3.connect(f"{target.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            row = connection.execute(
                "SELECT state, attempts, received_at, finished_at, last_error FROM updates WHERE update_id = ?",
                (update_id,),
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StateStoreError(f"Cannot read the inbox {target}: {exc}. Run as the bot's user.") from exc
    if row is None:
        return None
    return ItemTiming(ItemState(row[0]), int(row[1]), float(row[2]), row[3], row[4])
