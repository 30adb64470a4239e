"""
The use cases of voicecoder, over the ports.

`VoiceCoder` is the facade a transport (Telegram webhook, polling, Telethon, an embedder's own bot)
calls. Each method is one use case; every outcome reaches the user through the `Messenger` port as a
structured reply, and domain errors become `ErrorReply`s. The use cases themselves live by group:
`commands` (the slash commands), `turns` (prompts and voice notes), `decisions` (Approve, Reject, Show Diff,
Git Status) and `tool_questions` (tool approval); they share an `AppContext` and change a session only through
the unit of work in `unit_of_work`.

What a caller must catch: every public use case raises only `VoicecoderError`s, and only these three —
`DeliveryError` (the messenger could not deliver a reply; what the reply reports has happened),
`StateStoreError` (the session store failed) and `UnexpectedAdapterError` (an adapter raised something outside
its port's contract; the original is the ``__cause__`` and is logged). Refusals and failures the user can act on
(not authorized, nothing pending, a stale diff, a transcription or git error) are replies, not exceptions.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime

from voicecoder.domain.boundary import use_case as _use_case
from voicecoder.domain.buttons import Buttons
from voicecoder.domain.commands import Commands
from voicecoder.domain.context import AppContext, Ports, Settings
from voicecoder.domain.decisions import COMMIT_SUBJECT, Decisions
from voicecoder.domain.errors import (
    EmptyPromptError,
)
from voicecoder.domain.facade_decisions import DecisionUseCases
from voicecoder.domain.model import (
    Audio,
    AuditAction,
    ChatId,
    Diagnostic,
    Prompt,
    PromptSource,
    UserId,
)
from voicecoder.domain.replies import (
    Heard,
    SpeechCheck,
    Unauthorized,
)
from voicecoder.domain.tool_questions import RunningTurn, ToolQuestions
from voicecoder.domain.turns import MAX_PROGRESS_STEPS, Turns
from voicecoder.domain.unit_of_work import Sessions

__all__ = ["COMMIT_SUBJECT", "MAX_PROGRESS_STEPS", "Ports", "Settings", "VoiceCoder"]

logger = logging.getLogger(__name__)


def _random_hex(n_bytes: int) -> str:
    return secrets.token_hex(n_bytes)


class VoiceCoder(DecisionUseCases):
    """
    The application: one instance per workspace; the use cases a transport calls (`VoiceCoderApp`).

    Every use case checks the user against `Settings.allowed_users` first (an unknown user gets
    `Unauthorized` and nothing runs) and reports its outcome to the chat through the `Messenger`.

    Raises (every public ``async`` method):
        DeliveryError: The messenger could not deliver a reply (what it reports has happened).
        StateStoreError: The session store could not be read or written.
        UnexpectedAdapterError: An adapter raised an exception its port does not document.
    """

    def __init__(
        self,
        ports: Ports,
        settings: Settings,
        *,
        new_id: Callable[[int], str] = _random_hex,
    ) -> None:
        sessions = Sessions(ports.store, compaction_threshold=settings.compaction_threshold)
        self._c = AppContext(ports=ports, settings=settings, new_id=new_id, sessions=sessions)
        self._commands = Commands(self._c)
        self._decisions = Decisions(self._c)
        self._tools = ToolQuestions(
            messenger=ports.messenger,
            sessions=sessions,
            policy=settings.tools,
            timeout_s=settings.tool_timeout_s,
            redact=settings.redact,
            audit=self._c.audit,
            new_id=new_id,
            show_progress=self._show_progress,
        )
        self._turns = Turns(self._c, self._decisions, self._tools)
        self._buttons = Buttons(self._c, self._decisions, self._tools, self._turns)

    @property
    def ports(self) -> Ports:
        return self._c.ports

    @property
    def settings(self) -> Settings:
        return self._c.settings

    # --- access ---------------------------------------------------------------

    def is_authorized(self, user: UserId) -> bool:
        """Whether *user* may use voicecoder (`Settings.allowed_users`). Raises nothing."""
        return user in self._c.settings.allowed_users

    def is_question(self, chat: ChatId, message_id: int) -> bool:
        """
        Whether *message_id* in *chat* is an open tool question. Raises nothing.

        A reply to it answers it (❌ Deny with the reply as the reason) while the turn waits, so an adapter that
        keeps a chat's messages in order must let such a reply past the running turn.
        """
        return self._tools.is_open(chat, message_id)

    @_use_case
    async def unauthorized(self, chat: ChatId, user: UserId) -> None:
        """
        Tell *user* they may not use the bot (logged; nothing else happens).

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        logger.warning("unauthorized user %s in chat %s", user, chat)
        await self._c.ports.messenger.send(chat, Unauthorized(user.value))

    async def _guard(self, chat: ChatId, user: UserId) -> bool:
        if self.is_authorized(user):
            return True
        await self.unauthorized(chat, user)
        return False

    # --- commands -------------------------------------------------------------

    @_use_case
    async def start(self, chat: ChatId, user: UserId, user_name: str | None = None) -> None:
        """
        /start: `Welcome` with the workspace path.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if await self._guard(chat, user):
            await self._commands.start(chat, user_name)

    @_use_case
    async def help(self, chat: ChatId, user: UserId) -> None:
        """
        /help: `HelpText` listing `COMMANDS`.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if await self._guard(chat, user):
            await self._commands.help(chat)

    async def project(self, chat: ChatId, user: UserId, name: str | None = None) -> None:
        """
        /project where the bot serves one workspace: an unknown command, so the help (as before projects existed).

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        await self.help(chat, user)

    @_use_case
    async def clear(self, chat: ChatId, user: UserId) -> None:
        """
        /clear: a fresh agent session (a pending change stays pending; the session's tool rules go): `SessionCleared`.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if await self._guard(chat, user):
            await self._commands.clear(chat, user)

    @_use_case
    async def status(
        self, chat: ChatId, user: UserId, *, user_name: str | None = None, username: str | None = None
    ) -> None:
        """
        /status: `StatusReport` (session, turns, pending change, decisions, branch, the user).

        *user_name* and *username* (without "@") are shown when the transport knows them.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if await self._guard(chat, user):
            await self._commands.status(chat, user, user_name, username)

    @_use_case
    async def info(self, chat: ChatId, user: UserId) -> None:
        """
        /info: `InfoReport` with every dependency's diagnostics.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if await self._guard(chat, user):
            await self._commands.info(chat)

    async def diagnose(self) -> list[Diagnostic]:
        """Every dependency's checks; used by /info and `voicecoder doctor`. Raises nothing: a broken check fails."""
        return await self._commands.diagnose()

    @_use_case
    async def undo(self, chat: ChatId, user: UserId) -> None:
        """
        /undo: revert this chat's latest approved change that is not reverted yet, with a new commit.

        The chat gets `ChangeReverted`, or an `ErrorReply` when there is nothing to undo or git refuses.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if await self._guard(chat, user):
            await self._commands.undo(chat, user)

    @_use_case
    async def permissions(self, chat: ChatId, user: UserId, *, clear: bool = False) -> None:
        """
        /permissions: how tools are approved, the operator's and this session's rules (`PermissionsView`).

        With *clear*, this session's rules are forgotten first.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if await self._guard(chat, user):
            await self._tools.permissions(chat, user, clear=clear)

    @_use_case
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
        """
        A text message as a chat shows it: a slash command runs its use case, anything else is a prompt.

        ``/start`` ``/help`` ``/status`` ``/clear`` ``/info`` ``/undo`` ``/permissions`` (``/permissions clear``)
        run their command (``/cmd@botname`` too); any other ``/word`` shows the help rather than going to the
        agent. A text that replies (*reply_to*: the id of the message it answers) to an open tool question denies
        that tool with the text as the reason the agent reads.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not text.startswith("/"):
            await self.prompt(chat, user, text, sent_at=sent_at, reply_to=reply_to, user_name=user_name)
            return
        words = text.split(maxsplit=1)
        command = words[0][1:].partition("@")[0].lower()
        argument = words[1].strip().lower() if len(words) > 1 else ""
        match command:
            case "start":
                await self.start(chat, user, user_name)
            case "status":
                await self.status(chat, user, user_name=user_name, username=username)
            case "clear":
                await self.clear(chat, user)
            case "info":
                await self.info(chat, user)
            case "undo":
                await self.undo(chat, user)
            case "permissions":
                await self.permissions(chat, user, clear=argument in ("clear", "reset"))
            case _:
                await self.help(chat, user)

    # --- prompts --------------------------------------------------------------

    @_use_case
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
        """
        Run the agent on *text* in the workspace, as one turn.

        When *text* replies (*reply_to*, a message id) to an open tool question, it denies that tool instead, with
        *text* as the reason the agent reads (*user_name* shows who answered).

        *sent_at* is when the user sent it; a prompt older than the configured maximum age (it waited out an
        outage) is answered with `StalePrompt` instead of starting a run.

        The chat sees `Working` (edited as it goes), `AgentAnswer`, then `ChangeSummary` with ✅ ❌ 📝 📊 buttons,
        `NoChanges` or `AutoApproved`. A turn waits for the one before it (`Queued`). Agent, git and empty-prompt
        failures are `ErrorReply`s.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return
        if not text.strip():
            await self._c.ports.messenger.send(chat, self._c.error(EmptyPromptError()))
            return
        if reply_to is not None and await self._tools.deny_by_reply(chat, user, reply_to, text.strip(), user_name):
            return
        prompt = Prompt.typed(text.strip())
        # A prompt cut off by a restart and delivered again is settled (never run again) however old it is.
        if self._turns.is_stale(sent_at) and not await self._turns.interrupted(chat, prompt, sent_at):
            await self._turns.refuse_stale(chat, user, sent_at, prompt=prompt.text)
            return
        await self._turns.run(chat, user, prompt, sent_at)

    @_use_case
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
        """
        Transcribe *audio* (with the workspace vocabulary as hints), echo `Heard`, then run it like `prompt`.

        A voice note that replies (*reply_to*) to an open tool question denies it with what was said as the reason.

        A recording that cannot be transcribed gets an `ErrorReply` saying why; nothing runs. A stale one (see
        `prompt`) is not even transcribed.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return
        heard_before = Prompt("", PromptSource.VOICE, audio_digest=audio.digest)
        if self._turns.is_stale(sent_at) and not await self._turns.interrupted(chat, heard_before, sent_at):
            await self._turns.refuse_stale(chat, user, sent_at, voice_duration_s=audio.declared_duration_s)
            return
        transcript = await self._turns.transcribe(chat, user, audio, language)
        if transcript is None:
            return
        c = self._c
        await c.ports.messenger.send(chat, Heard(transcript.text, transcript.confidence, transcript.language))
        denied = reply_to is not None and await self._tools.deny_by_reply(
            chat, user, reply_to, transcript.text, user_name
        )
        await c.audit(chat, user, AuditAction.TRANSCRIBED, audio_digest=audio.digest, transcript=transcript.text)
        if not denied:
            await self._turns.run(chat, user, Prompt.from_transcript(transcript, audio), sent_at)

    @_use_case
    async def hear(self, chat: ChatId, user: UserId, audio: Audio, *, language: str | None = None) -> None:
        """
        A speech check: transcribe *audio* and say what was heard and how long it took (`SpeechCheck`); nothing runs.

        The operator's test of the deployed bot (`voicecoder selftest`, or a voice note captioned /selftest)
        measures the voice path without starting a paid agent run.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return
        c = self._c
        started = c.ports.clock.monotonic()
        transcript = await self._turns.transcribe(chat, user, audio, language)
        if transcript is None:
            return
        seconds = c.ports.clock.monotonic() - started
        await c.audit(chat, user, AuditAction.SPEECH_CHECK, audio_digest=audio.digest, transcript=transcript.text)
        await c.ports.messenger.send(
            chat,
            SpeechCheck(
                text=transcript.text,
                audio_s=transcript.duration_s or audio.declared_duration_s,
                seconds=seconds,
                confidence=transcript.confidence,
            ),
        )

    async def shutdown(self, reason: str = "voicecoder is restarting") -> None:
        """
        The app is going down: end what waits for an answer nobody can give any more.

        Every open tool question is denied, the turns that were waiting on one are stopped and their users told.
        Turns not waiting on a question may finish. Raises nothing a caller must handle.
        """
        await self._tools.shutdown(reason)

    async def _show_progress(self, turn: RunningTurn) -> None:
        await self._turns.show_progress(turn)
