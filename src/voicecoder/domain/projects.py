"""
Several projects per bot: the ports a project router needs, and the tag its workspaces put on their buttons.

A bot configured with projects keeps one `VoiceCoder` per workspace (an allow-listed user's tree of a project, or
the project's own tree when it is shared), each with its own lock, sessions, pending changes, turn counters, tool
rules and audit. `voicecoder.domain.router.ProjectRouter` sends each update to the workspace of the chat's chosen
project; every button a workspace sends carries the project's name (`ProjectMessenger`), so a press always reaches
the workspace whose change it shows, whatever the chat chose since.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from voicecoder.domain.callbacks import project_buttons
from voicecoder.domain.model import Audio, ChatId, UserId
from voicecoder.domain.ports import Messenger
from voicecoder.domain.replies import MessageRef, Reply

if TYPE_CHECKING:
    from voicecoder.domain.services import VoiceCoder

__all__ = [
    "HELD_COLUMNS",
    "MAX_PROJECT_NAME",
    "PROJECT_NAME_RE",
    "HeldKind",
    "HeldPrompt",
    "ProjectChoices",
    "ProjectMessenger",
    "ProjectWorkspaces",
    "held_of",
    "held_row",
]

MAX_PROJECT_NAME = 12
"""A project's name rides on every button (callback data has 64 bytes; a button needs 51 without it)."""
PROJECT_NAME_RE = re.compile(rf"[a-z0-9_-]{{1,{MAX_PROJECT_NAME}}}")


class HeldKind(enum.Enum):
    """What a held message asks for once a project is chosen."""

    PROMPT = "prompt"
    VOICE = "voice"
    SPEECH_CHECK = "hear"


@attrs.frozen
class HeldPrompt:
    """
    A message that reached a chat with no project chosen: it runs, as its author sent it, in the project picked.

    A typed prompt has *text*; a voice note or a speech check has *audio* (transcribed when it runs).
    """

    user: UserId
    kind: HeldKind
    text: str = ""
    audio: Audio | None = None
    language: str | None = None
    reply_to: int | None = None
    user_name: str | None = None


HELD_COLUMNS = "user_id, kind, text, audio, mime_type, filename, duration_s, language, reply_to, user_name"
"""The columns a state store keeps a held prompt in, in the order of `held_row` and `held_of`."""


def held_row(prompt: HeldPrompt) -> tuple[object, ...]:
    """*prompt* as the values of `HELD_COLUMNS`. Raises nothing."""
    audio = prompt.audio
    return (
        prompt.user.value,
        prompt.kind.value,
        prompt.text,
        audio.data if audio is not None else None,
        audio.mime_type if audio is not None else None,
        audio.filename if audio is not None else None,
        audio.declared_duration_s if audio is not None else None,
        prompt.language,
        prompt.reply_to,
        prompt.user_name,
    )


def held_of(row: tuple[Any, ...]) -> HeldPrompt:
    """The prompt a row of `HELD_COLUMNS` holds. Raises ValueError for a kind this version does not know."""
    user, kind, text, data, mime, filename, duration, language, reply_to, user_name = row
    audio = Audio(bytes(data), str(mime), filename, duration) if data is not None else None
    return HeldPrompt(
        user=UserId(int(user)),
        kind=HeldKind(kind),
        text=str(text),
        audio=audio,
        language=language,
        reply_to=reply_to,
        user_name=user_name,
    )


class ProjectChoices(Protocol):
    """Which project each chat (or forum topic of a chat) works in, and what waits for that choice; durable."""

    async def chosen(self, chat: ChatId, /) -> str | None:
        """
        The project *chat* chose, or None.

        Raises:
            StateStoreError: The choices could not be read.
        """
        ...

    async def choose(self, chat: ChatId, project: str, /) -> None:
        """
        Remember that *chat* works in *project* from now on (durable when this returns).

        Raises:
            StateStoreError: The choice could not be written.
        """
        ...

    async def hold(self, chat: ChatId, prompt: HeldPrompt, /) -> int:
        """
        Keep *prompt* until *chat* chooses a project (durable when this returns); returns how many now wait.

        Raises:
            StateStoreError: The prompt could not be written.
        """
        ...

    async def held(self, chat: ChatId, /) -> int:
        """
        How many prompts of *chat* wait for its choice.

        Raises:
            StateStoreError: The held prompts could not be read.
        """
        ...

    async def pop_held(self, chat: ChatId, /) -> HeldPrompt | None:
        """
        The oldest prompt *chat* holds, no longer held once this returns (None: nothing waits).

        One at a time, so that a restart while one of them runs neither runs it again nor loses the others.

        Raises:
            StateStoreError: The held prompts could not be read or removed.
        """
        ...


class ProjectWorkspaces(Protocol):
    """The app of each (user, project) workspace, created on first use and kept open until `aclose`."""

    async def open(self, user: UserId, project: str, /) -> VoiceCoder:
        """
        The `VoiceCoder` of *user*'s workspace of *project* (the project's own one when it is shared).

        A first call creates the workspace (a clone of the project's path or remote); later calls return the same
        instance.

        Raises:
            WorkspaceError: The workspace cannot be created (the remote cannot be reached, the path is not a git
                repository); the message names the project and the fix. Nothing was created half-way.
            StateStoreError: The workspace's state store cannot be opened.
        """
        ...

    def opened(self) -> tuple[VoiceCoder, ...]:
        """The apps opened so far. Raises nothing."""
        ...


class ProjectMessenger:
    """
    The `Messenger` of one project's workspaces: *inner*'s, with every button tagged with *project*.

    Raises what *inner* raises (the `Messenger` port).
    """

    def __init__(self, inner: Messenger, project: str) -> None:
        self._inner = inner
        self.project = project

    async def send(self, chat: ChatId, reply: Reply, /) -> MessageRef:
        with project_buttons(self.project):
            return await self._inner.send(chat, reply)

    async def edit(self, ref: MessageRef, reply: Reply, /) -> None:
        with project_buttons(self.project):
            await self._inner.edit(ref, reply)

    async def answer_callback(self, callback_id: str, /, text: str | None = None, *, alert: bool = False) -> None:
        await self._inner.answer_callback(callback_id, text, alert=alert)

    async def typing(self, chat: ChatId, /) -> None:
        await self._inner.typing(chat)
