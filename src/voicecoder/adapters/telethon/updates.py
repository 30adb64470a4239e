"""
`TelethonUpdates`: voicecoder's handlers on your own ``telethon.TelegramClient``.

`register` adds two handlers with Telethon's ``add_event_handler``: private messages (text, commands, voice notes,
audio files) and presses of voicecoder's own buttons (callback data that `decode_callback` understands; other
bots' buttons are left to your handlers). Each update becomes a record (`voicecoder.adapters.telethon.records`)
that `TelethonUpdateHandler` acts on. Telethon runs each update in its own task unless the client was made with
``sequential_updates=True``, so the default intake keeps order itself: one lane per chat for messages, another for
button presses, so ⏹ Cancel never waits behind a running turn, and a third for replies to an open tool question
(they answer it while the turn that asked holds the message lane). `voicecoder serve --transport telethon` passes an
*intake* that stores each record in its durable inbox first. Asyncio-only, like Telethon.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from telethon import events

from voicecoder.adapters.telegram.updates import DEFAULT_MAX_BYTES
from voicecoder.adapters.telethon.handler import TelethonUpdateHandler
from voicecoder.adapters.telethon.records import (
    CallbackIds,
    TelethonUpdate,
    callback_update,
    message_update,
    reply_to_of,
)
from voicecoder.domain.app import VoiceCoderApp
from voicecoder.domain.callbacks import decode_callback
from voicecoder.domain.errors import MalformedUpdateError, VoicecoderError
from voicecoder.domain.model import ChatId
from voicecoder.domain.ports import Messenger

__all__ = ["Intake", "TelethonUpdates"]

logger = logging.getLogger(__name__)

Intake = Callable[[TelethonUpdate], Awaitable[None]]
"""Takes each routed update; the default handles it at once, in order per lane."""


def _is_ours(data: bytes | None) -> bool:
    try:
        decode_callback(data or b"")
    except MalformedUpdateError:
        return False
    return True


class TelethonUpdates:
    """
    Routes a Telethon client's updates to *app*; `register` / `unregister` attach and detach the handlers.

    *max_bytes* caps recordings (checked on the declared size before any download). Replies produced here go
    through *messenger* (default: a `TelethonMessenger` on the same client); button presses are answered through
    it too. *intake* replaces the in-memory, per-lane handling (the standalone server stores updates first).
    """

    def __init__(
        self,
        app: VoiceCoderApp,
        client: Any,
        *,
        messenger: Messenger | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        intake: Intake | None = None,
    ) -> None:
        self._client = client
        self._app = app
        self.handler = TelethonUpdateHandler(app, client, messenger=messenger, max_bytes=max_bytes)
        self._intake: Intake = intake if intake is not None else self._in_order
        self._lanes: dict[str, anyio.Lock] = collections.defaultdict(anyio.Lock)
        self._ids = CallbackIds()
        self._taking = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._builders = (
            (self._on_message, events.NewMessage(incoming=True, func=lambda e: e.is_private)),
            (self._on_button, events.CallbackQuery(data=_is_ours)),
        )

    def register(self) -> None:
        """Add voicecoder's handlers to the client (call once)."""
        for callback, builder in self._builders:
            self._client.add_event_handler(callback, builder)

    def unregister(self) -> None:
        """Remove the handlers `register` added; the client and your other handlers stay as they are."""
        for callback, builder in self._builders:
            self._client.remove_event_handler(callback, builder)

    async def drain(self) -> None:
        """Wait until no update is being taken (with the default intake: handled) any more."""
        await self._idle.wait()

    async def _on_message(self, event: Any) -> None:
        replied = reply_to_of(event.message)
        answers = replied is not None and self._app.is_question(ChatId(int(event.chat_id)), replied)
        await self._take(message_update(event, answers_question=answers))

    async def _on_button(self, event: Any) -> None:
        await self._take(callback_update(event, self._ids.next()))

    async def _take(self, update: TelethonUpdate) -> None:
        self._taking += 1
        if self._idle.is_set():
            self._idle = anyio.Event()
        try:
            await self._intake(update)
        finally:
            self._taking -= 1
            if self._taking == 0:
                self._idle.set()

    async def _in_order(self, update: TelethonUpdate) -> None:
        # anyio.Lock is FIFO: Telethon starts the tasks in arrival order, so they run in that order.
        async with self._lanes[update.lane]:
            try:
                await self.handler(update.record)
            except VoicecoderError as exc:
                logger.warning("telethon: update %s (lane %s) failed: %s", update.update_id, update.lane, exc)
