"""
`TelethonUpdates`: voicecoder's handlers on your own ``telethon.TelegramClient``.

`register` adds three handlers with Telethon's ``add_event_handler``: private text messages (commands and
prompts), voice notes and audio files, and presses of voicecoder's own buttons (callback data that
`decode_callback` understands; other bots' buttons are left to your handlers). Telethon runs each update in its
own task, so the handlers keep order themselves: one lane per chat for messages, another for button presses,
so ⏹ Cancel never waits behind a running turn, and a third for replies to an open tool question (they answer
it while the turn that asked waits in the message lane). Callback queries are answered with Telethon's
``event.answer`` (`VoiceCoder.press` is called with ``answer=False``). Asyncio-only, like Telethon.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import anyio
from telethon import events

from voicecoder.adapters.telethon.messenger import TelethonMessenger
from voicecoder.domain.app import VoiceCoderApp
from voicecoder.domain.callbacks import decode_callback
from voicecoder.domain.errors import AudioTooLargeError, MalformedUpdateError, VoicecoderError
from voicecoder.domain.model import Audio, ChatId, UserId
from voicecoder.domain.ports import Messenger
from voicecoder.domain.replies import ErrorReply

__all__ = ["TelethonUpdates"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DOWNLOAD_FAILED = "I could not download the recording from Telegram. Please send it again."


async def _first_name(event: Any) -> str | None:
    """The sender's first name (Telethon has the user from the update; None if it cannot say)."""
    sender = await event.get_sender()
    name = getattr(sender, "first_name", None)
    return name if isinstance(name, str) else None


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
    through *messenger* (default: a `TelethonMessenger` on the same client).
    """

    def __init__(
        self,
        app: VoiceCoderApp,
        client: Any,
        *,
        messenger: Messenger | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._app = app
        self._client = client
        self._messenger: Messenger = messenger if messenger is not None else TelethonMessenger(client)
        self._max_bytes = max_bytes
        self._lanes: dict[tuple[int, str], anyio.Lock] = collections.defaultdict(anyio.Lock)
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

    async def _on_message(self, event: Any) -> None:
        chat, user = ChatId(int(event.chat_id)), UserId(int(event.sender_id))
        message = event.message
        reply_to: int | None = message.reply_to_msg_id
        lane = "answer" if reply_to is not None and self._app.is_question(chat, reply_to) else "message"
        # anyio.Lock is FIFO: Telethon starts the tasks in arrival order, so they run in that order.
        async with self._lanes[(chat.value, lane)]:
            try:
                if message.voice is not None or message.audio is not None:
                    await self._on_recording(chat, user, message, reply_to, await _first_name(event))
                elif message.media is None and message.raw_text:
                    await self._app.text(
                        chat, user, message.raw_text, user_name=await _first_name(event), reply_to=reply_to
                    )
                elif not self._app.is_authorized(user):
                    await self._app.unauthorized(chat, user)
                else:
                    await self._messenger.send(
                        chat, ErrorReply("I understand text messages and voice notes. Send one of those.")
                    )
            except VoicecoderError as exc:
                logger.warning("telethon: message %s in chat %s failed: %s", event.message.id, chat, exc)

    async def _on_recording(
        self, chat: ChatId, user: UserId, message: Any, reply_to: int | None, user_name: str | None
    ) -> None:
        if not self._app.is_authorized(user):  # never fetch the file of someone who may not use the bot
            await self._app.unauthorized(chat, user)
            return
        file = message.file
        if file.size is not None and file.size > self._max_bytes:
            await self._messenger.send(chat, ErrorReply(str(AudioTooLargeError(file.size, self._max_bytes))))
            return
        try:
            data = await message.download_media(file=bytes)
        except Exception as exc:  # Telethon raises RPC, connection and value errors here
            logger.warning("telethon: voice download failed: %s", type(exc).__name__)
            await self._messenger.send(chat, ErrorReply(DOWNLOAD_FAILED))
            return
        duration = getattr(file, "duration", None)
        audio = Audio(
            data=data,
            mime_type=file.mime_type or "audio/ogg",
            filename=file.name,
            declared_duration_s=float(duration) if duration else None,
        )
        await self._app.voice(chat, user, audio, reply_to=reply_to, user_name=user_name)

    async def _on_button(self, event: Any) -> None:
        chat, user = ChatId(int(event.chat_id)), UserId(int(event.sender_id))
        async with self._lanes[(chat.value, "callback")]:
            try:
                ack = await self._app.press(
                    chat,
                    user,
                    str(event.query.query_id),
                    decode_callback(event.data),
                    answer=False,
                    user_name=await _first_name(event),
                )
                await event.answer(ack.text, alert=ack.alert)
            except VoicecoderError as exc:
                logger.warning("telethon: button press in chat %s failed: %s", chat, exc)
