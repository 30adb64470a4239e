from __future__ import annotations

import os
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecoder.adapters.sqlite.state_store import (
    SCHEMA_VERSION,
    SqliteStateStore,
)
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
    Diff,
    FileChange,
    PendingChange,
    Prompt,
    PromptSource,
    SecretFinding,
    Session,
    TurnId,
    UserId,
)
from voicecoder.testing.contracts.state_store import audit_records, sessions

CHAT = ChatId(-1001234)
ALICE = UserId(7)
T0 = datetime(2026, 5, 4, 8, 30, tzinfo=ZoneInfo("Europe/Berlin"))
BERLIN = ZoneInfo("Europe/Berlin")


def change(n: int, *, chat: ChatId = CHAT, at: datetime = T0) -> PendingChange:
    turn = TurnId(f"t{n}")
    return PendingChange(
        id=ChangeId(f"{n:08x}"),
        turn_id=turn,
        chat_id=chat,
        prompt=Prompt(text=f"add feature {n}", source=PromptSource.VOICE, confidence=0.93, audio_digest="ab" * 32),
        baseline=Baseline(turn_id=turn, snapshot="c0ffee" * 6 + "ab12"),
        diff=Diff(
            unified="--- a/app.py\n+++ b/app.py\n@@ -1 +1,2 @@\n x = 1\n+y = 2\n",
            files=(FileChange("app.py", ChangeKind.MODIFIED, additions=1, old_mode=0o100644, new_mode=0o100755),),
            fingerprint=f"{n:064x}",
        ),
        created_at=at,
        agent_session_id="agent-session",
        findings=(SecretFinding("config.py", 3, "AWS Access Key"),),
    )


def commit(at: datetime) -> CommitInfo:
    return CommitInfo(sha="9" * 40, message="Add y\n", author="Alice <alice@example.org>", committed_at=at)


def raw(path: Path) -> closing[sqlite3.Connection]:
    """A plain connection, to look at the file the way another process would."""
    return closing(sqlite3.connect(path))


def user_version(path: Path) -> int:
    with raw(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.sqlite3"


@pytest.fixture(name="store")
async def _store(path: Path) -> AsyncIterator[SqliteStateStore]:
    store = SqliteStateStore(path)
    yield store
    await store.close()


# The schema exactly as version 1 shipped; a test for the upgrade path must not follow later edits.
V1_SCHEMA = """
CREATE TABLE changes (
    chat_id INTEGER NOT NULL, id TEXT NOT NULL, turn_id TEXT NOT NULL, status TEXT NOT NULL,
    prompt_text TEXT NOT NULL, prompt_source TEXT NOT NULL, prompt_confidence REAL, prompt_audio_digest TEXT,
    baseline_turn_id TEXT NOT NULL, baseline_snapshot TEXT NOT NULL,
    diff_unified TEXT NOT NULL, diff_files TEXT NOT NULL, diff_fingerprint TEXT NOT NULL, findings TEXT NOT NULL,
    created_at TEXT NOT NULL, decided_at TEXT, decided_by INTEGER,
    commit_sha TEXT, commit_message TEXT, commit_author TEXT, commit_time TEXT, agent_session_id TEXT,
    PRIMARY KEY (chat_id, id)
);
CREATE TABLE sessions (
    chat_id INTEGER PRIMARY KEY, agent_session_id TEXT, turn_count INTEGER NOT NULL,
    compaction_threshold INTEGER NOT NULL, approved_count INTEGER NOT NULL, rejected_count INTEGER NOT NULL,
    pending_change_id TEXT, started_at TEXT, last_activity TEXT,
    FOREIGN KEY (chat_id, pending_change_id) REFERENCES changes (chat_id, id)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, chat_id INTEGER NOT NULL, user_id INTEGER,
    action TEXT NOT NULL, change_id TEXT, audio_digest TEXT, transcript TEXT, prompt TEXT, agent_session_id TEXT,
    diff_fingerprint TEXT, commit_sha TEXT, detail TEXT
);
PRAGMA user_version = 1;
"""

V1_ROWS = """
INSERT INTO changes VALUES (-1001234, '0000000a', 't10', 'approved', 'add a test', 'typed', NULL, NULL,
    't10', 'base10', 'diff text', '[{"path": "t.py", "kind": "added", "additions": 3, "deletions": 0,
    "binary": false, "old_mode": null, "new_mode": 33188}]', 'f10', '[]',
    '2026-05-04T08:00:00+02:00[Europe/Berlin]', '2026-05-04T09:00:00+05:00', 7,
    'abc123', 'Add a test', 'Alice', '2026-05-04T04:00:00+00:00', 'sess-10');
INSERT INTO changes VALUES (-1001234, '0000000b', 't11', 'rejected', 'rename x', 'voice', 0.5, 'dd',
    't11', 'base11', 'diff 2', '[]', 'f11', '[{"path": "k.env", "line": 2, "kind": "Secret Keyword"}]',
    '2026-05-04T05:10:00+00:00', '2026-05-04T05:30:00+00:00', 7, NULL, NULL, NULL, NULL, NULL);
INSERT INTO changes VALUES (-1001234, '0000000c', 't12', 'pending', 'add docs', 'typed', NULL, NULL,
    't12', 'base12', 'diff 3', '[]', 'f12', '[]', '2026-05-04T06:00:00+00:00', NULL, NULL,
    NULL, NULL, NULL, NULL, 'sess-12');
INSERT INTO sessions VALUES (-1001234, 'sess-12', 3, 20, 1, 1, '0000000c',
    '2026-05-04T07:00:00+02:00[Europe/Berlin]', '2026-05-04T06:00:00+00:00');
INSERT INTO audit (at, chat_id, user_id, action, change_id, prompt)
    VALUES ('2026-05-04T06:00:00+00:00', -1001234, 7, 'change', '0000000c', 'add docs');
"""


ACTIONS = list(AuditAction)


class TestSqliteStateStore:
    async def test_state_survives_close_and_reopen(self, path: Path) -> None:
        """Sessions, their changes and the audit trail read back equal from a reopened file."""
        session = Session(chat_id=CHAT)
        session.record_turn("agent-session", now=T0)
        session.attach(change(1), now=T0)
        record = AuditRecord(
            at=T0, chat_id=CHAT, user_id=ALICE, action=AuditAction.CHANGE, change_id=ChangeId("00000001")
        )
        first = SqliteStateStore(path)
        await first.save_session(session)
        await first.append_audit(record)
        await first.close()

        second = SqliteStateStore(path)
        try:
            loaded = await second.load_session(CHAT)
            trail = list(await second.audit_trail(CHAT))
        finally:
            await second.close()

        assert (loaded, trail) == (session, [record])

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        saved=st.lists(sessions(), max_size=5, unique_by=lambda s: s.chat_id),
        records=st.lists(audit_records(), max_size=5),
    )
    async def test_any_state_survives_reopen(
        self, tmp_path: Path, saved: list[Session], records: list[AuditRecord]
    ) -> None:
        """Whatever was saved, a new store on the same file loads it unchanged."""
        path = tmp_path / f"{os.urandom(8).hex()}.sqlite3"
        writer = SqliteStateStore(path)
        for session in saved:
            await writer.save_session(session)
        for record in records:
            await writer.append_audit(record)
        await writer.close()

        reader = SqliteStateStore(path)
        try:
            loaded = [await reader.load_session(s.chat_id) for s in saved]
            trails = {r.chat_id: list(await reader.audit_trail(r.chat_id, 100)) for r in records}
        finally:
            await reader.close()

        assert loaded == saved
        assert trails == {chat: [r for r in records if r.chat_id == chat] for chat in trails}

    async def test_state_written_by_an_exited_process_is_read(self, path: Path) -> None:
        """A separate process that saves and exits normally leaves its state for the next one."""
        await anyio.run_process([sys.executable, "-c", WRITER, str(path), "exit"], check=True)

        store = SqliteStateStore(path)
        try:
            loaded = await store.load_session(CHAT)
            trail = await store.audit_trail(CHAT)
        finally:
            await store.close()

        assert loaded is not None
        assert loaded.latest_change is not None
        assert (loaded.turn_count, loaded.latest_change.prompt.text, [r.action for r in trail]) == (
            1,
            "written by a child",
            ["change"],
        )

    async def test_state_survives_sigkill(self, path: Path) -> None:
        """Acknowledged writes of a process killed with SIGKILL are recovered from the WAL on reopen."""
        async with await anyio.open_process([sys.executable, "-c", WRITER, str(path), "hang"]) as process:
            assert process.stdout is not None
            ready = await process.stdout.receive()
            process.kill()
            await process.wait()
        wal = path.with_name(path.name + "-wal")
        wal_bytes = wal.stat().st_size

        store = SqliteStateStore(path)
        try:
            loaded = await store.load_session(CHAT)
            trail = await store.audit_trail(CHAT)
        finally:
            await store.close()

        assert ready.startswith(b"saved")
        assert process.returncode == -9
        assert wal_bytes > 0  # the data was only in the write-ahead log when the process died
        assert loaded is not None
        assert loaded.latest_change is not None
        assert (loaded.latest_change.prompt.text, len(trail)) == ("written by a child", 1)

    async def test_upgrades_a_version_1_file(self, path: Path) -> None:
        """A file at schema v1 is migrated in place; its sessions, changes and audit read back intact."""
        path.parent.mkdir(parents=True)
        with raw(path) as db:
            db.executescript(V1_SCHEMA + V1_ROWS)
        store = SqliteStateStore(path)

        try:
            loaded = await store.load_session(CHAT)
            history = await store.recent_changes(CHAT)
            trail = await store.audit_trail(CHAT)
        finally:
            await store.close()

        assert loaded is not None
        assert loaded.latest_change is not None
        assert (loaded.agent_session_id, loaded.turn_count, loaded.started_at) == (
            "sess-12",
            3,
            datetime(2026, 5, 4, 7, 0, tzinfo=BERLIN),
        )
        assert (loaded.latest_change.id, loaded.latest_change.status) == (ChangeId("0000000c"), ChangeStatus.PENDING)
        # Decided at 04:00Z and 05:30Z: the backfilled sort key orders by instant, not by the offset text.
        assert [(c.id.value, c.status) for c in history] == [
            ("0000000b", ChangeStatus.REJECTED),
            ("0000000a", ChangeStatus.APPROVED),
        ]
        assert history[1].diff.files == (FileChange("t.py", ChangeKind.ADDED, additions=3, new_mode=0o100644),)
        assert history[0].findings == (SecretFinding("k.env", 2, "Secret Keyword"),)
        assert [r.prompt for r in trail] == ["add docs"]
        assert loaded.open_turn is None
        # Changes from before the turn-end snapshot existed have none, and their whole diff is the agent's.
        assert loaded.latest_change.baseline.turn_end is None
        assert (loaded.latest_change.diff.yours, loaded.latest_change.diff.late) == ("", ())
        assert user_version(path) == SCHEMA_VERSION == 8

    async def test_upgrade_carries_undo_records_over_to_the_changes(self, path: Path) -> None:
        """An approved change an older voicecoder reverted (only its audit trail said so) loads reverted."""
        path.parent.mkdir(parents=True)
        with raw(path) as db:
            db.executescript(V1_SCHEMA + V1_ROWS)
            db.execute(
                "INSERT INTO audit (at, chat_id, user_id, action, change_id, commit_sha, detail) "
                "VALUES ('2026-05-04T10:00:00+00:00', -1001234, 7, 'undo', '0000000a', 'def456', 'abc123')"
            )
            db.commit()
        store = SqliteStateStore(path)

        try:
            approved = await store.approved_changes(CHAT)
            reverted = await store.load_change(CHAT, ChangeId("0000000a"))
        finally:
            await store.close()

        assert list(approved) == []
        assert reverted is not None
        assert (reverted.status, reverted.reverted_by, reverted.reverted_at) == (
            ChangeStatus.APPROVED,
            "def456",
            datetime(2026, 5, 4, 10, 0, tzinfo=UTC),
        )

    async def test_failed_migration_leaves_the_previous_version(self, path: Path) -> None:
        """When an upgrade step fails (here: a v1 row with an unreadable date), the file stays at v1, unchanged."""
        path.parent.mkdir(parents=True)
        with raw(path) as db:
            db.executescript(V1_SCHEMA + V1_ROWS)
            db.execute("UPDATE changes SET decided_at = 'yesterday-ish' WHERE id = '0000000a'")
            db.commit()
        store = SqliteStateStore(path)

        with pytest.raises(StateStoreError, match="cannot read"):
            await store.open()
        await store.close()

        with raw(path) as db:
            columns = [r[1] for r in db.execute("PRAGMA table_info(changes)")]
        assert user_version(path) == 1
        assert "decided_utc" not in columns

    async def test_migration_creates_the_history_indexes(self, path: Path, store: SqliteStateStore) -> None:
        """A new file gets every migration: the indexes of v2 exist and the version is the latest."""
        await store.open()

        with raw(path) as db:
            indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}

        assert {"changes_by_decision", "audit_by_chat"} <= indexes
        assert user_version(path) == SCHEMA_VERSION

    async def test_refuses_a_newer_schema(self, path: Path) -> None:
        """A file from a newer voicecoder is refused with a clear error and left untouched."""
        path.parent.mkdir(parents=True)
        with raw(path) as db:
            db.execute("CREATE TABLE future (x)")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        store = SqliteStateStore(path)

        with pytest.raises(StateStoreError) as caught:
            await store.load_session(CHAT)
        await store.close()

        message = str(caught.value)
        assert str(path) in message
        assert f"schema version {SCHEMA_VERSION + 1}" in message
        assert "newer voicecoder" in message
        assert user_version(path) == SCHEMA_VERSION + 1
        with raw(path) as db:
            assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["future"]

    async def test_data_dir_under_a_file_is_an_actionable_error(self, tmp_path: Path) -> None:
        """When the data dir cannot be created, the error names the path and asks about the data dir."""
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("a file where the data dir should be")
        store = SqliteStateStore(blocker / "state.sqlite3")

        with pytest.raises(StateStoreError) as caught:
            await store.save_session(Session(chat_id=CHAT))
        await store.close()

        assert str(blocker / "state.sqlite3") in str(caught.value)
        assert "Is the data dir writable" in str(caught.value)
        assert isinstance(caught.value.__cause__, OSError)

    @pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
    async def test_unwritable_data_dir_is_an_actionable_error(self, tmp_path: Path) -> None:
        """A read-only data dir gives a StateStoreError that names the file and asks about the data dir."""
        data = tmp_path / "ro"
        data.mkdir()
        data.chmod(0o500)
        store = SqliteStateStore(data / "state.sqlite3")
        try:
            with pytest.raises(StateStoreError) as caught:
                await store.open()
        finally:
            data.chmod(0o700)
            await store.close()

        assert str(data / "state.sqlite3") in str(caught.value)
        assert "Is the data dir writable" in str(caught.value)

    async def test_a_file_that_is_not_a_database_is_an_error(self, path: Path) -> None:
        """Garbage at the path is a StateStoreError naming the file, not a crash."""
        path.parent.mkdir(parents=True)
        path.write_bytes(b"this is not sqlite, just bytes " * 100)
        store = SqliteStateStore(path)

        with pytest.raises(StateStoreError) as caught:
            await store.load_session(CHAT)
        await store.close()

        assert str(path) in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)

    async def test_uses_a_write_ahead_log(self, path: Path, store: SqliteStateStore) -> None:
        """The file is in WAL mode, so readers in other processes do not block the bot."""
        await store.open()

        with raw(path) as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]

        assert mode == "wal"

    async def test_save_is_atomic(self, path: Path, store: SqliteStateStore) -> None:
        """When writing the session row fails, its pending change is not written either."""
        good = Session(chat_id=CHAT, turn_count=1)
        await store.save_session(good)
        bad = Session(chat_id=CHAT, turn_count=2**63)  # beyond SQLite's 64-bit integers
        bad.attach(change(1), now=T0)

        with pytest.raises(StateStoreError):
            await store.save_session(bad)

        assert await store.load_session(CHAT) == good
        with raw(path) as db:
            assert db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0

    async def test_refuses_a_pending_change_of_another_chat(self, store: SqliteStateStore) -> None:
        """A session whose pending change belongs to another chat is a StateStoreError, and nothing is saved."""
        session = Session(chat_id=CHAT)
        session.latest_change = change(1, chat=ChatId(5))

        with pytest.raises(StateStoreError, match="belongs to chat 5"):
            await store.save_session(session)

        assert await store.load_session(CHAT) is None

    async def test_closed_store_refuses_work(self, store: SqliteStateStore) -> None:
        """After close(), calls raise StateStoreError; closing again is harmless."""
        await store.save_session(Session(chat_id=CHAT))
        await store.close()

        with pytest.raises(StateStoreError, match="closed"):
            await store.load_session(CHAT)
        await store.close()

    async def test_concurrent_calls_are_serialised(self, store: SqliteStateStore) -> None:
        """Many tasks saving and appending at once all land, each chat with its own state."""
        chats = [ChatId(n) for n in range(1, 41)]

        async def work(chat: ChatId) -> None:
            session = Session(chat_id=chat, turn_count=chat.value)
            session.attach(change(chat.value, chat=chat), now=T0)
            await store.save_session(session)
            await store.append_audit(
                AuditRecord(at=T0, chat_id=chat, user_id=None, action=ACTIONS[chat.value % len(ACTIONS)])
            )

        async with anyio.create_task_group() as tg:
            for chat in chats:
                tg.start_soon(work, chat)
        loaded = [await store.load_session(chat) for chat in chats]
        actions = [[r.action for r in await store.audit_trail(chat)] for chat in chats]

        assert [(s.turn_count, s.latest_change.id.value) if s and s.latest_change else None for s in loaded] == [
            (n, f"{n:08x}") for n in range(1, 41)
        ]
        assert actions == [[ACTIONS[n % len(ACTIONS)]] for n in range(1, 41)]

    async def test_diagnose_reports_version_and_mode(self, path: Path, store: SqliteStateStore) -> None:
        """diagnose() names the file, the schema version and the journal mode."""
        await store.save_session(Session(chat_id=CHAT))

        [check] = await store.diagnose()

        assert check.ok
        assert check.detail == f"{path}: schema v{SCHEMA_VERSION}, 1 session(s), journal wal"

    async def test_diagnose_reports_failure_with_a_fix(self, tmp_path: Path) -> None:
        """diagnose() turns an unusable path into a failed check with a fix instead of raising."""
        (tmp_path / "file").write_text("x")
        store = SqliteStateStore(tmp_path / "file" / "state.sqlite3")

        [check] = await store.diagnose()
        await store.close()

        assert not check.ok
        assert check.fix is not None
        assert str(tmp_path / "file" / "state.sqlite3") in check.detail


class TestRecentChanges:
    async def test_superseded_change_enters_history(self, store: SqliteStateStore) -> None:
        """A change replaced by a newer one is recorded as superseded, decided when the newer one was created."""
        session = Session(chat_id=CHAT)
        session.attach(change(1), now=T0)
        await store.save_session(session)
        later = T0 + timedelta(minutes=3)

        session.attach(change(2, at=later), now=later)
        await store.save_session(session)
        [superseded] = await store.recent_changes(CHAT)

        assert (superseded.id, superseded.status, superseded.decided_at, superseded.decided_by) == (
            ChangeId("00000001"),
            ChangeStatus.SUPERSEDED,
            later,
            None,
        )

    async def test_cleared_pending_is_superseded_at_last_activity(self, store: SqliteStateStore) -> None:
        """A pending change dropped without a successor is superseded at the session's last activity."""
        session = Session(chat_id=CHAT)
        session.attach(change(1), now=T0)
        await store.save_session(session)
        later = T0 + timedelta(minutes=9)

        session.record_turn(None, now=later)
        session.latest_change = None
        await store.save_session(session)

        assert [(c.status, c.decided_at) for c in await store.recent_changes(CHAT)] == [
            (ChangeStatus.SUPERSEDED, later)
        ]

    async def test_history_is_latest_decision_first(self, store: SqliteStateStore) -> None:
        """Approved, rejected and superseded changes come back newest decision first; pending ones not at all."""
        session = Session(chat_id=CHAT)
        for n, decide in enumerate(("approve", "reject", "supersede", None), start=1):
            at = T0 + timedelta(hours=n)
            c = change(n, at=at)
            session.attach(c, now=at)
            if decide == "approve":
                c.approve(ALICE, commit(at), now=at + timedelta(minutes=1))
            elif decide == "reject":
                c.reject(ALICE, now=at + timedelta(minutes=1))
            await store.save_session(session)

        history = await store.recent_changes(CHAT)

        assert [(c.id.value, c.status) for c in history] == [
            ("00000003", ChangeStatus.SUPERSEDED),
            ("00000002", ChangeStatus.REJECTED),
            ("00000001", ChangeStatus.APPROVED),
        ]
        assert history[2].commit == commit(T0 + timedelta(hours=1))

    async def test_orders_by_instant_not_by_text(self, store: SqliteStateStore) -> None:
        """Decisions in different UTC offsets are ordered by when they happened."""
        early_in_tokyo = datetime(2026, 5, 4, 12, 0, tzinfo=timezone(timedelta(hours=9)))  # 03:00Z
        later_in_utc = datetime(2026, 5, 4, 4, 0, tzinfo=UTC)
        for n, decided in ((1, later_in_utc), (2, early_in_tokyo)):
            session = (await store.load_session(CHAT)) or Session(chat_id=CHAT)
            c = change(n)
            session.attach(c, now=decided)
            c.reject(ALICE, now=decided)
            await store.save_session(session)

        history = await store.recent_changes(CHAT)

        assert [c.decided_at for c in history] == [later_in_utc, early_in_tokyo]

    async def test_limit_and_isolation(self, store: SqliteStateStore) -> None:
        """The limit keeps the newest decisions, and another chat's history never shows."""
        for chat in (CHAT, ChatId(99)):
            session = Session(chat_id=chat)
            for n in range(1, 6):
                at = T0 + timedelta(minutes=n)
                c = change(n, chat=chat, at=at)
                session.attach(c, now=at)
                c.reject(ALICE, now=at)
                await store.save_session(session)

        history = await store.recent_changes(CHAT, 2)

        assert [(c.chat_id, c.id.value) for c in history] == [(CHAT, "00000005"), (CHAT, "00000004")]
        assert await store.recent_changes(CHAT, 0) == []


# Runs in a child process: saves a session and an audit record, says so, then exits or hangs.
WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    import anyio
    from voicecoder.adapters.sqlite.state_store import SqliteStateStore
    from voicecoder.domain.model import *

    async def main(path, mode):
        now = datetime.now(UTC)
        store = SqliteStateStore(path)
        session = Session(chat_id=ChatId(-1001234))
        session.record_turn("child", now=now)
        session.attach(PendingChange(
            id=ChangeId("c0c0c0c0"), turn_id=TurnId("child"), chat_id=session.chat_id,
            prompt=Prompt.typed("written by a child"), baseline=Baseline(TurnId("child"), "base"),
            diff=Diff.empty(), created_at=now), now=now)
        await store.save_session(session)
        await store.append_audit(AuditRecord(at=now, chat_id=session.chat_id, user_id=None, action=AuditAction.CHANGE))
        if mode == "exit":
            await store.close()
            return
        sys.stdout.write("saved\\n")
        sys.stdout.flush()
        time.sleep(600)

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)
