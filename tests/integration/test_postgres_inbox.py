"""The PostgreSQL inbox against a real server: what the contract cannot say (crashes, pauses, settings, secrets)."""

from __future__ import annotations

import json
import os
import pwd
import signal
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from voicecoder.adapters.postgres.inbox import PostgresInbox
from voicecoder.domain.errors import StateStoreError
from voicecoder.testing.postgres_server import PostgresServer


def _body(update_id: int) -> bytes:
    return json.dumps({"update_id": update_id, "message": {"text": f"m{update_id}"}}).encode()


def test_the_server_runs_as_an_unprivileged_user(postgres_server: PostgresServer) -> None:
    """initdb refuses root: under root the server runs as `postgres`; its data directory is private."""
    pids = postgres_server.pids()
    assert pids, "the session's server is not running"
    owner = Path(f"/proc/{pids[0]}").stat().st_uid
    if os.geteuid() == 0:
        assert pwd.getpwuid(owner).pw_name == "postgres"
    else:
        assert owner == os.geteuid()
    assert postgres_server.data_dir.stat().st_mode & 0o077 == 0


async def test_commits_are_synchronous_whatever_the_database_says(database_url: str) -> None:
    """The 200 waits for the commit to be on disk: the inbox sets synchronous_commit on even where it is off."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        name = admin.execute("SELECT current_database()").fetchone()
        assert name is not None
        admin.execute(f'ALTER DATABASE "{name[0]}" SET synchronous_commit = off')
    with psycopg.connect(database_url) as probe:
        default = probe.execute("SHOW synchronous_commit").fetchone()

    async with PostgresInbox(database_url) as inbox:
        setting: Any = await inbox._call(lambda conn: conn.execute("SHOW synchronous_commit").fetchone())

    assert default == ("off",)
    assert setting == ("on",)


async def test_every_acknowledged_update_survives_kill_9_of_the_server(
    postgres_server: PostgresServer, database_url: str
) -> None:
    """Every put that returned is in the table after the server is killed mid-stream and restarted."""
    acked: list[int] = []
    async with PostgresInbox(database_url, timeout_s=2.0) as inbox:

        async def writer(start: int) -> None:
            for update_id in range(start, start + 10_000, 7):
                try:
                    if await inbox.put(update_id, f"{update_id % 7}:message", _body(update_id)):
                        acked.append(update_id)
                except StateStoreError:
                    return

        async with anyio.create_task_group() as tg:
            for start in range(7):
                tg.start_soon(writer, start)
            with anyio.fail_after(30):
                while len(acked) < 300:
                    await anyio.sleep(0.005)
            await anyio.to_thread.run_sync(postgres_server.kill)
        await anyio.to_thread.run_sync(postgres_server.start)

        with anyio.fail_after(30):
            while True:  # the inbox reconnects by itself on the next request
                try:
                    stored = {item.update_id for item in await inbox.pending()}
                    break
                except StateStoreError:
                    await anyio.sleep(0.1)

    assert len(acked) >= 300
    assert set(acked) <= stored


async def test_a_paused_server_is_an_error_within_the_timeout_and_a_resumed_one_works(
    postgres_server: PostgresServer, database_url: str
) -> None:
    """A SIGSTOPped server makes a put fail with StateStoreError after timeout_s (never hang); SIGCONT heals it."""
    async with PostgresInbox(database_url, timeout_s=1.0) as inbox:
        assert await inbox.put(1, "1:message", _body(1))
        postgres_server.signal_all(signal.SIGSTOP)
        try:
            with anyio.fail_after(10), pytest.raises(StateStoreError, match="did not answer within 1 s"):
                await inbox.put(2, "1:message", _body(2))
        finally:
            postgres_server.signal_all(signal.SIGCONT)

        with anyio.fail_after(30):
            fresh = await inbox.put(3, "1:message", _body(3))

        assert fresh is True
        # Update 2 timed out for its caller but may have committed once the server resumed: then a redelivery is
        # a duplicate, never a second row.
        assert {i.update_id for i in await inbox.pending()} <= {1, 2, 3}
        assert await inbox.put(2, "1:message", _body(2)) in {True, False}
        assert [i.update_id for i in await inbox.pending()] == [1, 2, 3]


async def test_errors_never_show_the_password(postgres_server: PostgresServer, database_url: str) -> None:
    """A refused login and an unreachable server are explained by host, port, database and user; no password."""
    wrong = "s3cret-wrong-password"
    with pytest.raises(StateStoreError) as refused:
        await PostgresInbox(postgres_server.url(password=wrong)).open()
    unreachable_url = f"postgresql://voicecoder:{wrong}@127.0.0.1:1/nothing"
    with pytest.raises(StateStoreError) as unreachable:
        await PostgresInbox(unreachable_url).open()

    for error in (refused.value, unreachable.value):
        assert wrong not in str(error)
        assert postgres_server.password not in str(error)
        assert "DATABASE_URL" in str(error)
    assert f"voicecoder@127.0.0.1:{postgres_server.port}" in str(refused.value)
    assert wrong not in repr(PostgresInbox(unreachable_url))
