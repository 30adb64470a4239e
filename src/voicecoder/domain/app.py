"""
What a transport sees of voicecoder: the chat commands and the `VoiceCoderApp` protocol.

`voicecoder.domain.services.VoiceCoder` implements the protocol; a transport (the Telegram webhook, the Telethon
adapter, an embedder's aiogram handlers) depends on the protocol only, so a test can hand it a stand-in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from voicecoder.domain.model import Audio, ChangeId, ChatId, CommitInfo, Diff, UserId, WorkspaceStatus
from voicecoder.domain.replies import Button, CallbackAnswer

__all__ = ["COMMANDS", "COMMANDS_WITH_PROJECTS", "PROJECT_COMMAND", "VoiceCoderApp"]

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "Welcome and how to use the bot"),
    ("help", "Commands and tips"),
    ("status", "Session, turns, pending change, branch, latest commit"),
    ("clear", "Start a fresh Claude session"),
    ("info", "Diagnostics of every dependency"),
    ("undo", "Revert the last approved change with a new commit"),
    ("permissions", "How Claude's tools are approved; /permissions clear forgets this session's rules"),
)
"""The slash commands, ``(name, description)``: register them with your bot's command menu."""

PROJECT_COMMAND = ("project", "Choose the project this chat (or topic) works in")
COMMANDS_WITH_PROJECTS: tuple[tuple[str, str], ...] = (*COMMANDS[:2], PROJECT_COMMAND, *COMMANDS[2:])
"""The commands of a bot that serves several projects (``PROJECTS``): /project too."""


class VoiceCoderApp(Protocol):
    """
    The use cases a transport calls; `VoiceCoder` is the implementation.

    Each method sends its outcome to the chat through the `Messenger` port. Every method raises only
    `DeliveryError`, `StateStoreError` or `UnexpectedAdapterError` (see `voicecoder.domain.services`).
    """

    def is_authorized(self, user: UserId) -> bool: ...

    def is_question(self, chat: ChatId, message_id: int) -> bool: ...

    async def unauthorized(self, chat: ChatId, user: UserId) -> None: ...

    async def start(self, chat: ChatId, user: UserId, user_name: str | None = None) -> None: ...

    async def help(self, chat: ChatId, user: UserId) -> None: ...

    async def project(self, chat: ChatId, user: UserId, name: str | None = None) -> None: ...

    async def status(
        self, chat: ChatId, user: UserId, *, user_name: str | None = None, username: str | None = None
    ) -> None: ...

    async def clear(self, chat: ChatId, user: UserId) -> None: ...

    async def info(self, chat: ChatId, user: UserId) -> None: ...

    async def undo(self, chat: ChatId, user: UserId) -> None: ...

    async def text(
        self,
        chat: ChatId,
        user: UserId,
        text: str,
        *,
        user_name: str | None = None,
        username: str | None = None,
        sent_at: datetime | None = None,
        reply_to: int | None = None,
    ) -> None: ...

    async def prompt(
        self,
        chat: ChatId,
        user: UserId,
        text: str,
        *,
        sent_at: datetime | None = None,
        reply_to: int | None = None,
        user_name: str | None = None,
    ) -> None: ...

    async def voice(
        self,
        chat: ChatId,
        user: UserId,
        audio: Audio,
        *,
        language: str | None = None,
        sent_at: datetime | None = None,
        reply_to: int | None = None,
        user_name: str | None = None,
    ) -> None: ...

    async def hear(self, chat: ChatId, user: UserId, audio: Audio, *, language: str | None = None) -> None: ...

    async def approve(
        self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None, fingerprint: str | None = None
    ) -> CommitInfo | None: ...

    async def reject(self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None) -> bool: ...

    async def show_diff(
        self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None
    ) -> Diff | None: ...

    async def git_status(self, chat: ChatId, user: UserId) -> WorkspaceStatus | None: ...

    async def cancel(self, chat: ChatId, user: UserId) -> bool: ...

    async def press(
        self,
        chat: ChatId,
        user: UserId,
        callback_id: str,
        button: Button,
        *,
        answer: bool = True,
        user_name: str | None = None,
    ) -> CallbackAnswer: ...

    async def permissions(self, chat: ChatId, user: UserId, *, clear: bool = False) -> None: ...
