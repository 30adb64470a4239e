"""
What the claim needs to route an update to a (user, project) workspace, taken from the update when it is stored.

The claim joins these columns with the chat's route (ADR 0028): the chat and forum topic come from the lane, the
sender and the project a button or ``/project NAME`` names from the update itself. Parsing once at insert keeps
the claim a plain join; an update that cannot be read here (it was validated before it was stored, so this is
defensive) gets no sender and goes to the lobby, whose router answers it as the single-process bot would.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

__all__ = ["RoutingKeys", "routing_keys"]

_PROJECT_COMMAND = re.compile(r"^/project(?:@\S+)?\s+(\S+)", re.IGNORECASE)


@attrs.frozen
class RoutingKeys:
    """The chat, the topic (0: none), the sender, and the project a press or ``/project NAME`` names (or None)."""

    chat: int | None
    thread: int
    sender: int | None
    tag: str | None

    def row(self) -> tuple[int | None, int, int | None, str | None]:
        return self.chat, self.thread, self.sender, self.tag


def _lane_parts(lane: str) -> tuple[int | None, int]:
    chat_text, _, kind = lane.partition(":")
    _, _, topic = kind.partition("@")
    try:
        chat = int(chat_text)
    except ValueError:
        chat = None
    return chat, int(topic) if topic.isdigit() else 0


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def routing_keys(lane: str, body: bytes) -> RoutingKeys:
    """The routing keys of the update *body* stored in *lane*. Raises nothing."""
    chat, thread = _lane_parts(lane)
    try:
        update = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return RoutingKeys(chat, thread, None, None)
    if not isinstance(update, dict):
        return RoutingKeys(chat, thread, None, None)
    query = update.get("callback_query")
    if isinstance(query, dict):
        sender = _int((query.get("from") or {}).get("id")) if isinstance(query.get("from"), dict) else None
        data = query.get("data")
        tag = data.partition("/")[0] if isinstance(data, str) and "/" in data else None
        return RoutingKeys(chat, thread, sender, tag or None)
    message = update.get("message")
    if not isinstance(message, dict):
        return RoutingKeys(chat, thread, None, None)
    sender = _int(message["from"].get("id")) if isinstance(message.get("from"), dict) else None
    text = message.get("text")
    found = _PROJECT_COMMAND.match(text) if isinstance(text, str) else None
    return RoutingKeys(chat, thread, sender, found.group(1).lower() if found else None)
