"""The Bot API simulator's state: what it stores, how tests script faults and read what happened."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import secrets
import time
from typing import Any

import aiohttp
import attrs
from aiohttp import web

from voicecoder.simulators.bot_api_records import (
    DEFAULT_TOKEN,
    DEFAULT_USER,
    JSON,
    ApiCall,
    BotMessage,
    CallbackState,
    FakeUser,
    Fault,
    PendingUpdate,
    StoredFile,
    WebhookState,
)

logger = logging.getLogger(__name__)


class BotApiCore:
    """The state of a `FakeBotApi` and the parts every other piece of it uses."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        time_scale: float = 1.0,
        webhook_timeout: float = 60.0,
        webhook_max_attempts: int | None = None,
        strict_chats: bool = True,
        first_update_id: int = 512_349_870,
        port: int = 0,
    ) -> None:
        self.token = token
        self.time_scale = time_scale
        self.webhook_timeout = webhook_timeout
        self.webhook_max_attempts = webhook_max_attempts
        self.strict_chats = strict_chats
        self.calls: list[ApiCall] = []
        self.messages: dict[tuple[int, int], BotMessage] = {}
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[str, list[JSON]] = {}
        self.webhook_deliveries: list[tuple[int, int | str]] = []  # (update_id, HTTP status or error)
        self.dropped_updates: list[int] = []
        self.html_errors: list[str] = []
        """Every "can't parse entities" this server answered, so a test can assert the bot never hit one."""
        self.downloads: list[str] = []  # file paths fetched from /file/bot<token>/...
        # What DNS + a TLS-terminating proxy would do for a public webhook URL: host → local base URL, path kept.
        self.routes: dict[str, str] = {}
        # What the webhook's host resolves to, reported as getWebhookInfo's ip_address (IP literals report themselves).
        self.dns: dict[str, str] = {}
        self._chats: dict[int, JSON] = {}
        #: Forum topics per chat: message_thread_id → name (created by the user or by createForumTopic).
        self.topics: dict[int, dict[int, str]] = {}
        self._next_message_id: dict[int, int] = {}
        self._update_ids = itertools.count(first_update_id)
        self._updates: list[PendingUpdate] = []
        self._allowed_updates: list[str] | None = None
        self._webhook: WebhookState | None = None
        self._last_error_date: int | None = None
        self._last_error_message: str | None = None
        self._callbacks: dict[str, CallbackState] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._transcript: list[JSON] = []
        self._poll_generation = 0
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._changed: asyncio.Condition | None = None
        self._wake: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = port

    # --- scripting -----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        code: int = 429,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next *times* calls of *method* fail with *code* (429 carries retry_after and Retry-After)."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                500: "Internal Server Error: restart",
                502: "Bad Gateway",
                403: "Forbidden: bot was blocked by the user",
            }.get(code, f"Error {code}")
        fault = Fault(code, description, retry_after if code == 429 else None)
        self._faults.setdefault(method.lower(), []).extend(attrs.evolve(fault) for _ in range(times))

    def hang_next(self, method: str, times: int = 1) -> None:
        """Make the next *times* calls of *method* never answer (until the server closes)."""
        self._faults.setdefault(method.lower(), []).extend(Fault(0, "", hang=True) for _ in range(times))

    def add_chat(self, user: FakeUser = DEFAULT_USER) -> JSON:
        """Make the private chat with *user* known (the user started the bot)."""
        chat = user.chat_json()
        self._chats.setdefault(user.id, chat)
        return self._chats[user.id]

    def add_file(
        self,
        data: bytes,
        *,
        kind: str = "voice",
        extension: str = "oga",
        declared_size: int | None = None,
        mime_type: str | None = None,
        file_name: str | None = None,
    ) -> StoredFile:
        """Store a file the way Telegram does; *declared_size* fakes a size without holding the bytes."""
        unique = base64.urlsafe_b64encode(hashlib.sha256(data + secrets.token_bytes(4)).digest()[:9]).decode()
        file_id = "AwACAgIAAxkB" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            file_path=f"{kind}/file_{len(self.files)}.{extension}",
            data=data,
            size=declared_size if declared_size is not None else len(data),
            mime_type=mime_type,
            file_name=file_name,
        )
        self.files[file_id] = stored
        return stored

    def transcript(self, *, since: int = 0, chat_id: int | None = None) -> list[JSON]:
        """What happened, in order: user actions and what the bot sent/edited/answered (``seq`` > *since*)."""
        return [e for e in self._transcript if e["seq"] > since and (chat_id is None or e.get("chat_id") == chat_id)]

    async def wait_transcript(self, *, since: int = 0, chat_id: int | None = None, within: float = 10.0) -> list[JSON]:
        """Like `transcript`, but waits up to *within* seconds for at least one new entry."""
        assert self._changed is not None
        deadline = time.monotonic() + within
        async with self._changed:
            while not (found := self.transcript(since=since, chat_id=chat_id)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)
        return found

    def message(self, message_id: int, chat_id: int = DEFAULT_USER.id) -> BotMessage:
        """
        The message *message_id* of *chat_id* in its current (edited) state.

        Raises:
            LookupError: There is no such message.
        """
        msg = self.messages.get((chat_id, message_id))
        if msg is None:
            raise LookupError(f"no message {message_id} in chat {chat_id}")
        return msg

    def bot_messages(self, chat_id: int = DEFAULT_USER.id) -> list[BotMessage]:
        """The bot's messages in *chat_id*, oldest first, in their current (edited) state."""
        return sorted(
            (m for (c, _), m in self.messages.items() if c == chat_id and m.from_bot), key=lambda m: m.message_id
        )

    def calls_to(self, method: str) -> list[ApiCall]:
        """The recorded calls of *method* (case-insensitive)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def callback_answered(self, query_id: str) -> bool:
        cb = self._callbacks.get(query_id)
        return cb is not None and cb.answered

    @property
    def pending_update_count(self) -> int:
        return len(self._updates)

    async def drain(self, within: float = 10.0) -> None:
        """
        Wait until every queued update was delivered (or dropped).

        Raises:
            TimeoutError: Updates are still pending after *within* seconds.
        """
        assert self._changed is not None
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: not self._updates)

    async def _enqueue(self, update: JSON, *, queue: int, ttl: float) -> None:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates and kind not in self._allowed_updates:
            logger.debug("fake bot api: %s not in allowed_updates, not queued", kind)
            return
        self._updates.append(PendingUpdate(update, queue, expires_at=time.monotonic() + ttl))
        await self._notify()

    async def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    def _new_message_id(self, chat_id: int) -> int:
        nxt = self._next_message_id.get(chat_id, 1364)
        self._next_message_id[chat_id] = nxt + 1
        return nxt

    def _record(self, side: str, kind: str, chat_id: int | None, **fields: Any) -> None:
        entry: JSON = {"seq": len(self._transcript) + 1, "at": time.time(), "side": side, "kind": kind}
        if chat_id is not None:
            entry["chat_id"] = chat_id
        entry.update(fields)
        self._transcript.append(entry)
