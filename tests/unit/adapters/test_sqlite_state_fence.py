"""
The fence of a cluster worker's state file (ADR 0030), and schema creation by several processes at once.

A store with an `OwnerFence` writes only while the file is fenced at the epoch its caller works for; a newer owner's
`take_over` makes every older store's write fail with `OwnershipLostError`, changing nothing. The store without a
fence (the single-process mode) is untouched by any of it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecoder.adapters.sqlite.state_store import SCHEMA_VERSION, SqliteStateStore
from voicecoder.domain.errors import OwnershipLostError
from voicecoder.domain.model import AuditAction, AuditRecord, ChatId, Session

WS = "p:app:u7"
CHAT = ChatId(-1001234)
NOW = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


@attrs.define
class Period:
    """An `OwnerFence` whose caller works for *epoch* (None: for no ownership period); counts the refusals."""

    epoch: int | None
    workspace: str = WS
    refusals: int = 0

    def held(self) -> tuple[str, int] | None:
        return None if self.epoch is None else (self.workspace, self.epoch)

    def refused(self) -> None:
        self.refusals += 1


def rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The sessions, changes and audit rows, read the way another process would."""
    with closing(sqlite3.connect(path)) as db:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in ("sessions", "changes", "audit")
        )


def audit(n: int) -> AuditRecord:
    return AuditRecord(at=NOW, chat_id=CHAT, user_id=None, action=AuditAction.CHANGE, detail=f"write {n}")


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture(name="stores")
async def _stores(path: Path) -> AsyncIterator[list[SqliteStateStore]]:
    opened: list[SqliteStateStore] = []
    yield opened
    for store in opened:
        await store.close()


def fenced(path: Path, period: Period, stores: list[SqliteStateStore]) -> SqliteStateStore:
    store = SqliteStateStore(path, fence=period)
    stores.append(store)
    return store


async def test_a_new_owner_refuses_the_stale_owners_writes(path: Path, stores: list[SqliteStateStore]) -> None:
    """After epoch 2 takes over, epoch 1's session, change and audit writes raise and leave the file as it was."""
    old, new = Period(1), Period(2)
    stale, owner = fenced(path, old, stores), fenced(path, new, stores)
    await stale.take_over(WS, 1)
    session = Session(chat_id=CHAT)
    session.record_turn("before", now=NOW)
    await stale.save_session(session)
    await owner.take_over(WS, 2)
    before = rows(path)

    session.record_turn("after", now=NOW)
    with pytest.raises(OwnershipLostError, match="epoch 2, not workspace p:app:u7 epoch 1"):
        await stale.save_session(session)
    with pytest.raises(OwnershipLostError):
        await stale.append_audit(audit(1))

    assert rows(path) == before
    assert old.refusals == 2
    await owner.append_audit(audit(2))
    assert len(rows(path)[2]) == len(before[2]) + 1
    assert new.refusals == 0
    loaded = await owner.load_session(CHAT)
    assert loaded is not None
    assert loaded.turn_count == 1


async def test_a_stale_take_over_is_refused(path: Path, stores: list[SqliteStateStore]) -> None:
    """A lease granted before the file's fence (an older epoch of the same workspace) cannot lower it."""
    store = fenced(path, Period(3), stores)
    await store.take_over(WS, 3)

    with pytest.raises(OwnershipLostError, match="newer than this worker's epoch 2"):
        await store.take_over(WS, 2)
    await store.append_audit(audit(3))  # still fenced at 3


async def test_a_fenced_store_refuses_writes_outside_an_ownership_period(
    path: Path, stores: list[SqliteStateStore]
) -> None:
    """No fence raised yet, or a caller working for no period (or another workspace): the write is refused."""
    with pytest.raises(OwnershipLostError, match="fenced at no owner"):
        await fenced(path, Period(1), stores).append_audit(audit(1))
    await fenced(path, Period(1), stores).take_over(WS, 1)
    with pytest.raises(OwnershipLostError, match="not no owner"):
        await fenced(path, Period(None), stores).append_audit(audit(2))
    with pytest.raises(OwnershipLostError):
        await fenced(path, Period(1, workspace="p:other:u7"), stores).append_audit(audit(3))

    assert rows(path)[2] == []


async def test_the_single_process_store_ignores_the_fence(path: Path, stores: list[SqliteStateStore]) -> None:
    """Without a fence the store writes as it always did, whatever a worker raised in the file."""
    await fenced(path, Period(5), stores).take_over(WS, 5)
    plain = SqliteStateStore(path)
    stores.append(plain)

    await plain.append_audit(audit(1))

    assert len(rows(path)[2]) == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(["take", "write"]), st.integers(1, 4)), min_size=1, max_size=12))
async def test_only_the_newest_owner_writes_in_any_interleaving(tmp_path: Path, steps: list[tuple[str, int]]) -> None:
    """
    Owners of epochs 1-4 (each its own store on one file) take over and write in any order: a write lands exactly
    when its epoch is the newest one taken over so far, and a take-over succeeds exactly when none newer came first.
    """
    path = tmp_path / f"{os.urandom(8).hex()}.sqlite3"
    stores = {epoch: SqliteStateStore(path, fence=Period(epoch)) for epoch in range(1, 5)}
    newest: int | None = None
    landed = 0
    try:
        for n, (step, epoch) in enumerate(steps):
            store = stores[epoch]
            should = epoch == newest if step == "write" else newest is None or epoch >= newest
            try:
                if step == "take":
                    await store.take_over(WS, epoch)
                    newest = epoch
                else:
                    await store.append_audit(audit(n))
                    landed += 1
            except OwnershipLostError:
                assert not should, (step, epoch, newest)
            else:
                assert should, (step, epoch, newest)
    finally:
        for store in stores.values():
            await store.close()
    if path.exists():
        assert len(rows(path)[2]) == landed


# Runs in several child processes at once: each waits for "go" on stdin, then opens the same new file.
OPENER = textwrap.dedent(
    """
    import sys
    import anyio
    from voicecoder.adapters.sqlite.state_store import SqliteStateStore

    async def main(path):
        store = SqliteStateStore(path)
        print("ready", flush=True)
        sys.stdin.readline()
        await store.open()
        await store.close()

    anyio.run(main, sys.argv[1])
    """
)


def test_several_processes_create_one_file_together(tmp_path: Path) -> None:
    """Workers of one host starting at the same moment: every one opens the new file, exactly one migrates it."""
    path = tmp_path / "data" / "state.sqlite3"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for child in children:  # every one imported and waiting: the opens start within microseconds
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.close()
    errors = []
    for child in children:
        assert child.stderr is not None
        assert child.stdout is not None
        errors.append(child.stderr.read())
        child.wait(timeout=60)
        child.stdout.close()
        child.stderr.close()

    assert [child.returncode for child in children] == [0] * 6, errors
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT count(*) FROM owner_fence").fetchone()[0] == 0
