"""
The callback codec: a `Button` as the short string a chat button carries, and back.

Format: ``"{action}:{change_id}:{fingerprint}"`` — one letter for the `Action`, the change id (8–32 lowercase
hex digits, or empty), and up to 16 characters of the diff fingerprint (or empty). A tool question's answers
(✅ Allow, 🔓, ❌ Deny) carry the question id in the change id's place and no fingerprint. At most 51 bytes of ASCII,
so it fits Telegram's 64-byte ``callback_data`` and any chat platform with a similar limit.

The fingerprint round-trip matters: ✅ Approve commits only if the workspace still matches the diff the user saw,
checked by comparing the button's fingerprint with the start of the current diff's fingerprint. A button whose
fingerprint was lost (or shortened below `MIN_FINGERPRINT`) cannot approve: the use case answers with
`StaleChangeError`. Keep the string exactly as `encode_callback` produced it.
"""

from __future__ import annotations

import re

from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.domain.model import ChangeId, QuestionId
from voicecoder.domain.replies import TOOL_ANSWERS, Action, Button

__all__ = ["MAX_CALLBACK_BYTES", "MIN_FINGERPRINT", "decode_callback", "encode_callback", "starts_a_turn"]

MAX_CALLBACK_BYTES = 64
"""Telegram's limit for ``callback_data``; every encoded button is shorter."""

MIN_FINGERPRINT = 8
"""The shortest fingerprint prefix Approve accepts; buttons carry 16 characters."""

FINGERPRINT_CHARS = 16

_FINGERPRINT_RE = re.compile(r"[0-9A-Za-z_-]{0,16}")
_CALLBACK_RE = re.compile(r"([a-z]):([0-9a-f]{8,32})?:([0-9A-Za-z_-]{0,16})")


def encode_callback(button: Button) -> str:
    """
    Encode *button* as ``"{action}:{change_id}:{fingerprint16}"`` (empty parts stay empty).

    Raises:
        ValueError: The fingerprint has characters that cannot be encoded (only ``[0-9A-Za-z_-]`` can).
    """
    change = button.change_id.value if button.change_id is not None else ""
    if button.question is not None:
        change = button.question.value
    fingerprint = (button.fingerprint or "")[:FINGERPRINT_CHARS]
    if not _FINGERPRINT_RE.fullmatch(fingerprint):
        raise ValueError(f"fingerprint {fingerprint!r} cannot go into callback data")
    data = f"{button.action.value}:{change}:{fingerprint}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:  # pragma: no cover - ChangeId is at most 32 characters
        raise ValueError("callback data would exceed 64 bytes")
    return data


def decode_callback(data: str | bytes) -> Button:
    """
    The inverse of `encode_callback`; accepts the bytes a Telethon ``CallbackQuery`` carries as well.

    Raises:
        MalformedUpdateError: *data* is not something `encode_callback` produced (e.g. another bot's button).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedUpdateError(f"unknown callback data {data[:64]!r}") from None
    m = _CALLBACK_RE.fullmatch(data)
    if m is None:
        raise MalformedUpdateError(f"unknown callback data {data[:64]!r}")
    try:
        action = Action(m.group(1))
    except ValueError:
        raise MalformedUpdateError(f"unknown button action {m.group(1)!r}") from None
    if action in TOOL_ANSWERS:
        if not m.group(2):
            raise MalformedUpdateError("a tool answer without its question")
        return Button(action, question=QuestionId(m.group(2)))
    change = ChangeId(m.group(2)) if m.group(2) else None
    return Button(action, change, m.group(3) or None)


def starts_a_turn(data: str | bytes | None) -> bool:
    """
    Whether a press with callback *data* starts a turn (🔁 Run it again). Raises nothing.

    A transport that keeps a chat's updates in lanes routes such a press to the chat's message lane, where turns
    run one after the other: on the callback lane the turn would hold up ⏹ Cancel and the answers it asks for.
    """
    if isinstance(data, bytes):
        data = data.decode("ascii", errors="replace")
    return data is not None and data.startswith(f"{Action.RUN_AGAIN.value}:")
