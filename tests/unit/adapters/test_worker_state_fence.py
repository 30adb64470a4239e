"""
A worker's `StateFence` wired to a real `SqliteStateStore`: a write is made for the ownership period of the task
that makes it (`IN_HAND`), and a refused one ends that period, as a refused PostgreSQL write does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from voicecoder.adapters.postgres.leases import Lease
from voicecoder.adapters.postgres.project_choices import IN_HAND, InHand
from voicecoder.adapters.postgres.tree_fence import TreeFence
from voicecoder.adapters.postgres.worker import ClusterWorker
from voicecoder.adapters.sqlite.state_store import SqliteStateStore
from voicecoder.domain.errors import OwnershipLostError
from voicecoder.domain.model import AuditAction, AuditRecord, ChatId

WS = "p:alpha:u7"
RECORD = AuditRecord(at=datetime(2026, 11, 27, tzinfo=UTC), chat_id=ChatId(7), user_id=None, action=AuditAction.CHANGE)


def worker(tmp_path: Path) -> ClusterWorker:
    # The lease store and the inbox are never reached here: only the fence and the period's lost event are.
    return ClusterWorker(
        store=cast("Any", None),
        reader=cast("Any", None),
        fence=TreeFence(tmp_path / "ws"),
        dispatcher_for=cast("Any", None),
    )


async def in_period(epoch: int, workspace: str, write: Any) -> None:
    """Run *write* the way a task of the ownership period (*workspace*, *epoch*) runs."""
    token = IN_HAND.set(InHand(Lease(workspace, "h1/w", epoch, deadline=1e18), "alpha", 7))
    try:
        await write()
    finally:
        IN_HAND.reset(token)


async def test_the_owner_writes_and_a_stale_period_is_refused_and_ends(tmp_path: Path) -> None:
    owner = worker(tmp_path)
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path, fence=owner.state_fence(WS))
    lost = owner.lost_events[WS] = anyio.Event()
    try:
        await store.take_over(WS, 4)
        await in_period(4, WS, lambda: store.append_audit(RECORD))  # the owner of epoch 4 writes
        assert len(await store.audit_trail(ChatId(7))) == 1
        assert not lost.is_set()

        with pytest.raises(OwnershipLostError):
            await in_period(4, "p:beta:u7", lambda: store.append_audit(RECORD))  # another workspace's task
        with pytest.raises(OwnershipLostError):
            await store.append_audit(RECORD)  # outside any period

        await store.take_over(WS, 5)  # a newer owner (another process in life) fences the file
        with pytest.raises(OwnershipLostError, match="epoch 5, not workspace p:alpha:u7 epoch 4"):
            await in_period(4, WS, lambda: store.append_audit(RECORD))
        assert lost.is_set()
        assert len(await store.audit_trail(ChatId(7))) == 1
    finally:
        await store.close()
