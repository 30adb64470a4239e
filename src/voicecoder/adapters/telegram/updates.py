"""
Routing of raw Telegram updates to the `VoiceCoder` use cases.

`TelegramUpdateHandler` is what the dispatcher (webhook inbox or long polling) calls with each raw
Update. It parses the update, maps commands, texts, voice notes, audio files and button presses to the
facade, and downloads recordings only after the sender is known to be authorized and the declared size
fits. `lane_of` tells the dispatcher which serial lane an update belongs to: messages of a chat are
processed in order; button presses have their own lane so ⏹ Cancel never waits behind a running turn, and so do
replies to an open tool question (the message lane is busy with the very turn that asked).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from voicecoder.adapters.telegram.api import (
    BotCommand,
    CallbackQuery,
    Message,
    TelegramApiError,
    TelegramBotApi,
    User,
)
from voicecoder.adapters.telegram.api_types import typed_update
from voicecoder.adapters.telegram.messenger import parse_callback_data
from voicecoder.domain.app import COMMANDS, COMMANDS_WITH_PROJECTS, VoiceCoderApp
from voicecoder.domain.errors import AudioTooLargeError, MalformedUpdateError, UnsupportedAudioError
from voicecoder.domain.model import Audio, ChatId, UserId
from voicecoder.domain.ports import Messenger
from voicecoder.domain.replies import ErrorReply

__all__ = [
    "BOT_COMMANDS",
    "BOT_COMMANDS_WITH_PROJECTS",
    "DEFAULT_MAX_BYTES",
    "DOWNLOAD_FAILED",
    "NOT_UNDERSTOOD",
    "STALE_BUTTON",
    "TelegramUpdateHandler",
    "VoiceCoderApp",
    "is_audio_file",
]

logger = logging.getLogger(__name__)

BOT_COMMANDS: tuple[BotCommand, ...] = tuple(BotCommand(name, description) for name, description in COMMANDS)
BOT_COMMANDS_WITH_PROJECTS: tuple[BotCommand, ...] = tuple(BotCommand(n, d) for n, d in COMMANDS_WITH_PROJECTS)
"""The update types the handler processes: what polling and `webhook set` subscribe to (``allowed_updates``)."""
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # what getFile can serve at all
AUDIO_EXTENSIONS = frozenset({"ogg", "oga", "opus", "mp3", "m4a", "mp4", "wav", "flac", "webm", "aac", "amr"})
AUDIO_MIME_EXTRA = frozenset({"application/ogg", "video/ogg", "video/webm", "video/mp4"})
STALE_BUTTON = "This button is no longer valid."
NOT_UNDERSTOOD = "I understand text messages, voice notes and audio files. Send one of those."
DOWNLOAD_FAILED = "I could not download the recording from Telegram. Please send it again."


def _is_speech_check(caption: str | None) -> bool:
    """A recording captioned ``/selftest`` (or ``/selftest@bot``) is a speech check, not a prompt."""
    head = caption.split(maxsplit=1)[0] if caption and caption.strip() else ""
    return head.lower().partition("@")[0] == "/selftest"


def _sent_at(message: Message) -> datetime | None:
    """When the user sent *message* (Telegram's ``date``, Unix seconds); None if Telegram gave none."""
    return datetime.fromtimestamp(message.date, UTC) if message.date > 0 else None


def is_audio_file(mime_type: str | None, file_name: str | None) -> bool:
    """Whether a file sent as a document is a recording, by its MIME type or (when that is generic) its name."""
    if mime_type and (mime_type.startswith("audio/") or mime_type in AUDIO_MIME_EXTRA):
        return True
    ext = file_name.rsplit(".", 1)[-1].lower() if file_name and "." in file_name else ""
    return ext in AUDIO_EXTENSIONS and (not mime_type or mime_type == "application/octet-stream")


def _attachment(message: Message) -> tuple[str, int | None, str | None, str | None, int]:
    """file_id, declared size, mime type, file name and duration of the message's voice/audio/document."""
    if message.voice is not None:
        v = message.voice
        return v.file_id, v.file_size, v.mime_type or "audio/ogg", None, v.duration
    if message.audio is not None:
        a = message.audio
        return a.file_id, a.file_size, a.mime_type, a.file_name, a.duration
    if message.document is not None:
        d = message.document
        return d.file_id, d.file_size, d.mime_type, d.file_name, 0
    raise MalformedUpdateError(f"message {message.message_id} has no file")


class TelegramUpdateHandler:
    """
    Route one raw Update to *app*.

    *max_bytes* caps recordings (checked on the declared ``file_size`` before any download, then again while
    downloading). *bot_username* makes ``/cmd@otherbot`` commands (groups) be ignored. Replies produced here
    (oversize, unsupported files, stale buttons) go through *messenger*: the one the app replies with.
    """

    def __init__(
        self,
        app: VoiceCoderApp,
        client: TelegramBotApi,
        *,
        messenger: Messenger,
        max_bytes: int = DEFAULT_MAX_BYTES,
        bot_username: str | None = None,
    ) -> None:
        self._app = app
        self._client = client
        self._max_bytes = max_bytes
        self._messenger = messenger
        self._bot_username = bot_username.lstrip("@").lower() if bot_username else None

    async def __call__(self, update: dict[str, Any]) -> None:
        """
        Handle one update.

        Raises:
            MalformedUpdateError: The update is not a message or callback query of the expected shape.
            DeliveryError: A reply or a download failed after retries (the dispatcher may retry).
        """
        parsed = typed_update(update)
        if parsed.callback_query is not None:
            await self._on_callback(parsed.callback_query)
        elif parsed.message is not None:
            await self._on_message(parsed.message)
        else:
            raise MalformedUpdateError(f"unsupported update kind {parsed.kind!r} (update {parsed.update_id})")

    # --- messages ------------------------------------------------------------------------------

    async def _on_message(self, message: Message) -> None:
        sender = message.from_user
        if sender is None or sender.is_bot:
            raise MalformedUpdateError(f"message {message.message_id} has no human sender")
        chat, user = ChatId(message.chat.id, thread=message.topic), UserId(sender.id)
        if message.text is not None:
            await self._on_text(chat, user, message, sender)
        elif message.voice is not None or message.audio is not None or message.document is not None:
            await self._on_file(chat, user, message)
        elif not self._app.is_authorized(user):
            await self._app.unauthorized(chat, user)
        else:
            await self._messenger.send(chat, ErrorReply(NOT_UNDERSTOOD))

    async def _on_text(self, chat: ChatId, user: UserId, message: Message, sender: User) -> None:
        text = message.text or ""
        if not text.startswith("/"):
            replied = message.reply_to_message
            await self._app.prompt(
                chat,
                user,
                text,
                sent_at=_sent_at(message),
                reply_to=replied.message_id if replied is not None else None,
                user_name=_display_name(sender),
            )
            return
        head = text.split(maxsplit=1)[0][1:]
        command, _, target = head.partition("@")
        if target and self._bot_username and target.lower() != self._bot_username:
            logger.debug("command for another bot ignored")
            return
        match command.lower():
            case "start":
                await self._app.start(chat, user, sender.first_name or None)
            case "help":
                await self._app.help(chat, user)
            case "project":
                argument = text.split(maxsplit=1)[1].strip() if len(text.split(maxsplit=1)) > 1 else None
                await self._app.project(chat, user, argument)
            case "status":
                full_name = " ".join(p for p in (sender.first_name, sender.last_name) if p) or None
                await self._app.status(chat, user, user_name=full_name, username=sender.username)
            case "clear":
                await self._app.clear(chat, user)
            case "info":
                await self._app.info(chat, user)
            case "undo":
                await self._app.undo(chat, user)
            case "permissions":
                argument = text.split(maxsplit=1)[1].strip().lower() if len(text.split(maxsplit=1)) > 1 else ""
                await self._app.permissions(chat, user, clear=argument in ("clear", "reset"))
            case _:
                await self._app.help(chat, user)

    async def _on_file(self, chat: ChatId, user: UserId, message: Message) -> None:
        # Never touch the file of someone who may not use the bot.
        if not self._app.is_authorized(user):
            await self._app.unauthorized(chat, user)
            return
        file_id, size, mime, name, duration = _attachment(message)
        if message.voice is None and message.audio is None and not is_audio_file(mime, name):
            await self._messenger.send(chat, ErrorReply(str(UnsupportedAudioError(mime or name or "unknown"))))
            return
        if size is not None and size > self._max_bytes:
            logger.info("recording of %d bytes refused before download (limit %d)", size, self._max_bytes)
            await self._messenger.send(chat, ErrorReply(str(AudioTooLargeError(size, self._max_bytes))))
            return
        data = await self._download(chat, file_id, size)
        if data is None:
            return
        audio = Audio(
            data=data,
            mime_type=mime or "application/octet-stream",
            filename=name,
            declared_duration_s=float(duration) if duration else None,
        )
        if _is_speech_check(message.caption):
            await self._app.hear(chat, user, audio)
            return
        replied = message.reply_to_message
        await self._app.voice(
            chat,
            user,
            audio,
            sent_at=_sent_at(message),
            reply_to=replied.message_id if replied is not None else None,
            user_name=_display_name(message.from_user),
        )

    async def _download(self, chat: ChatId, file_id: str, declared: int | None) -> bytes | None:
        try:
            file = await self._client.get_file(file_id)
        except TelegramApiError as exc:
            await self._download_failed(chat, exc, declared)
            return None
        if file.file_size is not None and file.file_size > self._max_bytes:
            await self._messenger.send(chat, ErrorReply(str(AudioTooLargeError(file.file_size, self._max_bytes))))
            return None
        if not file.file_path:
            logger.warning("getFile returned no file_path")
            await self._messenger.send(chat, ErrorReply(DOWNLOAD_FAILED))
            return None
        try:
            return await self._client.download_file(file.file_path, max_bytes=self._max_bytes)
        except TelegramApiError as exc:
            await self._download_failed(chat, exc, declared)
            return None

    async def _download_failed(self, chat: ChatId, exc: TelegramApiError, declared: int | None) -> None:
        """Tell the user about a download Telegram refused; re-raise what a retry might fix (5xx, 429, network)."""
        if exc.code == 413 or "file is too big" in exc.description:
            size = declared if declared is not None else self._max_bytes + 1
            await self._messenger.send(chat, ErrorReply(str(AudioTooLargeError(size, self._max_bytes))))
            return
        if 400 <= exc.code < 500 and exc.code != 429:
            logger.warning("voice download failed: %s", exc)
            await self._messenger.send(chat, ErrorReply(DOWNLOAD_FAILED))
            return
        raise exc

    # --- buttons -------------------------------------------------------------------------------

    async def _on_callback(self, query: CallbackQuery) -> None:
        user = UserId(query.from_user.id)
        if query.message is None or query.data is None:
            await self._messenger.answer_callback(query.id, STALE_BUTTON)
            return
        chat = ChatId(query.message.chat.id, thread=query.message.topic)
        try:
            button = parse_callback_data(query.data)
        except MalformedUpdateError:
            logger.info("unknown callback_data from user %s", user)
            await self._messenger.answer_callback(query.id, STALE_BUTTON)
            return
        # The facade answers the query itself (exactly once) on every path.
        await self._app.press(chat, user, query.id, button, user_name=_display_name(query.from_user))


def _display_name(user: User | None) -> str | None:
    """How a person is named in the chat (who answered a question): first name, else @username."""
    if user is None:
        return None
    if user.first_name.strip():
        return user.first_name.strip()
    return f"@{user.username}" if user.username else None
