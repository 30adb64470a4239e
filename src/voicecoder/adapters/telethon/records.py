"""
A Telethon update as a plain record: what voicecoder needs of a message or a button press, as JSON.

Records are what `voicecoder serve --transport telethon` stores in its durable inbox before anything runs, so a
restarted process can still act on them; `TelethonUpdates` routes an embedder's updates through the same records,
so both run one piece of routing code (`TelethonUpdateHandler`). A recording's media is kept as its TL bytes
(Telethon's own serialisation), from which it can be downloaded later.

Each record has an ``update_id`` for the inbox: a message's id (unique in a bot's private chats, so a message
Telegram delivers twice — after a restart, through ``getDifference`` — is stored once), or for a button press a
number from a separate, increasing range (Telegram never delivers a callback query twice).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import attrs
from telethon.extensions import BinaryReader
from telethon.tl import types

from voicecoder.adapters.telegram.routing import lane_key
from voicecoder.domain.callbacks import starts_a_turn

__all__ = [
    "ANSWER",
    "CALLBACK",
    "CALLBACK_IDS_FROM",
    "MESSAGE",
    "CallbackIds",
    "TelethonUpdate",
    "callback_update",
    "media_of",
    "message_update",
]

MESSAGE = "message"
CALLBACK = "callback"
ANSWER = "answer"
"""The lane of a reply to an open tool question: it must not wait behind the turn that asked."""
CALLBACK_IDS_FROM = 1 << 52
"""Button presses get ids from here on (µs since the epoch added); message ids stay far below."""


@attrs.frozen
class TelethonUpdate:
    """One update, routed: its inbox id, its lane (``"<chat>:message"`` or ``"<chat>:callback"``) and its record."""

    update_id: int
    lane: str
    record: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.record["kind"])

    def body(self) -> bytes:
        return json.dumps(self.record, separators=(",", ":")).encode()


class CallbackIds:
    """Increasing ids for button presses: microseconds since the epoch, never the same twice in a process."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return CALLBACK_IDS_FROM + self._last


def message_update(event: Any, *, answers_question: bool = False) -> TelethonUpdate:
    """
    The record of a ``events.NewMessage`` event (no network: only what the update carried).

    A message that *answers_question* (a reply to an open tool question) goes into the chat's answer lane.
    """
    message = event.message
    chat = int(event.chat_id)
    media = message.media
    if isinstance(media, types.MessageMediaWebPage):
        media = None  # the link preview of a text message
    sender = getattr(message, "sender", None)
    record: dict[str, Any] = {
        "kind": MESSAGE,
        "chat": chat,
        "user": int(event.sender_id),
        "message_id": int(message.id),
        "text": (message.message or "") if media is None else None,
        "first_name": getattr(sender, "first_name", None),
        "last_name": getattr(sender, "last_name", None),
        "username": getattr(sender, "username", None),
        "media": base64.b64encode(bytes(media)).decode("ascii") if media is not None else None,
        "reply_to": reply_to_of(message),
    }
    return TelethonUpdate(int(message.id), lane_key(chat, ANSWER if answers_question else MESSAGE), record)


def reply_to_of(message: Any) -> int | None:
    """The id of the message *message* replies to, or None."""
    replied = getattr(message, "reply_to_msg_id", None)
    return replied if isinstance(replied, int) else None


def callback_update(event: Any, update_id: int) -> TelethonUpdate:
    """The record of an ``events.CallbackQuery`` event; *update_id* comes from `CallbackIds`."""
    chat = int(event.chat_id)
    data = bytes(event.data or b"")
    record: dict[str, Any] = {
        "kind": CALLBACK,
        "chat": chat,
        "user": int(event.sender_id),
        "query_id": int(event.query.query_id),
        "message_id": int(event.query.msg_id),
        "data": data.decode("ascii", errors="replace"),
        "first_name": getattr(getattr(event, "sender", None), "first_name", None),
    }
    return TelethonUpdate(update_id, lane_key(chat, MESSAGE if starts_a_turn(data) else CALLBACK), record)


def media_of(record: dict[str, Any]) -> Any:
    """
    The TL media object a message record carries, or None.

    Raises:
        ValueError: The stored bytes are not a TL object.
    """
    encoded = record.get("media")
    if not encoded:
        return None
    try:
        with BinaryReader(base64.b64decode(encoded)) as reader:
            return reader.tgread_object()
    except Exception as exc:  # base64, a short buffer, an unknown constructor: all mean "not what we stored"
        raise ValueError(f"stored media is not a TL object: {exc}") from exc
