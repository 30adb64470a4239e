"""
Long polling against getUpdates servers that are not Telegram (ADR 0044): a real aiohttp server on 127.0.0.1
answers from a script, the real poller, SQLite inbox and dispatcher take the updates.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from tests.ingress_rig import running_polling
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.telegram.api import RetryPolicy, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.polling import MIN_EMPTY_INTERVAL_S, WEBHOOK_IS_SET, Backoff, run_polling
from voicecoder.adapters.telegram.routing import lane_of
from voicecoder.domain.errors import StartupError

TOKEN = "123:get-updates"
FAST_BACKOFF = Backoff(first=0.01, cap=0.05, jitter=0)
TERMINATED = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)

Script = Callable[[int, dict[str, Any]], Awaitable[tuple[int, Any]]]
"""(call number from 1, getUpdates parameters) -> (HTTP status, JSON answer)."""


def message(update_id: int) -> dict[str, Any]:
    sender = {"id": 1, "is_bot": False, "first_name": "Ada"}
    text = {"message_id": update_id, "date": 0, "chat": {"id": 1, "type": "private"}, "from": sender}
    return {"update_id": update_id, "message": {**text, "text": f"m{update_id}"}}


def ok(*ids: int) -> tuple[int, Any]:
    return 200, {"ok": True, "result": [message(i) for i in ids]}


class GetUpdatesServer:
    """getUpdates answered by *script*; getWebhookInfo says no webhook; records each call's time and parameters."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[tuple[float, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/bot{token}/{method}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await request.json() if request.can_read_body else {}
        if method == "getWebhookInfo":
            return web.json_response({"ok": True, "result": {"url": "", "pending_update_count": 0}})
        if method != "getUpdates":
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        self.calls.append((asyncio.get_running_loop().time(), params))
        status, body = await self.script(len(self.calls), params)
        return web.json_response(body, status=status)


@asynccontextmanager
async def serving(script: Script) -> AsyncIterator[tuple[GetUpdatesServer, TelegramBotApi]]:
    server = GetUpdatesServer(script)
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with TelegramBotApi(TOKEN, base_url=url, retry=RetryPolicy(attempts=1)) as api:
            yield server, api
    finally:
        await runner.cleanup()


class Seen:
    def __init__(self) -> None:
        self.ids: list[int] = []

    async def __call__(self, update: dict[str, Any]) -> None:
        self.ids.append(update["update_id"])


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


@pytest.fixture(name="inbox")
async def _inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    async with SqliteInbox(tmp_path / "inbox.db") as inbox:
        yield inbox


async def test_out_of_order_and_repeated_ids_are_each_processed_once(inbox: SqliteInbox) -> None:
    """
    Out of order and repeated in one answer, then sent again with a new one by a server that ignores ``offset``
    (after the inbox purged the finished rows): each update runs once, and the offset is the highest id + 1.
    """
    purged = asyncio.Event()

    async def script(call: int, _params: dict[str, Any]) -> tuple[int, Any]:
        if call == 1:
            return ok(7, 5, 6, 5)
        await purged.wait()
        return ok(5, 6, 7, 8)

    seen = Seen()
    async with serving(script) as (server, api):
        async with running_polling(
            api, inbox, seen, poll_timeout_s=1, backoff=FAST_BACKOFF, min_empty_interval_s=0.01
        ) as poller:
            await until(lambda: len(seen.ids) == 3)
            deleted = 0
            while deleted < 3:  # the done marks are committed on their own shortly after
                deleted += await inbox.purge_finished(older_than_s=-60)
                await anyio.sleep(0.01)
            purged.set()
            await until(lambda: len(server.calls) >= 4)
        offsets = [params.get("offset") for _, params in server.calls]

    assert sorted(seen.ids) == [5, 6, 7, 8]
    assert offsets[:3] == [None, 8, 9]
    assert await inbox.offset() == 9
    assert poller.stats.duplicates >= 4  # 5 twice in the first answer; 5, 6, 7 again in every later one


async def test_a_server_that_ignores_the_long_poll_timeout_is_not_polled_in_a_loop(inbox: SqliteInbox) -> None:
    """Empty answers that come back at once: the poller's requests stay at least a second apart."""

    async def script(_call: int, _params: dict[str, Any]) -> tuple[int, Any]:
        return ok()

    async with serving(script) as (server, api):
        async with running_polling(api, inbox, Seen(), backoff=FAST_BACKOFF):
            await until(lambda: len(server.calls) >= 3)
        times = [at for at, _ in server.calls]

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= MIN_EMPTY_INTERVAL_S
    assert [params["timeout"] for _, params in server.calls[:2]] == [0, 30]


async def test_another_poller_is_one_clear_error_line_then_polling_resumes(
    inbox: SqliteInbox, caplog: pytest.LogCaptureFixture
) -> None:
    """409 "terminated by other getUpdates request": one error line that says what to stop; retried until it ends."""
    caplog.set_level(logging.INFO, logger="voicecoder")
    states: list[str] = []
    holder: list[Any] = []

    async def script(call: int, _params: dict[str, Any]) -> tuple[int, Any]:
        if holder:
            states.append(holder[0].state())
        if call <= 3:
            return 409, {"ok": False, "error_code": 409, "description": TERMINATED}
        return ok(1) if call == 4 else ok()

    seen = Seen()
    async with (
        serving(script) as (_server, api),
        running_polling(api, inbox, seen, poll_timeout_s=1, backoff=FAST_BACKOFF) as poller,
    ):
        holder.append(poller)
        await until(lambda: seen.ids == [1])

    mine = [r for r in caplog.records if r.name.startswith("voicecoder.adapters.telegram.polling")]
    errors = [r.getMessage() for r in mine if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert "another process is polling this bot" in errors[0]
    assert "Stop it" in errors[0]
    assert "\n" not in errors[0]
    assert any(s.startswith("another process polls with this token") for s in states)
    assert any("answers again after 3 failed attempt(s)" in r.getMessage() for r in mine)


async def test_a_webhook_conflict_from_get_updates_stops_with_the_fix(inbox: SqliteInbox) -> None:
    """A server whose getWebhookInfo says "none" but whose getUpdates says a webhook is active: stop, naming the fix."""

    async def script(_call: int, _params: dict[str, Any]) -> tuple[int, Any]:
        return 409, {"ok": False, "error_code": 409, "description": WEBHOOK_ACTIVE}

    async with serving(script) as (server, api):
        dispatcher = UpdateDispatcher(inbox, Seen())
        with anyio.fail_after(10), pytest.raises(StartupError) as info:
            await run_polling(api, inbox=inbox, dispatcher=dispatcher, lane_of=lane_of, handle_signals=False)

    assert str(info.value) == WEBHOOK_IS_SET
    assert len(server.calls) == 1
    assert json.dumps(server.calls[0][1])  # the one getUpdates that told it
