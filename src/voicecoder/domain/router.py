"""
`ProjectRouter`: one bot, several projects; each update goes to the workspace of the chat's project.

It is a `VoiceCoderApp`, so a transport drives it exactly as it drives one `VoiceCoder`. What it adds:

* ``/project`` lists the projects as buttons (`ProjectPicker`); ``/project NAME`` or a press switches the chat (or
  the forum topic: a `ChatId` with a thread is its own choice) and answers with `ProjectChosen`.
* A chat that has chosen no project is asked once: the prompt (text or voice) that met the question is held
  (durably, by `ProjectChoices`) and runs in the project picked, in its author's workspace, so nobody has to send
  it again, not even after a restart.
* A button press goes to the project the button names (`Button.project`), never to the chat's current choice: a
  change shown before a switch is approved or rejected in its own project. A button that names no project (sent
  before projects were configured) or a project no longer configured is refused with an alert saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from voicecoder.domain.app import PROJECT_COMMAND, VoiceCoderApp
from voicecoder.domain.errors import UnexpectedAdapterError, VoicecoderError, WorkspaceError
from voicecoder.domain.model import Audio, ChangeId, ChatId, CommitInfo, Diff, UserId, WorkspaceStatus
from voicecoder.domain.ports import Messenger
from voicecoder.domain.projects import HeldKind, HeldPrompt, ProjectChoices, ProjectWorkspaces
from voicecoder.domain.replies import (
    Action,
    Button,
    CallbackAnswer,
    ErrorReply,
    HelpText,
    ProjectChosen,
    ProjectPicker,
    Unauthorized,
)

if TYPE_CHECKING:
    from voicecoder.domain.services import VoiceCoder

__all__ = ["MAX_HELD", "ProjectRouter"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_Run = Callable[[VoiceCoderApp], Awaitable[None]]
#: A chat that sends more while it has not chosen keeps at most this many prompts waiting.
MAX_HELD = 5


class ProjectRouter:
    """
    The `VoiceCoderApp` of a bot with several projects.

    Raises (every public ``async`` method) what `VoiceCoder` raises: `DeliveryError`, `StateStoreError`,
    `UnexpectedAdapterError`.
    """

    def __init__(
        self,
        projects: tuple[str, ...],
        workspaces: ProjectWorkspaces,
        choices: ProjectChoices,
        messenger: Messenger,
        allowed_users: frozenset[UserId],
        commands: tuple[tuple[str, str], ...],
    ) -> None:
        if not projects:
            raise ValueError("a project router needs at least one project")
        self.projects = projects
        self._workspaces = workspaces
        self._choices = choices
        self._messenger = messenger
        self._allowed = allowed_users
        self._commands = commands

    # --- routing --------------------------------------------------------------------------------

    async def _app(self, user: UserId, project: str, chat: ChatId) -> VoiceCoder | None:
        """The workspace's app, or None after telling the chat why it cannot be opened."""
        try:
            return await self._workspaces.open(user, project)
        except WorkspaceError as exc:
            logger.warning("workspace of project %s for user %s cannot be opened: %s", project, user, exc)
            await self._messenger.send(chat, ErrorReply(f"📁 {project}: {exc}"))
            return None
        except VoicecoderError:
            raise
        except Exception as exc:
            logger.exception("opening project %s raised %s", project, type(exc).__name__)
            raise UnexpectedAdapterError(type(exc).__name__) from exc

    async def _current(self, chat: ChatId) -> str | None:
        chosen = await self._choices.chosen(chat)
        return chosen if chosen in self.projects else None

    async def _route(self, chat: ChatId, user: UserId, run: _Run, *, hold: HeldPrompt | None = None) -> None:
        """Run *run* in the chat's project; with none chosen, ask (and keep *hold* for the choice)."""
        if not self.is_authorized(user):
            await self.unauthorized(chat, user)
            return
        project = await self._current(chat)
        if project is None:
            await self._ask(chat, hold)
            return
        app = await self._app(user, project, chat)
        if app is not None:
            await run(app)

    async def _ask(self, chat: ChatId, hold: HeldPrompt | None) -> None:
        waiting = await self._choices.held(chat)
        if hold is not None and waiting >= MAX_HELD:
            await self._messenger.send(
                chat,
                ErrorReply(
                    f"{MAX_HELD} messages already wait for a project: choose one with the buttons above "
                    "(or /project), then send this one again."
                ),
            )
        elif hold is not None:
            await self._choices.hold(chat, hold)
        if not waiting:  # asked once: while messages wait, the question is already there
            await self._messenger.send(chat, ProjectPicker(self.projects, None, held=hold is not None))

    async def _switch(self, chat: ChatId, user: UserId, project: str) -> None:
        app = await self._app(user, project, chat)
        if app is None:
            return
        await self._choices.choose(chat, project)
        waiting = await self._choices.held(chat)
        await self._messenger.send(chat, ProjectChosen(project, app.settings.workspace_path, running_held=waiting))
        # One at a time: a restart while one runs neither runs it again nor loses those after it.
        while (held := await self._choices.pop_held(chat)) is not None:
            # In a group, a held message runs in its author's workspace, not the chooser's.
            workspace = app if held.user == user else await self._app(held.user, project, chat)
            if workspace is not None:
                await _run_held(workspace, chat, held)

    # --- access ---------------------------------------------------------------------------------

    def is_authorized(self, user: UserId) -> bool:
        return user in self._allowed

    def is_question(self, chat: ChatId, message_id: int) -> bool:
        return any(app.is_question(chat, message_id) for app in self._workspaces.opened())

    async def unauthorized(self, chat: ChatId, user: UserId) -> None:
        logger.warning("unauthorized user %s in chat %s", user, chat)
        await self._messenger.send(chat, Unauthorized(user.value))

    # --- commands -------------------------------------------------------------------------------

    async def project(self, chat: ChatId, user: UserId, name: str | None = None) -> None:
        """
        /project: the projects as buttons; ``/project NAME`` switches at once (an unknown name lists them).

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The choice could not be read or stored.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not self.is_authorized(user):
            await self.unauthorized(chat, user)
            return
        wanted = (name or "").strip().lower()
        if wanted in self.projects:
            await self._switch(chat, user, wanted)
            return
        if wanted:
            await self._messenger.send(
                chat, ErrorReply(f"There is no project {wanted!r}. Choose one of: {', '.join(self.projects)}.")
            )
        await self._messenger.send(chat, ProjectPicker(self.projects, await self._current(chat)))

    async def start(self, chat: ChatId, user: UserId, user_name: str | None = None) -> None:
        await self._route(chat, user, lambda app: app.start(chat, user, user_name))

    async def help(self, chat: ChatId, user: UserId) -> None:
        if not self.is_authorized(user):
            await self.unauthorized(chat, user)
            return
        await self._messenger.send(chat, HelpText(self._commands))

    async def status(
        self, chat: ChatId, user: UserId, *, user_name: str | None = None, username: str | None = None
    ) -> None:
        await self._route(chat, user, lambda app: app.status(chat, user, user_name=user_name, username=username))

    async def clear(self, chat: ChatId, user: UserId) -> None:
        await self._route(chat, user, lambda app: app.clear(chat, user))

    async def info(self, chat: ChatId, user: UserId) -> None:
        await self._route(chat, user, lambda app: app.info(chat, user))

    async def undo(self, chat: ChatId, user: UserId) -> None:
        await self._route(chat, user, lambda app: app.undo(chat, user))

    async def permissions(self, chat: ChatId, user: UserId, *, clear: bool = False) -> None:
        await self._route(chat, user, lambda app: app.permissions(chat, user, clear=clear))

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
    ) -> None:
        """A text as a chat shows it: ``/project`` here, ``/help`` with it listed, the rest in the chat's project."""
        words = text.split(maxsplit=1)
        command = words[0][1:].partition("@")[0].lower() if text.startswith("/") and words else None
        if command == PROJECT_COMMAND[0]:
            await self.project(chat, user, words[1] if len(words) > 1 else None)
        elif command == "help":
            await self.help(chat, user)
        elif command is None:
            await self.prompt(chat, user, text, sent_at=sent_at, reply_to=reply_to, user_name=user_name)
        else:
            await self._route(
                chat,
                user,
                lambda app: app.text(chat, user, text, user_name=user_name, username=username, sent_at=sent_at),
            )

    # --- prompts --------------------------------------------------------------------------------

    async def prompt(
        self,
        chat: ChatId,
        user: UserId,
        text: str,
        *,
        sent_at: datetime | None = None,
        reply_to: int | None = None,
        user_name: str | None = None,
    ) -> None:
        held = HeldPrompt(user, HeldKind.PROMPT, text=text, reply_to=reply_to, user_name=user_name)
        await self._route(
            chat,
            user,
            lambda app: app.prompt(chat, user, text, sent_at=sent_at, reply_to=reply_to, user_name=user_name),
            hold=held,
        )

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
    ) -> None:
        held = HeldPrompt(user, HeldKind.VOICE, audio=audio, language=language, reply_to=reply_to, user_name=user_name)
        await self._route(
            chat,
            user,
            lambda app: app.voice(
                chat, user, audio, language=language, sent_at=sent_at, reply_to=reply_to, user_name=user_name
            ),
            hold=held,
        )

    async def hear(self, chat: ChatId, user: UserId, audio: Audio, *, language: str | None = None) -> None:
        held = HeldPrompt(user, HeldKind.SPEECH_CHECK, audio=audio, language=language)
        await self._route(chat, user, lambda app: app.hear(chat, user, audio, language=language), hold=held)

    # --- decisions ------------------------------------------------------------------------------

    async def _decide(
        self, chat: ChatId, user: UserId, call: Callable[[VoiceCoderApp], Awaitable[_T]], *, default: _T
    ) -> _T:
        result = default

        async def run(app: VoiceCoderApp) -> None:
            nonlocal result
            result = await call(app)

        await self._route(chat, user, run)
        return result

    async def approve(
        self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None, fingerprint: str | None = None
    ) -> CommitInfo | None:
        return await self._decide(
            chat, user, lambda app: app.approve(chat, user, change_id=change_id, fingerprint=fingerprint), default=None
        )

    async def reject(self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None) -> bool:
        return await self._decide(chat, user, lambda app: app.reject(chat, user, change_id=change_id), default=False)

    async def show_diff(self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None) -> Diff | None:
        return await self._decide(chat, user, lambda app: app.show_diff(chat, user, change_id=change_id), default=None)

    async def git_status(self, chat: ChatId, user: UserId) -> WorkspaceStatus | None:
        return await self._decide(chat, user, lambda app: app.git_status(chat, user), default=None)

    async def cancel(self, chat: ChatId, user: UserId) -> bool:
        return await self._decide(chat, user, lambda app: app.cancel(chat, user), default=False)

    async def press(
        self,
        chat: ChatId,
        user: UserId,
        callback_id: str,
        button: Button,
        *,
        answer: bool = True,
        user_name: str | None = None,
    ) -> CallbackAnswer:
        """
        A press goes to the project its button names (see the module docstring); a project button switches.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The choice could not be read or stored.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not self.is_authorized(user):
            ack = CallbackAnswer("⛔ Not authorized", alert=True)
            if answer:
                await self._messenger.answer_callback(callback_id, ack.text, alert=ack.alert)
            await self.unauthorized(chat, user)
            return ack
        project = button.project
        if project is None or project not in self.projects:
            ack = CallbackAnswer(
                f"This button belongs to project {project!r}, which this bot no longer serves. Use /project."
                if project is not None
                else "This button is from before this bot served several projects. Use /project, then /status.",
                alert=True,
            )
            if answer:
                await self._messenger.answer_callback(callback_id, ack.text, alert=ack.alert)
            return ack
        if button.action is Action.CHOOSE_PROJECT:
            ack = CallbackAnswer(f"📁 {project}")
            if answer:
                await self._messenger.answer_callback(callback_id, ack.text)
            await self._switch(chat, user, project)
            return ack
        app = await self._workspaces_app(user, project, chat, callback_id, answer=answer)
        if app is None:
            return CallbackAnswer(f"📁 {project} cannot be opened.", alert=True)
        return await app.press(chat, user, callback_id, button, answer=answer, user_name=user_name)

    async def _workspaces_app(
        self, user: UserId, project: str, chat: ChatId, callback_id: str, *, answer: bool
    ) -> VoiceCoder | None:
        app = await self._app(user, project, chat)
        if app is None and answer:
            await self._messenger.answer_callback(callback_id, f"📁 {project} cannot be opened.", alert=True)
        return app

    async def shutdown(self, reason: str = "voicecoder is restarting") -> None:
        """Every open workspace's app goes down (see `VoiceCoder.shutdown`). Raises nothing a caller must handle."""
        for app in self._workspaces.opened():
            await app.shutdown(reason)


async def _run_held(app: VoiceCoderApp, chat: ChatId, held: HeldPrompt) -> None:
    """
    Run a message that waited for the project choice, as its author sent it.

    Without its send time: it waited for the user, not through an outage, so it is not refused as stale.
    """
    match held.kind:
        case HeldKind.PROMPT:
            await app.prompt(chat, held.user, held.text, reply_to=held.reply_to, user_name=held.user_name)
        case HeldKind.VOICE if held.audio is not None:
            await app.voice(
                chat, held.user, held.audio, language=held.language, reply_to=held.reply_to, user_name=held.user_name
            )
        case HeldKind.SPEECH_CHECK if held.audio is not None:
            await app.hear(chat, held.user, held.audio, language=held.language)
        case _:  # pragma: no cover - a held voice note always has its audio
            logger.warning("a held %s without audio was dropped", held.kind.value)
