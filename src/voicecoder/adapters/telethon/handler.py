"""
`TelethonUpdateHandler`: one Telethon update record (`voicecoder.adapters.telethon.records`) to the use cases.

Texts and commands go to `VoiceCoderApp.text`; voice notes, audio files and documents that are recordings are
downloaded with Telethon — only after the sender is known to be allowed and the declared size fits — and go to
`VoiceCoderApp.voice`; both with the id of the message they reply to (a reply to a tool question answers it).
Presses of voicecoder's buttons go to `VoiceCoderApp.press` with the presser's first name, which answers the callback
query through the messenger. Asyncio-only, like Telethon.
"""

from __future__ import annotations

import logging
from typing import Any

from telethon import errors
from telethon.tl import types

from voicecoder.adapters.telegram.updates import (
    DEFAULT_MAX_BYTES,
    DOWNLOAD_FAILED,
    NOT_UNDERSTOOD,
    STALE_BUTTON,
    is_audio_file,
)
from voicecoder.adapters.telethon.messenger import TelethonMessenger
from voicecoder.adapters.telethon.records import CALLBACK, MESSAGE, media_of
from voicecoder.domain.app import VoiceCoderApp
from voicecoder.domain.callbacks import decode_callback
from voicecoder.domain.errors import (
    AudioTooLargeError,
    DeliveryError,
    MalformedUpdateError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, ChatId, UserId
from voicecoder.domain.ports import Messenger
from voicecoder.domain.replies import ErrorReply

__all__ = ["TelethonUpdateHandler"]

logger = logging.getLogger(__name__)


def _recording(media: Any) -> tuple[Any, str | None, str | None, float | None, bool] | None:
    """(document, mime type, file name, duration, is it audio) of a document message; None for other media."""
    document = getattr(media, "document", None)
    if not isinstance(media, types.MessageMediaDocument) or not isinstance(document, types.Document):
        return None
    name = next((a.file_name for a in document.attributes if isinstance(a, types.DocumentAttributeFilename)), None)
    audio = next((a for a in document.attributes if isinstance(a, types.DocumentAttributeAudio)), None)
    duration = float(audio.duration) if audio is not None and audio.duration else None
    return document, document.mime_type, name, duration, audio is not None or is_audio_file(document.mime_type, name)


class TelethonUpdateHandler:
    """
    Acts on one update record; what the durable inbox's dispatcher calls, and `TelethonUpdates` in memory.

    *max_bytes* caps recordings (checked on the declared size before any download). Replies produced here go
    through *messenger* (default: a `TelethonMessenger` on *client*).
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

    async def __call__(self, record: dict[str, Any]) -> None:
        """
        Handle one record.

        Raises:
            MalformedUpdateError: *record* is not one `voicecoder.adapters.telethon.records` made.
            DeliveryError: A reply or a download failed in a way a later retry may fix.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        try:
            kind = record["kind"]
            chat, user = ChatId(int(record["chat"])), UserId(int(record["user"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedUpdateError(f"not a Telethon update record: {exc!r}") from None
        if kind == MESSAGE:
            await self._message(chat, user, record)
        elif kind == CALLBACK:
            await self._callback(chat, user, record)
        else:
            raise MalformedUpdateError(f"unknown Telethon update kind {kind!r}")

    async def _message(self, chat: ChatId, user: UserId, record: dict[str, Any]) -> None:
        try:
            media = media_of(record)
        except ValueError as exc:
            raise MalformedUpdateError(str(exc)) from None
        text = record.get("text")
        replied = record.get("reply_to")
        reply_to = replied if isinstance(replied, int) else None
        if media is None and isinstance(text, str) and text.strip():
            await self._app.text(
                chat,
                user,
                text,
                user_name=record.get("first_name"),
                username=record.get("username"),
                reply_to=reply_to,
            )
            return
        if not self._app.is_authorized(user):  # never touch the file of someone who may not use the bot
            await self._app.unauthorized(chat, user)
            return
        recording = _recording(media)
        if recording is None:
            await self._messenger.send(chat, ErrorReply(NOT_UNDERSTOOD))
            return
        document, mime, name, duration, is_audio = recording
        if not is_audio:
            await self._messenger.send(chat, ErrorReply(str(UnsupportedAudioError(mime or name or "unknown"))))
            return
        if document.size is not None and document.size > self._max_bytes:
            logger.info("recording of %d bytes refused before download (limit %d)", document.size, self._max_bytes)
            await self._messenger.send(chat, ErrorReply(str(AudioTooLargeError(document.size, self._max_bytes))))
            return
        data = await self._download(chat, media)
        if data is None:
            return
        audio = Audio(data=data, mime_type=mime or "audio/ogg", filename=name, declared_duration_s=duration)
        await self._app.voice(chat, user, audio, reply_to=reply_to, user_name=record.get("first_name"))

    async def _download(self, chat: ChatId, media: Any) -> bytes | None:
        try:
            data = await self._client.download_media(media, file=bytes)
        except (errors.FloodWaitError, errors.ServerError, ConnectionError, OSError) as exc:
            raise DeliveryError(f"The recording could not be fetched from Telegram: {type(exc).__name__}") from exc
        except (errors.RPCError, ValueError, TypeError) as exc:
            # A file reference that expired, a file Telegram no longer has: asking the user beats retrying.
            logger.warning("telethon: voice download failed: %s", type(exc).__name__)
            await self._messenger.send(chat, ErrorReply(DOWNLOAD_FAILED))
            return None
        if not isinstance(data, bytes):
            await self._messenger.send(chat, ErrorReply(DOWNLOAD_FAILED))
            return None
        return data

    async def _callback(self, chat: ChatId, user: UserId, record: dict[str, Any]) -> None:
        query_id = str(record.get("query_id", ""))
        try:
            button = decode_callback(str(record.get("data", "")))
        except MalformedUpdateError:
            logger.info("unknown callback data from user %s", user)
            await self._messenger.answer_callback(query_id, STALE_BUTTON)
            return
        await self._app.press(chat, user, query_id, button, user_name=record.get("first_name"))
