"""
`voicecoder serve --role worker` behind `--role ingress`, as real subprocesses on a real PostgreSQL.

The fake Bot API delivers by webhook to the ingress; two workers of one host (sharing the workspace tree and its
DATA_DIR, so either may own it) compete for the workspace lease. Killing the owner with -9 hands the workspace to
the other after the lease's ttl, at a new epoch; nothing acknowledged is lost or run twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.cluster_rig import (
    TOKEN,
    WEBHOOK_SECRET,
    RoleProcess,
    inbox_rows,
    lease_row,
    running_role,
    running_worker,
    wait_until,
)
from tests.loopback import wait_http
from voicecoder.simulators.bot_api import DEFAULT_USER, FakeBotApi
from voicecoder.testing.postgres_server import PostgresServer


@pytest.fixture(name="bot_api")
async def _bot_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(TOKEN, time_scale=0.02) as api:
        yield api


@contextlib.contextmanager
def worker(tmp_path: Path, database_url: str, bot_api: FakeBotApi, name: str) -> Iterator[RoleProcess]:
    with running_worker(tmp_path, database_url, bot_api.base_url, name, host="h1", users=[DEFAULT_USER.id]) as w:
        yield w


async def bot_replies_to(bot_api: FakeBotApi, text: str, within: float = 30.0) -> list[str]:
    """Send *text*; wait until the bot has sent a message after it; the texts it sent."""
    since = bot_api.transcript()[-1]["seq"] if bot_api.transcript() else 0
    await bot_api.send_text(text)
    found: list[str] = []

    def replied() -> bool:
        found[:] = [e.get("text", "") for e in bot_api.transcript(since=since) if e["side"] == "bot"]
        return bool(found)

    await wait_until("a reply from the bot", replied, within)
    return found


async def test_a_worker_killed_with_9_hands_the_workspace_over_at_a_new_epoch(
    tmp_path: Path, postgres_server: PostgresServer, database_url: str, bot_api: FakeBotApi
) -> None:
    with running_role(tmp_path, "ingress", database_url, name="ingress") as ingress:
        await wait_http(ingress.url + "/readyz")
        async with aiohttp.ClientSession() as http:
            await http.post(
                f"{bot_api.base_url}/bot{TOKEN}/setWebhook", json={"url": ingress.hook, "secret_token": WEBHOOK_SECRET}
            )
        # One after the other: two processes creating the host's SQLite state files at once race in its migration.
        with worker(tmp_path, database_url, bot_api, "w1") as w1:
            await wait_until("a lease owner", lambda: lease_row(database_url)[0] is not None)
            with worker(tmp_path, database_url, bot_api, "w2") as w2:
                await wait_until(
                    "w2 ready", lambda: "waiting for a lease" in w2.output() or w2.process.poll() is not None
                )
                first_owner, first_epoch = lease_row(database_url)
                first = await bot_replies_to(bot_api, "/status")
                # Its "done" is written just after the reply: killed before that, it would run again (at least once).
                await wait_until(
                    "the first update done", lambda: [s for s, _ in inbox_rows(database_url).values()] == ["done"]
                )

                assert first_owner is not None
                owner = next(p for p in (w1, w2) if first_owner in p.output())
                other = w2 if owner is w1 else w1
                killed_at = time.monotonic()
                owner.kill()
                second = await bot_replies_to(bot_api, "/status", within=30)
                failover_s = time.monotonic() - killed_at
                second_owner, second_epoch = lease_row(database_url)

                assert other.process.poll() is None
                output = owner.output() + other.output()

    assert first
    assert second
    # Greater, not exactly +1: a worker starved past its ttl by a loaded machine may lose and retake the lease first.
    assert second_epoch > first_epoch
    assert second_owner != first_owner
    assert failover_s < 20
    rows = inbox_rows(database_url)
    assert [state for state, _ in rows.values()] == ["done"] * len(rows)
    assert all(attempts == 1 for _, attempts in rows.values()), rows
    assert postgres_server.password not in output


async def test_one_process_on_postgresql_keeps_the_embedded_flow(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi
) -> None:
    """`serve` (role all) with DATABASE_URL: one process, its inbox in PostgreSQL, the in-process dispatcher."""
    with running_role(
        tmp_path,
        "all",
        database_url,
        name="all",
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=bot_api.base_url,
        ALLOWED_USER_IDS=str(DEFAULT_USER.id),
        STT_PROVIDER="local",
    ) as single:
        await wait_http(single.url + "/readyz")
        async with aiohttp.ClientSession() as http:
            await http.post(
                f"{bot_api.base_url}/bot{TOKEN}/setWebhook", json={"url": single.hook, "secret_token": WEBHOOK_SECRET}
            )
        replies = await bot_replies_to(bot_api, "/status")
        await wait_until("the update done", lambda: [s for s, _ in inbox_rows(database_url).values()] == ["done"])

    assert replies
    assert not (tmp_path / "all" / "data" / "inbox.sqlite3").exists()
