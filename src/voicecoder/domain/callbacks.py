"""
The callback codec: a `Button` as the short string a chat button carries, and back.

Format: ``"{action}:{change_id}:{fingerprint}"``, prefixed with ``"{project}/"`` where the bot serves several
projects (`voicecoder.domain.projects`) — one letter for the `Action`, the change id (8–32 lowercase hex digits,
or empty), and up to 16 characters of the diff fingerprint (or empty). A tool question's answers (✅ Allow, 🔓,
❌ Deny) carry the question id in the change id's place and no fingerprint. At most 51 bytes of ASCII (64 with a
project name of at most 12 characters), so it fits Telegram's 64-byte ``callback_data`` and any chat platform
with a similar limit.

The fingerprint round-trip matters: ✅ Approve commits only if the workspace still matches the diff the user saw,
checked by comparing the button's fingerprint with the start of the current diff's fingerprint. A button whose
fingerprint was lost (or shortened below `MIN_FINGERPRINT`) cannot approve: the use case answers with
`StaleChangeError`. Keep the string exactly as `encode_callback` produced it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar

from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.domain.model import ChangeId, QuestionId
from voicecoder.domain.replies import TOOL_ANSWERS, Action, Button

__all__ = [
    "MAX_CALLBACK_BYTES",
    "MIN_FINGERPRINT",
    "decode_callback",
    "encode_callback",
    "project_buttons",
    "starts_a_turn",
]

MAX_CALLBACK_BYTES = 64
"""Telegram's limit for ``callback_data``; every encoded button is shorter."""

MIN_FINGERPRINT = 8
"""The shortest fingerprint prefix Approve accepts; buttons carry 16 characters."""

FINGERPRINT_CHARS = 16

_FINGERPRINT_RE = re.compile(r"[0-9A-Za-z_-]{0,16}")
_CALLBACK_RE = re.compile(r"(?:([a-z0-9_-]{1,12})/)?([a-z]):([0-9a-f]{8,32})?:([0-9A-Za-z_-]{0,16})")

# The project whose replies are being rendered: a messenger renders buttons synchronously inside `send`/`edit`, so
# the project's wrapper (`voicecoder.domain.projects.ProjectMessenger`) tags every button of one workspace's
# replies without each reply type, or each messenger, having to know about projects.
_PROJECT: ContextVar[str | None] = ContextVar("voicecoder_button_project", default=None)


@contextlib.contextmanager
def project_buttons(project: str | None) -> Iterator[None]:
    """Within this block, `encode_callback` tags buttons that name no project with *project*. Raises nothing."""
    token = _PROJECT.set(project)
    try:
        yield
    finally:
        _PROJECT.reset(token)


def encode_callback(button: Button) -> str:
    """
    Encode *button* as ``"{action}:{change_id}:{fingerprint16}"``, after ``"{project}/"`` when named.

    Empty parts stay empty. The project is the button's own, else the enclosing `project_buttons` block's.

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
    project = button.project or _PROJECT.get()
    if project is not None:
        data = f"{project}/{data}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:  # pragma: no cover - ids and project names are bounded
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
    project, letter, change_hex, fingerprint = m.groups()
    try:
        action = Action(letter)
    except ValueError:
        raise MalformedUpdateError(f"unknown button action {letter!r}") from None
    if action is Action.CHOOSE_PROJECT and project is None:
        raise MalformedUpdateError("a project button without its project")
    if action in TOOL_ANSWERS:
        if not change_hex:
            raise MalformedUpdateError("a tool answer without its question")
        return Button(action, question=QuestionId(change_hex), project=project)
    change = ChangeId(change_hex) if change_hex else None
    return Button(action, change, fingerprint or None, project=project)


def starts_a_turn(data: str | bytes | None) -> bool:
    """
    Whether a press with callback *data* starts a turn (🔁, or 📁 choosing a project). Raises nothing.

    Choosing a project runs the prompts held while the chat had none.

    A transport that keeps a chat's updates in lanes routes such a press to the chat's message lane, where turns
    run one after the other: on the callback lane the turn would hold up ⏹ Cancel and the answers it asks for.
    """
    if isinstance(data, bytes):
        data = data.decode("ascii", errors="replace")
    if data is None:
        return False
    action = data.rpartition("/")[2][:2]
    return action in (f"{Action.RUN_AGAIN.value}:", f"{Action.CHOOSE_PROJECT.value}:")
