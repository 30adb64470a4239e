"""
Which Telegram updates voicecoder processes, and in which lane: one rule for the webhook, polling and Telethon.

A lane is a chat and a kind (``"123:message"``, ``"123:callback"``, ``"123:answer"``): the dispatcher runs the
items of one lane in order and different lanes side by side, so a button press never waits behind a running turn.
A forum topic (``message_thread_id`` on a topic message) has lanes of its own (``"123:message@7"``), so a long turn
in one topic does not hold up another topic of the same chat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from voicecoder.adapters.telegram.api import Message
from voicecoder.adapters.telegram.api_types import typed_update
from voicecoder.adapters.telegram.messenger import QUESTION_INVITATION
from voicecoder.domain.callbacks import starts_a_turn
from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.domain.replies import TOOL_ANSWERS

PROCESSED_UPDATE_TYPES: tuple[str, ...] = ("message", "callback_query")
ALLOWED_UPDATES: tuple[str, ...] = PROCESSED_UPDATE_TYPES
"""What setWebhook and getUpdates ask Telegram for: exactly the processed types."""
MAX_UPDATE_ID = (1 << 63) - 1  # SQLite's INTEGER

LaneOf = Callable[[dict[str, Any]], "tuple[int, str] | None"]
"""
Routes an Update (a dict with an integer ``update_id``) to (chat id, "message" | "callback").

None: voicecoder does not process this update type. MalformedUpdateError (its detail is logged): an update of
a processed type that cannot be processed (a field missing or of the wrong type, no sender ...). Either way the
update is acknowledged and ignored, never stored.
"""


def lane_key(chat_id: int, kind: str) -> str:
    """The lane name stored with an item, e.g. ``"123:message"``."""
    return f"{chat_id}:{kind}"


@attrs.frozen
class Route:
    """Where an Update goes: its ``lane``, or None when it is ignored (``reason`` says why, for the log)."""

    update_id: int
    lane: str | None
    reason: str = ""


def route(update: dict[str, Any], lane_rule: LaneOf | None = None) -> Route:
    """
    Route an Update (a dict with an integer ``update_id``): its lane, or why it is ignored. Never raises.

    An ``update_id`` outside what the inbox can key (0 … 2**63-1), an update type voicecoder does not process, and
    an update of a processed type that cannot be processed are all ignored, with the reason. *lane_rule* replaces
    `lane_of` (tests and benchmarks route their own updates).
    """
    update_id: int = update["update_id"]
    if not 0 <= update_id <= MAX_UPDATE_ID:
        return Route(update_id, None, "update_id is out of range")
    try:
        lane = (lane_rule or lane_of)(update)
    except MalformedUpdateError as exc:
        return Route(update_id, None, exc.detail)
    except (LookupError, TypeError, ValueError, AttributeError) as exc:  # a lenient lane rule tripped over the shape
        return Route(update_id, None, f"cannot be routed ({type(exc).__name__})")
    if lane is None:
        kind = next((k for k in update if k != "update_id"), None)
        return Route(update_id, None, f"{kind or 'empty'} updates are not processed")
    return Route(update_id, lane_key(*lane))


def lane_of(update: dict[str, Any]) -> tuple[int, str] | None:
    """
    The serial lane of a raw update: ``(chat_id, "message")``, ``(chat_id, "callback")`` or ``(chat_id, "answer")``.

    A reply to an open tool question (one that still shows its ✅/❌ buttons or its invitation to reply) has a
    lane of its own: the chat's message lane is busy with the turn that asked, and the answer must not wait.

    It checks, at every level, everything the handler relies on, so an update routed here never fails for its
    shape later. None for the update types voicecoder does not process.

    Raises:
        MalformedUpdateError: A message or callback query the handler cannot process: a field missing or of the
            wrong type, both at once, or a message without a human sender (anonymous group admins, channels and
            bots have none); the detail says which.
    """
    kinds = [kind for kind in PROCESSED_UPDATE_TYPES if kind in update]
    if not kinds:
        return None
    if len(kinds) > 1:
        raise MalformedUpdateError("the update carries both a message and a callback query")
    parsed = typed_update(update)
    if parsed.callback_query is not None:
        query = parsed.callback_query
        chat = query.message.chat.id if query.message is not None else query.from_user.id
        topic = query.message.topic if query.message is not None else None
        return chat, _in_topic("message" if starts_a_turn(query.data) else "callback", topic)
    message = parsed.message
    if message is None:  # "message": null
        raise MalformedUpdateError("message is not an object")
    sender = message.from_user
    if sender is None:
        raise MalformedUpdateError(f"message {message.message_id} has no sender (an anonymous admin or a channel)")
    if sender.is_bot:
        raise MalformedUpdateError(f"message {message.message_id} comes from a bot")
    return message.chat.id, _in_topic("answer" if _replies_to_question(message) else "message", message.topic)


def _in_topic(kind: str, topic: int | None) -> str:
    return kind if topic is None else f"{kind}@{topic}"


_TOOL_ANSWER_PREFIXES = tuple(f"{a.value}:" for a in TOOL_ANSWERS)


def _replies_to_question(message: Message) -> bool:
    """Whether *message* replies to an open tool question: one that still has its buttons or its invitation."""
    replied = message.reply_to_message
    if replied is None:
        return False
    if replied.text is not None and QUESTION_INVITATION in replied.text:
        return True
    rows = replied.reply_markup.inline_keyboard if replied.reply_markup is not None else ()
    # A bot with several projects prefixes its buttons' data with "<project>/".
    datas = ((b.callback_data or "").rpartition("/")[2] for row in rows for b in row)
    return any(d.startswith(_TOOL_ANSWER_PREFIXES) for d in datas)


__all__ = [
    "ALLOWED_UPDATES",
    "MAX_UPDATE_ID",
    "PROCESSED_UPDATE_TYPES",
    "LaneOf",
    "Route",
    "lane_key",
    "lane_of",
    "route",
]
