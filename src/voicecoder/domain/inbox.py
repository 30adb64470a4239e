"""
The durable update inbox's values: what a transport stores before anything runs, and what the dispatcher resumes.

The `Inbox` port (`voicecoder.domain.ports`) stores these; SQLite is one implementation (a shared database for
several processes is another).
"""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs


class ItemState(enum.Enum):
    """Where a stored update is: waiting to be processed (again), processed, or given up on."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@attrs.frozen
class InboxItem:
    """One stored update: its id, routing lane, raw JSON body and bookkeeping."""

    update_id: int
    lane: str
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    state: ItemState = ItemState.PENDING
    attempts: int = 0
    last_error: str | None = None
    received_at: float = 0.0
    parsed: dict[str, Any] | None = attrs.field(default=None, eq=False, repr=False)
    """The update already parsed by the ingress, if it was (saves parsing it twice)."""

    def update(self) -> dict[str, Any]:
        """The update as parsed JSON."""
        if self.parsed is not None:
            return self.parsed
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@attrs.frozen
class NewUpdate:
    """What the ingress hands to :meth:`Inbox.put_many`."""

    update_id: int
    lane: str
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen
class InboxCounts:
    """How many stored updates are in each state."""

    pending: int
    done: int
    failed: int


__all__ = ["InboxCounts", "InboxItem", "ItemState", "NewUpdate"]
