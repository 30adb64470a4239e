"""
What the webhook ingress tests share: a real webhook server on 127.0.0.1 over a real SQLite inbox, and its client
side.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from tests.ingress_rig import start_webhook
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.telegram.dispatcher import DispatchStats, UpdateDispatcher
from voicecoder.adapters.telegram.webhook import (
    SECRET_HEADER,
    IngressStats,
    WebhookSettings,
)

SECRET = "s3cr3t-Token_for-tests"
PATH = "/tg-hook-for-tests"
REPO = Path(__file__).resolve().parents[2]


def lane_of(update: dict[str, Any]) -> tuple[int, str] | None:
    """The routing rule of the Telegram layer: a chat's messages, and a chat's button presses, each on a lane."""
    if "message" in update:
        chat = update["message"].get("chat")
        return (int(chat["id"]), "message") if isinstance(chat, dict) else None
    if "callback_query" in update:
        message = update["callback_query"].get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            return int(message["chat"]["id"]), "callback"
        return int(update["callback_query"]["from"]["id"]), "callback"
    return None


def text_update(update_id: int, chat: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": chat, "is_bot": False, "first_name": "Ada"},
            "chat": {"id": chat, "type": "private", "first_name": "Ada"},
            "date": 1764000000,
            "text": text,
        },
    }


class Processed:
    """The bot's processing side: records each update it handled, can be told to fail or block."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.by_chat: dict[int, list[int]] = {}
        self.fail_times: dict[int, int] = {}
        self.gate: anyio.Event | None = None
        self.gates: dict[int, anyio.Event] = {}

    async def __call__(self, update: dict[str, Any]) -> None:
        update_id = update["update_id"]
        if self.gate is not None:
            await self.gate.wait()
        if update_id in self.gates:
            await self.gates[update_id].wait()
        if self.fail_times.get(update_id, 0) > 0:
            self.fail_times[update_id] -= 1
            raise RuntimeError("handler failed")
        self.ids.append(update_id)
        chat = lane_of(update)
        assert chat is not None
        self.by_chat.setdefault(chat[0], []).append(update_id)


class Bot:
    def __init__(self, url: str, inbox: SqliteInbox, dispatcher: UpdateDispatcher, processed: Processed) -> None:
        self.url = url
        self.inbox = inbox
        self.dispatcher = dispatcher
        self.processed = processed


@asynccontextmanager
async def running_bot(
    inbox_path: Path,
    processed: Processed,
    *,
    settings: WebhookSettings | None = None,
    grace_s: float = 5.0,
    max_attempts: int = 3,
    stats: IngressStats | None = None,
    retention_s: float | None = 86400.0,
) -> AsyncIterator[Bot]:
    settings = settings or WebhookSettings(secret_token=SECRET, path=PATH)
    stop = anyio.Event()
    async with SqliteInbox(inbox_path) as inbox:
        dispatcher = UpdateDispatcher(
            inbox, processed, max_attempts=max_attempts, retry_delays=(0.01,), grace_s=grace_s, stats=DispatchStats()
        )
        async with anyio.create_task_group() as tg:
            port = await start_webhook(
                tg,
                settings,
                inbox=inbox,
                dispatcher=dispatcher,
                stop=stop,
                lane_of=lane_of,
                stats=stats,
                retention_s=retention_s,
                housekeeping_every_s=0.02,
            )
            try:
                yield Bot(f"http://127.0.0.1:{port}", inbox, dispatcher, processed)
            finally:
                stop.set()


async def post(
    session: aiohttp.ClientSession,
    bot: Bot,
    payload: Any,
    *,
    secret: str | None = SECRET,
    path: str = PATH,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if secret is not None:
        all_headers[SECRET_HEADER] = secret
    data = raw if raw is not None else json.dumps(payload).encode()
    async with session.post(bot.url + path, data=data, headers=all_headers) as response:
        await response.read()
        return response.status


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
