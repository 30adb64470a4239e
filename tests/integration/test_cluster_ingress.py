"""
`voicecoder serve --role ingress`: stateless replicas in front of one PostgreSQL, as real subprocesses.

Each replica authenticates (the secret header), validates, stores the update with its commit on disk, and only
then answers 200; when PostgreSQL cannot be written the answer is 503 + Retry-After, never a 500, and the
DATABASE_URL's password never shows in what the process prints.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiohttp
import anyio
import psycopg

from tests.cluster_rig import SECRET_HEADER, WEBHOOK_SECRET, RoleProcess, role_environment, running_role
from tests.loopback import free_port, wait_http
from tests.serve_rig import run_cli
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.bootstrap import build_container
from voicecoder.config import Config
from voicecoder.testing.postgres_server import PostgresServer


def update(update_id: int, chat: int = 42, text: str = "hello") -> bytes:
    sender = {"id": chat, "first_name": "D"}
    message = {"message_id": update_id, "date": 0, "chat": {"id": chat, "type": "private"}, "from": sender}
    return json.dumps({"update_id": update_id, "message": {**message, "text": text}}).encode()


async def post(http: aiohttp.ClientSession, replica: RoleProcess, body: bytes, secret: str = WEBHOOK_SECRET) -> int:
    async with http.post(replica.hook, data=body, headers={SECRET_HEADER: secret}) as response:
        await response.read()
        return response.status


def stored(database_url: str) -> dict[int, tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT update_id, lane, state FROM voicecoder_inbox").fetchall()
    return {int(u): (str(lane), str(state)) for u, lane, state in rows}


async def test_two_replicas_store_every_update_once(tmp_path: Path, database_url: str) -> None:
    """Both replicas take updates into one inbox; a redelivery through the other replica is a duplicate."""
    with (
        running_role(tmp_path, "ingress", database_url, name="a") as a,
        running_role(tmp_path, "ingress", database_url, name="b") as b,
    ):
        await wait_http(a.url + "/readyz")
        await wait_http(b.url + "/readyz")
        async with aiohttp.ClientSession() as http:
            statuses = [await post(http, (a, b)[i % 2], update(i, chat=100 + i % 3)) for i in range(1, 21)]
            again = [await post(http, (b, a)[i % 2], update(i, chat=100 + i % 3)) for i in range(1, 21)]

            async def deliver_to(replica: RoleProcess) -> None:
                assert await post(http, replica, update(99)) == 200

            async with anyio.create_task_group() as tg:
                for replica in (a, b, a, b):
                    tg.start_soon(deliver_to, replica)
            refused = await post(http, a, update(500), secret="wrong-secret")
            malformed = await post(http, b, b'{"update_id": "seven"}')

        rows = stored(database_url)
        assert statuses == again == [200] * 20
        assert sorted(rows) == [*range(1, 21), 99]
        assert rows[4] == ("101:message", "pending")
        assert (refused, malformed) == (401, 400)
        for replica in (a, b):
            assert replica.stop() == 0
            assert "Traceback" not in replica.output()


async def test_a_database_that_cannot_be_written_is_503_then_heals(
    tmp_path: Path, postgres_server: PostgresServer, database_url: str
) -> None:
    """Paused or killed PostgreSQL: 503 + Retry-After (never 200 without a commit, never 500); then 200 again."""
    with running_role(tmp_path, "ingress", database_url, name="a") as replica:
        await wait_http(replica.url + "/readyz")
        async with aiohttp.ClientSession() as http:
            assert await post(http, replica, update(1)) == 200

            postgres_server.signal_all(signal.SIGSTOP)
            try:
                with anyio.fail_after(30):
                    async with http.post(
                        replica.hook, data=update(2), headers={SECRET_HEADER: WEBHOOK_SECRET}
                    ) as paused:
                        paused_status, retry_after = paused.status, paused.headers.get("Retry-After")
                    async with http.get(replica.url + "/readyz") as ready:
                        ready_status = ready.status
            finally:
                postgres_server.signal_all(signal.SIGCONT)
            with anyio.fail_after(30):
                while await post(http, replica, update(3)) != 200:
                    await anyio.sleep(0.2)

            await anyio.to_thread.run_sync(postgres_server.kill)
            killed_status = await post(http, replica, update(4))
            await anyio.to_thread.run_sync(postgres_server.start)
            with anyio.fail_after(30):
                while await post(http, replica, update(4)) != 200:
                    await anyio.sleep(0.2)

        assert (paused_status, retry_after, ready_status) == (503, "5", 503)
        assert killed_status == 503
        assert {1, 3, 4} <= set(stored(database_url))
        output = replica.output()
        assert postgres_server.password not in output
        assert "Traceback" not in output or "StateStoreError" in output  # the 503s are logged, never a crash


async def test_the_role_needs_a_database_and_a_shared_identity(tmp_path: Path, database_url: str) -> None:
    """No DATABASE_URL, no WEBHOOK_SECRET, a URL that is not PostgreSQL: one ❌ line naming the fix, exit 2."""
    cases = {
        "DATABASE_URL": role_environment(tmp_path, None, free_port()),
        "WEBHOOK_PATH and WEBHOOK_SECRET": {
            **role_environment(tmp_path, database_url, free_port()),
            "WEBHOOK_SECRET": "",
        },
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE": role_environment(
            tmp_path, "mysql://root:hunter2-secret@db/x", free_port()
        ),
    }
    for expected, env in cases.items():
        code, out, err = await run_cli(tmp_path, {k: v for k, v in env.items() if v}, "serve", "--role", "ingress")
        assert code == 2, out + err
        assert out.startswith("❌ ")
        assert expected in out
        assert "hunter2-secret" not in out + err


async def test_an_unreachable_database_at_start_is_one_line_without_the_password(tmp_path: Path) -> None:
    """A wrong port: exit 1 with where it tried and what to check; the password is never printed."""
    url = f"postgresql://voicecoder:pa55-word-secret@127.0.0.1:{free_port()}/cluster"
    with running_role(tmp_path, "ingress", url, name="a") as replica:
        code = replica.process.wait(timeout=60)
    output = replica.output()
    assert code == 1, output
    assert "❌ Cannot connect to PostgreSQL at postgresql://voicecoder@127.0.0.1" in output
    assert "pa55-word-secret" not in output
    assert "Traceback" not in output


def test_without_database_url_nothing_changes(tmp_path: Path) -> None:
    """The default role without DATABASE_URL keeps its SQLite inbox in DATA_DIR (the embedded mode)."""
    config = Config.from_mapping({"DATA_DIR": str(tmp_path / "data")})
    inbox = build_container(config).core.inbox()

    assert isinstance(inbox, SqliteInbox)
    assert inbox.path == tmp_path / "data" / "inbox.sqlite3"
