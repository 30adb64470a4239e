"""
The use cases of voicecoder, over the ports.

`VoiceCoder` is the facade a transport (Telegram webhook, polling, Telethon, an embedder's own bot)
calls. Each method is one use case; every outcome reaches the user through the `Messenger` port as a
structured reply, and domain errors become `ErrorReply`s.

What a caller must catch: every public use case raises only `VoicecoderError`s, and only these three —
`DeliveryError` (the messenger could not deliver a reply; what the reply reports has happened),
`StateStoreError` (the session store failed) and `UnexpectedAdapterError` (an adapter raised something outside
its port's contract; the original is the ``__cause__`` and is logged). Refusals and failures the user can act on
(not authorized, nothing pending, a stale diff, a transcription or git error) are replies, not exceptions.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
import attrs

from voicecoder.domain.app import COMMANDS
from voicecoder.domain.errors import (
    AgentRunError,
    ApprovalChoiceRequiredError,
    ChangeNotPendingError,
    ConfigurationError,
    DomainError,
    EmptyPromptError,
    MalformedUpdateError,
    NoPendingChangeError,
    PortError,
    TranscriptionError,
    TurnInProgressError,
    UnexpectedAdapterError,
    VoicecoderError,
    WorkspaceError,
)
from voicecoder.domain.model import (
    DEFAULT_COMPACTION_THRESHOLD,
    AgentEvent,
    AgentRequest,
    AgentResult,
    ApiRetry,
    ApprovalChoice,
    AssistantText,
    Audio,
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeStatus,
    ChatId,
    CommitInfo,
    CommitMessage,
    Compacted,
    Diagnostic,
    Diff,
    Notice,
    Ownership,
    PendingChange,
    PermissionDenied,
    Prompt,
    Restored,
    SecretFinding,
    Session,
    ToolDecision,
    ToolFinished,
    ToolRequest,
    ToolStarted,
    TranscriptionHints,
    TurnId,
    UserId,
    WorkspaceStatus,
)
from voicecoder.domain.policy import ApprovalPolicy, ToolPolicy, Verdict
from voicecoder.domain.ports import (
    AgentRunner,
    Clock,
    Diagnosable,
    Messenger,
    SecretScanner,
    StateStore,
    Transcriber,
    VocabularySource,
    Workspace,
)
from voicecoder.domain.replies import (
    Action,
    AgentAnswer,
    ApprovalChoiceNeeded,
    AutoApproved,
    Button,
    CallbackAnswer,
    Cancelled,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeReverted,
    ChangeSummary,
    Compaction,
    Decision,
    DiffView,
    ErrorReply,
    GitStatusView,
    Heard,
    HelpText,
    InfoReport,
    MessageRef,
    NoChanges,
    Queued,
    Reply,
    SessionCleared,
    SpeechCheck,
    StalePrompt,
    StatusReport,
    TurnOutcome,
    Unauthorized,
    Welcome,
    Working,
)
from voicecoder.domain.tool_questions import Progress, RunningTurn, ToolQuestions

logger = logging.getLogger(__name__)

COMMIT_SUBJECT = "Apply changes from Claude"
MAX_PROGRESS_STEPS = 8


def _random_hex(n_bytes: int) -> str:
    return secrets.token_hex(n_bytes)


def _unchanged(text: str) -> str:
    return text


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _use_case(
    fn: Callable[Concatenate[VoiceCoder, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[VoiceCoder, _P], Coroutine[Any, Any, _R]]:
    """The error boundary of a public use case: only `VoicecoderError`s leave it (see the module docstring)."""

    @functools.wraps(fn)
    async def boundary(self: VoiceCoder, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(self, *args, **kwargs)
        except VoicecoderError:
            raise
        except Exception as exc:
            # A task group (progress heartbeat + agent) wraps what failed in it: surface the failure itself.
            leaf = _first_leaf(exc) if isinstance(exc, BaseExceptionGroup) else exc
            if isinstance(leaf, VoicecoderError):
                raise leaf from exc
            logger.exception("%s: an adapter raised %s outside its port's contract", fn.__name__, type(leaf).__name__)
            raise UnexpectedAdapterError(type(leaf).__name__) from exc

    return boundary


@attrs.frozen
class Ports:
    """Everything the use cases need from the outside world."""

    workspace: Workspace
    agent: AgentRunner
    transcriber: Transcriber
    messenger: Messenger
    store: StateStore
    clock: Clock
    scanner: SecretScanner
    vocabulary: VocabularySource | None = None
    diagnosables: tuple[Diagnosable, ...] = ()


@attrs.frozen
class Settings:
    """Domain-level settings (transport and adapter settings live with their adapters)."""

    allowed_users: frozenset[UserId]
    workspace_path: str = ""
    policy: ApprovalPolicy = attrs.field(factory=ApprovalPolicy)
    compaction_threshold: int = DEFAULT_COMPACTION_THRESHOLD
    progress_interval_s: float = 1.5
    typing_interval_s: float = 4.5
    commit_author: str | None = None
    default_language: str | None = None
    error_hint: Callable[[VoicecoderError], str | None] | None = None
    """Adds a host-specific hint to an error reply (the CLI names its environment variables here)."""
    max_prompt_age_s: float | None = None
    """Prompts (typed or spoken) sent longer ago than this are answered with a notice instead of a paid run."""
    tools: ToolPolicy | None = None
    """Decides the agent's tool requests; None (tool approval off) runs the agent without asking."""
    tool_timeout_s: float = 600.0
    """A tool question not answered within this time is a denial."""
    redact: Callable[[str], str] = _unchanged
    """Applied to every text that comes from the agent before it reaches the chat (the logs' redaction)."""


class VoiceCoder:
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
        self._p = ports
        self._s = settings
        self._new_id = new_id
        self._workspace_lock = anyio.Lock()
        self._state_lock = anyio.Lock()
        self._waiting = 0
        self._running: dict[ChatId, RunningTurn] = {}
        self._tools = ToolQuestions(
            messenger=ports.messenger,
            store=ports.store,
            policy=settings.tools,
            timeout_s=settings.tool_timeout_s,
            redact=settings.redact,
            load_session=self._session,
            state_lock=self._state_lock,
            audit=self._audit,
            new_id=new_id,
            show_progress=self._show_progress,
        )

    @property
    def ports(self) -> Ports:
        return self._p

    @property
    def settings(self) -> Settings:
        return self._s

    # --- access ---------------------------------------------------------------

    def is_authorized(self, user: UserId) -> bool:
        """Whether *user* may use voicecoder (`Settings.allowed_users`). Raises nothing."""
        return user in self._s.allowed_users

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
        await self._p.messenger.send(chat, Unauthorized(user.value))

    async def _guard(self, chat: ChatId, user: UserId) -> bool:
        if self.is_authorized(user):
            return True
        await self.unauthorized(chat, user)
        return False

    def _error(self, exc: VoicecoderError | str) -> ErrorReply:
        """The chat reply for an error, with the host's hint (if it has one for this error)."""
        if isinstance(exc, str):
            return ErrorReply(self._s.redact(exc))
        hint = self._s.error_hint(exc) if self._s.error_hint is not None else None
        # Agent errors quote its output (stderr): the same redaction as the logs before it reaches the chat.
        return ErrorReply(self._s.redact(str(exc)), hint)

    # --- simple commands ------------------------------------------------------

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
            await self._p.messenger.send(chat, Welcome(user_name, self._s.workspace_path, COMMANDS))

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
            await self._p.messenger.send(chat, HelpText(COMMANDS))

    @_use_case
    async def clear(self, chat: ChatId, user: UserId) -> None:
        """
        /clear: a fresh agent session (a pending change stays pending; the session's tool rules go): `SessionCleared`.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return
        async with self._state_lock:
            session = await self._session(chat)
            previous_agent_session = session.agent_session_id
            rules = session.tool_rules
            session.clear(now=self._p.clock.now())
            await self._p.store.save_session(session)
        if previous_agent_session is not None and chat not in self._running:
            await self._p.agent.end_session(previous_agent_session)
        await self._audit(chat, user, "clear")
        kept = session.pending is not None and session.pending.is_pending
        await self._p.messenger.send(chat, SessionCleared(kept_pending=kept, cleared_rules=rules))

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
        if not await self._guard(chat, user):
            return
        session = await self._session(chat)
        try:
            ws_status = await self._p.workspace.status()
        except WorkspaceError as exc:
            logger.warning("status: workspace unavailable: %s", exc)
            ws_status = None
        history = tuple(await self._p.store.audit_trail(chat, 10))
        pending = session.pending if session.pending is not None and session.pending.is_pending else None
        report = StatusReport(
            user_id=user.value,
            agent_session_id=session.agent_session_id,
            turn_count=session.turn_count,
            compaction_threshold=session.compaction_threshold,
            pending=self._summary(pending) if pending else None,
            approved_count=session.approved_count,
            rejected_count=session.rejected_count,
            history=tuple(r for r in history if r.action in {"approve", "reject", "auto-approve"}),
            workspace=ws_status,
            workspace_path=self._s.workspace_path,
            running=chat in self._running,
            session_started=session.started_at,
            user_name=user_name,
            username=username,
            tool_mode=self._s.tools.mode.value if self._s.tools is not None else "off",
            tool_rules=session.tool_rules,
            operator_tool_rules=self._s.tools.allow if self._s.tools is not None else (),
        )
        await self._p.messenger.send(chat, report)

    @_use_case
    async def info(self, chat: ChatId, user: UserId) -> None:
        """
        /info: `InfoReport` with every dependency's diagnostics.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return
        await self._p.messenger.send(chat, InfoReport(tuple(await self.diagnose())))

    async def diagnose(self) -> list[Diagnostic]:
        """Every dependency's checks; used by /info and `voicecoder doctor`. Raises nothing: a broken check fails."""
        results: list[Diagnostic] = []
        for item in self._p.diagnosables:
            try:
                results.extend(await item.diagnose())
            except Exception as exc:  # a broken check must not hide the others
                results.append(Diagnostic(type(item).__name__, ok=False, detail=f"check failed: {exc}"))
        return results

    # --- prompts --------------------------------------------------------------

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
            await self._p.messenger.send(chat, self._error(EmptyPromptError()))
            return
        if reply_to is not None and await self._tools.deny_by_reply(chat, user, reply_to, text.strip(), user_name):
            return
        if await self._stale(chat, user, sent_at, prompt=text.strip()):
            return
        await self._turn(chat, user, Prompt.typed(text.strip()))

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
        if await self._stale(chat, user, sent_at, voice_duration_s=audio.declared_duration_s):
            return
        await self._p.messenger.typing(chat)
        try:
            transcript = await self._p.transcriber.transcribe(audio, await self._hints(language))
        except (TranscriptionError, ConfigurationError) as exc:
            await self._audit(chat, user, "transcription-failed", audio_digest=audio.digest, detail=str(exc))
            await self._p.messenger.send(chat, self._error(exc))
            return
        await self._p.messenger.send(chat, Heard(transcript.text, transcript.confidence, transcript.language))
        if reply_to is not None and await self._tools.deny_by_reply(chat, user, reply_to, transcript.text, user_name):
            await self._audit(chat, user, "transcribed", audio_digest=audio.digest, transcript=transcript.text)
            return
        prompt = Prompt.from_transcript(transcript, audio)
        await self._audit(chat, user, "transcribed", audio_digest=audio.digest, transcript=transcript.text)
        await self._turn(chat, user, prompt)

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
        await self._p.messenger.typing(chat)
        started = self._p.clock.monotonic()
        try:
            transcript = await self._p.transcriber.transcribe(audio, await self._hints(language))
        except (TranscriptionError, ConfigurationError) as exc:
            await self._p.messenger.send(chat, self._error(exc))
            return
        seconds = self._p.clock.monotonic() - started
        await self._audit(chat, user, "speech-check", audio_digest=audio.digest, transcript=transcript.text)
        await self._p.messenger.send(
            chat,
            SpeechCheck(
                text=transcript.text,
                audio_s=transcript.duration_s or audio.declared_duration_s,
                seconds=seconds,
                confidence=transcript.confidence,
            ),
        )

    async def _hints(self, language: str | None) -> TranscriptionHints:
        """The workspace's names as recognition hints, as every voice note gets them."""
        return TranscriptionHints(
            keyterms=await self._p.vocabulary.vocabulary() if self._p.vocabulary else (),
            language=language or self._s.default_language,
        )

    async def _stale(
        self,
        chat: ChatId,
        user: UserId,
        sent_at: datetime | None,
        *,
        prompt: str | None = None,
        voice_duration_s: float | None = None,
    ) -> bool:
        """True (and the user told) when a prompt sent at *sent_at* is older than the maximum age."""
        limit = self._s.max_prompt_age_s
        if limit is None or sent_at is None:
            return False
        age = (self._p.clock.now() - sent_at).total_seconds()
        if age <= limit:
            return False
        logger.info("prompt in chat %s not run: sent %.0f s ago, over the %.0f s limit", chat, age, limit)
        await self._audit(chat, user, "stale-prompt", prompt=prompt, detail=f"sent {age:.0f} s before processing")
        await self._p.messenger.send(
            chat, StalePrompt(age_s=age, max_age_s=limit, prompt=prompt, voice_duration_s=voice_duration_s)
        )
        return True

    async def _turn(self, chat: ChatId, user: UserId, prompt: Prompt) -> None:
        if self._workspace_lock.locked():
            self._waiting += 1
            try:
                await self._p.messenger.send(chat, Queued(ahead=self._waiting))
                await self._workspace_lock.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._workspace_lock.acquire()
        try:
            review = await self._locked_turn(chat, user, prompt)
        finally:
            self._workspace_lock.release()
        if review is not None:
            # Sent once the workspace is free, so an Approve tapped the moment the buttons show is not refused
            # as "a turn is running".
            await self._ask_for_review(*review)

    async def _ask_for_review(self, change: PendingChange, superseded: PendingChange | None) -> None:
        ref = await self._p.messenger.send(
            change.chat_id, self._summary(change, superseded_previous=superseded is not None)
        )
        await self._remember_message(change, ref)
        if superseded is not None:
            await self._mark_decided(superseded)

    async def _locked_turn(
        self, chat: ChatId, user: UserId, prompt: Prompt
    ) -> tuple[PendingChange, PendingChange | None] | None:
        """Run the turn; returns the new pending change (and the one it replaced) for review, if there is one."""
        now = self._p.clock.now()
        session = await self._session(chat)
        if session.needs_compaction:
            await self._compact(chat, session)

        previous = session.pending if session.pending is not None and session.pending.is_pending else None
        turn_id = TurnId(f"{now:%Y%m%dT%H%M%S}-{self._new_id(4)}")
        recovered = session.open_turn is not None and previous is None
        try:
            # A turn that was cut off by a restart is continued, so its edits still need approval. A new turn
            # on top of a pending change extends it: the diff stays cumulative from the first baseline, so
            # Reject always returns to the tree the user last approved, while the developer's own edits made
            # since that change's turn end become part of the new baseline and stay theirs.
            if session.open_turn is not None:
                baseline = session.open_turn
            elif previous is not None:
                baseline = await self._p.workspace.begin_turn(turn_id, extends=previous.baseline)
            else:
                baseline = await self._p.workspace.begin_turn(turn_id)
        except WorkspaceError as exc:
            await self._p.messenger.send(chat, self._error(exc))
            return None
        async with self._state_lock:
            fresh = await self._session(chat)
            fresh.open_turn = baseline
            await self._p.store.save_session(fresh)
        await self._audit(chat, user, "prompt", prompt=prompt.text, audio_digest=prompt.audio_digest)

        notes = ("↩️ includes edits from a turn interrupted by a restart",) if recovered else ()
        result, failure = await self._run_agent(chat, user, session, prompt, notes)

        async with self._state_lock:
            session = await self._session(chat)
            if result is not None:
                session.record_turn(result.session_id, now=self._p.clock.now())
            await self._p.store.save_session(session)
        if result is not None:
            await self._p.messenger.send(chat, self._answer(result))
            await self._audit(chat, user, "answer", agent_session_id=result.session_id, detail=result.subtype)
        if failure is not None:
            await self._p.messenger.send(chat, self._error(failure))

        # Whatever happened, the agent may have touched the tree: always look. After a failed run the error
        # reply is the whole story when nothing changed; "no changes" on top of it would only contradict it.
        failed = failure is not None or (result is not None and not result.success)
        return await self._settle_turn(
            chat, user, prompt, turn_id, baseline, previous, result, quiet_if_unchanged=failed
        )

    async def _settle_turn(
        self,
        chat: ChatId,
        user: UserId,
        prompt: Prompt,
        turn_id: TurnId,
        baseline: Baseline,
        previous: PendingChange | None,
        result: AgentResult | None,
        *,
        quiet_if_unchanged: bool = False,
    ) -> tuple[PendingChange, PendingChange | None] | None:
        try:
            # What the agent left, recorded now: later edits are told apart from it (never committed with it).
            ended = await self._p.workspace.end_turn(baseline)
            baseline, diff = ended.baseline, ended.diff
        except WorkspaceError as exc:
            await self._p.messenger.send(chat, self._error(exc))
            return None
        findings = tuple(await self._p.scanner.scan(diff)) if not diff.is_empty else ()
        decision = self._s.policy.decide(diff, findings)
        now = self._p.clock.now()
        change_id = ChangeId(self._new_id(8))
        agent_session = result.session_id if result else None

        if decision.verdict is Verdict.NO_CHANGES:
            replaced: PendingChange | None = None
            async with self._state_lock:
                session = await self._session(chat)
                if previous is not None and session.pending is not None and session.pending.is_pending:
                    replaced = session.pending
                    replaced.supersede(change_id, now=now)
                    session.pending = None
                session.open_turn = None
                await self._p.store.save_session(session)
            await self._release(baseline)
            if previous is not None:
                await self._release(previous.baseline)
            if replaced is not None:
                await self._mark_decided(replaced)
            if not quiet_if_unchanged:
                await self._p.messenger.send(chat, NoChanges())
            return None

        merged_prompt = prompt
        if previous is not None:
            merged_prompt = attrs.evolve(prompt, text=f"{previous.prompt.text}\n{prompt.text}")
        change = PendingChange(
            id=change_id,
            turn_id=turn_id,
            chat_id=chat,
            prompt=merged_prompt,
            baseline=baseline,
            diff=diff,
            created_at=now,
            agent_session_id=agent_session,
            findings=findings,
        )
        async with self._state_lock:
            session = await self._session(chat)
            superseded = session.attach(change, now=now)
            session.open_turn = None
            await self._p.store.save_session(session)
        if superseded is not None and superseded.baseline.snapshot != baseline.snapshot:
            await self._release(superseded.baseline)
        await self._audit(
            chat,
            user,
            "change",
            change_id=change_id,
            prompt=prompt.text,
            audio_digest=prompt.audio_digest,
            agent_session_id=agent_session,
            diff_fingerprint=diff.fingerprint,
            detail=decision.verdict.value,
        )

        if decision.verdict is Verdict.AUTO_APPROVE:
            try:
                commit = _committed(await self._commit(change, user, auto=True))
            except (DomainError, WorkspaceError) as exc:
                await self._p.messenger.send(chat, self._error(exc))
            else:
                if superseded is not None:
                    await self._mark_decided(superseded)
                await self._p.messenger.send(chat, AutoApproved(change_id, diff, commit, decision.rule or ""))
                return None
        return change, superseded

    async def _run_agent(
        self, chat: ChatId, user: UserId, session: Session, prompt: Prompt, notes: tuple[str, ...] = ()
    ) -> tuple[AgentResult | None, AgentRunError | None]:
        clock = self._p.clock
        progress = Progress(prompt=prompt.text, started=clock.monotonic(), steps=list(notes))
        request = AgentRequest(
            prompt=prompt.text,
            session_id=session.agent_session_id,
            resume=session.agent_session_id is not None,
        )
        turn = RunningTurn(chat=chat, user=user, scope=anyio.CancelScope(), progress=progress)

        async def on_event(event: AgentEvent) -> None:
            step = _describe(event)
            if step:
                progress.steps.append(self._s.redact(step))
                progress.dirty = True
            if clock.monotonic() - progress.last_edit >= self._s.progress_interval_s:
                await self._edit_progress(turn.status_ref, progress)

        async def on_tool(tool_request: ToolRequest) -> ToolDecision:
            return await self._tools.decide(turn, tool_request)

        result: AgentResult | None = None
        failure: AgentRunError | None = None
        self._running[chat] = turn
        try:
            async with anyio.create_task_group() as tg:
                # The status message goes out while the agent starts: the agent never waits for Telegram.
                tg.start_soon(self._announce, turn)
                with turn.scope:
                    try:
                        result = await self._p.agent.run(
                            request, on_event, on_tool if self._s.tools is not None else None
                        )
                    except AgentRunError as exc:
                        failure = exc
                await turn.announced.wait()
                tg.cancel_scope.cancel()
            if turn.announce_error is not None:
                raise turn.announce_error
        finally:
            self._running.pop(chat, None)
        # cancel_called, not cancelled_caught: an agent may finish before it notices the cancellation.
        cancelled = turn.scope.cancel_called
        if cancelled:
            failure = None
            outcome = TurnOutcome.CANCELLED
        elif failure is not None or result is None or not result.success:
            outcome = TurnOutcome.FAILED
        else:
            outcome = TurnOutcome.FINISHED
        if turn.status_ref is not None:
            await self._p.messenger.edit(
                turn.status_ref,
                Working(
                    prompt=progress.prompt,
                    steps=tuple(progress.steps[-MAX_PROGRESS_STEPS:]),
                    elapsed_s=clock.monotonic() - progress.started,
                    cancellable=False,
                    finished=True,
                    outcome=outcome,
                    stop_reason=turn.stop_reason if cancelled else None,
                ),
            )
        if cancelled:
            await self._p.messenger.send(chat, Cancelled(was_running=True, reason=turn.stop_reason))
        if result is not None:
            result = self._tools.with_hints(result, turn)
        return result, failure

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

    async def shutdown(self, reason: str = "voicecoder is restarting") -> None:
        """
        The app is going down: end what waits for an answer nobody can give any more.

        Every open tool question is denied, the turns that were waiting on one are stopped and their users told.
        Turns not waiting on a question may finish. Raises nothing a caller must handle.
        """
        await self._tools.shutdown(reason)

    async def _announce(self, turn: RunningTurn) -> None:
        """Send the turn's status message, then keep 'typing…' and the elapsed time alive while the agent is quiet."""
        try:
            turn.status_ref = await self._p.messenger.send(turn.chat, self._working(turn.progress))
        except PortError as exc:
            # Without the status (and its ⏹ button) the turn must not go on: stop it, let the caller retry.
            turn.announce_error = exc
            turn.scope.cancel()
            return
        finally:
            turn.announced.set()
        while True:
            await self._p.messenger.typing(turn.chat)
            await anyio.sleep(self._s.typing_interval_s)
            await self._edit_progress(turn.status_ref, turn.progress)

    async def _show_progress(self, turn: RunningTurn) -> None:
        await self._edit_progress(turn.status_ref, turn.progress)

    async def _edit_progress(self, ref: MessageRef | None, progress: Progress) -> None:
        if ref is None:
            return  # the status message is still on its way; the next edit shows everything
        progress.last_edit = self._p.clock.monotonic()
        progress.dirty = False
        try:
            await self._p.messenger.edit(ref, self._working(progress))
        except PortError as exc:  # progress is cosmetic; the answer still goes out
            logger.info("progress edit failed: %s", exc)

    def _working(self, progress: Progress) -> Working:
        return Working(
            prompt=progress.prompt,
            steps=tuple(progress.steps[-MAX_PROGRESS_STEPS:]),
            elapsed_s=self._p.clock.monotonic() - progress.started,
        )

    async def _compact(self, chat: ChatId, session: Session) -> None:
        turns = session.turn_count
        sid = session.agent_session_id
        if sid is None:
            return

        async def ignore(_: AgentEvent) -> None:
            return None

        try:
            result = await self._p.agent.compact(sid, ignore)
        except AgentRunError as exc:
            await self._p.messenger.send(chat, Compaction(turns, ok=False, detail=self._s.redact(str(exc))))
            return
        async with self._state_lock:
            fresh = await self._session(chat)
            fresh.compacted()
            if result.session_id:
                fresh.agent_session_id = result.session_id
            await self._p.store.save_session(fresh)
        session.turn_count = 0
        session.agent_session_id = fresh.agent_session_id
        await self._p.messenger.send(
            chat, Compaction(turns, ok=result.success, detail=self._s.redact(result.text)[:200])
        )

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
        if not await self._guard(chat, user):
            return
        if self._workspace_lock.locked():
            await self._p.messenger.send(chat, self._error(TurnInProgressError()))
            return
        trail = await self._p.store.audit_trail(chat, 200)
        undone = {r.detail for r in trail if r.action == "undo"}
        target = next(
            (r for r in reversed(trail) if r.action == "approve" and r.commit_sha and r.commit_sha not in undone),
            None,
        )
        if target is None or target.commit_sha is None:
            await self._p.messenger.send(chat, self._error("Nothing to undo: no approved change of this chat is left."))
            return
        message = CommitMessage(
            subject='Revert "Apply changes from Claude"',
            body=f"This reverts commit {target.commit_sha}.\n\nPrompt: {target.prompt or ''}".rstrip(),
            trailers=(("Voicecoder-Undo", target.change_id.value if target.change_id else target.commit_sha),),
        )
        async with self._workspace_lock:
            try:
                commit = await self._p.workspace.revert_commit(
                    target.commit_sha, message=message, author=self._s.commit_author
                )
            except WorkspaceError as exc:
                await self._p.messenger.send(chat, self._error(exc))
                return
        await self._audit(
            chat, user, "undo", change_id=target.change_id, commit_sha=commit.sha, detail=target.commit_sha
        )
        await self._p.messenger.send(chat, ChangeReverted(target.commit_sha, commit))

    # --- decisions (buttons, or direct calls from a bot without buttons) ------------------------

    @_use_case
    async def approve(
        self,
        chat: ChatId,
        user: UserId,
        *,
        change_id: ChangeId | str | None = None,
        fingerprint: str | None = None,
        choice: ApprovalChoice | None = None,
    ) -> CommitInfo | None:
        """
        Commit the pending change of *chat*: what ✅ Approve does, for a bot without buttons.

        *change_id* defaults to the chat's pending change. *fingerprint* defaults to the diff voicecoder last
        showed; pass the (≥ 8 character prefix of the) fingerprint your own UI showed to be sure the user approves
        exactly what they saw. The chat gets `ChangeCommitted`, or an `ErrorReply` when there is nothing pending,
        the workspace changed since (`StaleChangeError`), a secret blocks it, a turn is running, or git failed.
        Where Claude's edits overlap the developer's uncommitted edits in a file (`Diff.overlapping`), *choice*
        says how to commit those files (`ApprovalChoice.WITH_MY_EDITS` or `LEAVE_OUT`); without one, the chat gets
        `ApprovalChoiceNeeded` (the two choices as buttons) and nothing is committed.

        Returns the commit, or None when nothing was committed.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return None
        try:
            decided = await self._approve_change(chat, user, _change_id(change_id), fingerprint, choice)
        except ApprovalChoiceRequiredError as exc:
            await self._ask_choice(chat, _change_id(change_id), exc)
            return None
        except (DomainError, WorkspaceError) as exc:
            await self._p.messenger.send(chat, self._error(exc))
            return None
        return await self._announce_commit(decided, choice)

    @_use_case
    async def reject(self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None) -> bool:
        """
        Put back exactly what the pending change of *chat* changed: what ❌ Reject does, for a bot without buttons.

        The chat gets `ChangeDiscarded`, or an `ErrorReply` (nothing pending, a turn running, git failed).
        Returns True when the change was discarded.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return False
        try:
            decided, restored = await self._reject_change(chat, user, _change_id(change_id))
        except (DomainError, WorkspaceError) as exc:
            await self._p.messenger.send(chat, self._error(exc))
            return False
        await self._announce_reject(decided, restored)
        return True

    @_use_case
    async def show_diff(self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None) -> Diff | None:
        """
        Send a change's diff (`DiffView`): what 📝 Show Diff does.

        The pending change's diff comes with ✅ ❌ buttons; *change_id* may also name a decided change, whose diff
        is sent marked with its decision. Returns the diff, or None (and an `ErrorReply`) when there is none.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return None
        try:
            view, pending = await self._diff_view(chat, _change_id(change_id))
        except (DomainError, WorkspaceError) as exc:
            await self._p.messenger.send(chat, self._error(exc))
            return None
        ref = await self._p.messenger.send(chat, view)
        if pending is not None:
            await self._remember_message(pending, ref)
        return view.diff

    @_use_case
    async def git_status(self, chat: ChatId, user: UserId) -> WorkspaceStatus | None:
        """
        Send the workspace's git status (`GitStatusView`): what 📊 Git Status does.

        Returns the status, or None (and an `ErrorReply`) when the workspace cannot be read.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return None
        try:
            status = await self._p.workspace.status()
        except WorkspaceError as exc:
            await self._p.messenger.send(chat, self._error(exc))
            return None
        await self._p.messenger.send(chat, GitStatusView(status))
        return status

    @_use_case
    async def cancel(self, chat: ChatId, user: UserId) -> bool:
        """
        Stop the running turn of *chat* (what ⏹ Cancel does); True if one was running.

        An unauthorized user cannot cancel (False, nothing is sent). The turn itself then reports `Cancelled`.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not self.is_authorized(user):
            return False
        turn = self._running.get(chat)
        if turn is not None:
            turn.scope.cancel()
        return turn is not None

    @_use_case
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
        Handle a press of one of voicecoder's buttons (decoded with `voicecoder.domain.callbacks.decode_callback`).

        ✅ Approve, ❌ Reject, 📝 Show Diff, 📊 Git Status and ⏹ Cancel do what `approve`, `reject`, `show_diff`,
        `git_status` and `cancel` do. ✅ Allow, 🔓 Allow for this session and ❌ Deny answer a tool question (the
        question is then edited to show the answer and who gave it: *user_name*, else the user id); 🧹 clears the
        session's tool rules. The press is acknowledged exactly once: with *answer* True (the default)
        through `Messenger.answer_callback(callback_id, …)`, before the resulting message is sent. If your bot
        framework acknowledges callbacks itself (aiogram's ``CallbackQuery.answer``, Telethon's ``event.answer``),
        pass ``answer=False`` and show the returned `CallbackAnswer` instead: answering twice is an error on
        Telegram. A refusal (not authorized, stale or already decided change, a running turn) is an alert answer,
        not an exception; a git failure is a short answer plus an `ErrorReply`.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not self.is_authorized(user):
            ack = CallbackAnswer("⛔ Not authorized", alert=True)
            await self._ack(callback_id, ack, answer=answer)
            await self.unauthorized(chat, user)
            return ack
        try:
            match button.action:
                case Action.APPROVE | Action.APPROVE_WITH_MY_EDITS | Action.APPROVE_LEAVE_OUT:
                    choice = button.action.choice
                    try:
                        decided = await self._approve_change(
                            chat, user, button.change_id, button.fingerprint or "", choice
                        )
                    except ApprovalChoiceRequiredError as exc:
                        ack = CallbackAnswer("Choose how to commit the overlapping files")
                        await self._ack(callback_id, ack, answer=answer)
                        await self._ask_choice(chat, button.change_id, exc)
                    else:
                        ack = CallbackAnswer(f"✅ Committed {_committed(decided).short_sha}")
                        await self._ack(callback_id, ack, answer=answer)
                        await self._announce_commit(decided, choice)
                case Action.REJECT:
                    decided, restored = await self._reject_change(chat, user, button.change_id)
                    ack = CallbackAnswer("❌ Changes discarded")
                    await self._ack(callback_id, ack, answer=answer)
                    await self._announce_reject(decided, restored)
                case Action.SHOW_DIFF:
                    view, pending = await self._diff_view(chat, button.change_id)
                    ack = CallbackAnswer()
                    await self._ack(callback_id, ack, answer=answer)
                    ref = await self._p.messenger.send(chat, view)
                    if pending is not None:
                        await self._remember_message(pending, ref)
                case Action.GIT_STATUS:
                    status = await self._p.workspace.status()
                    ack = CallbackAnswer()
                    await self._ack(callback_id, ack, answer=answer)
                    await self._p.messenger.send(chat, GitStatusView(status))
                case Action.CANCEL:
                    ack = CallbackAnswer("⏹ Cancelling…" if await self.cancel(chat, user) else "Nothing is running.")
                    await self._ack(callback_id, ack, answer=answer)
                case Action.TOOL_ALLOW | Action.TOOL_ALLOW_SESSION | Action.TOOL_DENY:
                    ack = await self._tools.answer(
                        chat, user, button, user_name, acknowledge=self._acker(callback_id, answer)
                    )
                case Action.CLEAR_PERMISSIONS:
                    ack = CallbackAnswer("🧹 Session rules cleared")
                    await self._ack(callback_id, ack, answer=answer)
                    await self._tools.permissions(chat, user, clear=True)
        except DomainError as exc:
            ack = CallbackAnswer(str(exc)[:190], alert=True)
            await self._ack(callback_id, ack, answer=answer)
        except WorkspaceError as exc:
            ack = CallbackAnswer("⚠️ Git error")
            await self._ack(callback_id, ack, answer=answer)
            await self._p.messenger.send(chat, self._error(exc))
        return ack

    async def _ack(self, callback_id: str, ack: CallbackAnswer, *, answer: bool) -> None:
        if answer:
            await self._p.messenger.answer_callback(callback_id, ack.text, alert=ack.alert)

    def _acker(self, callback_id: str, answer: bool) -> Callable[[CallbackAnswer], Awaitable[None]]:
        async def acknowledge(ack: CallbackAnswer) -> None:
            await self._ack(callback_id, ack, answer=answer)

        return acknowledge

    async def _approve_change(
        self,
        chat: ChatId,
        user: UserId,
        change_id: ChangeId | None,
        fingerprint: str | None,
        choice: ApprovalChoice | None = None,
    ) -> PendingChange:
        """
        Commit the pending change; returns it as stored, approved, with its commit.

        Raises ApprovalChoiceRequiredError when Claude's edits overlap the developer's and *choice* is None.
        """
        if self._workspace_lock.locked():
            raise TurnInProgressError
        async with self._workspace_lock:
            session = await self._session(chat)
            change = session.pending_change(change_id)
            change.check_approvable(change.diff.fingerprint if fingerprint is None else fingerprint, choice)
            return await self._commit(change, user, choice=choice)

    async def _ask_choice(self, chat: ChatId, change_id: ChangeId | None, why: ApprovalChoiceRequiredError) -> None:
        """Approve met overlapping edits without a choice: offer the two ways to commit them."""
        change = (await self._session(chat)).pending_change(change_id)
        logger.info("approve of %s needs a choice: %s", change.id, why)
        await self._p.messenger.send(chat, ApprovalChoiceNeeded(change.id, change.diff))

    async def _commit(
        self, change: PendingChange, user: UserId, *, auto: bool = False, choice: ApprovalChoice | None = None
    ) -> PendingChange:
        """Commit *change* (overlapping files as *choice* says); returns it as stored, approved, with its commit."""
        now = self._p.clock.now()
        trailers: list[tuple[str, str]] = [("Voicecoder-Change", change.id.value)]
        if change.agent_session_id:
            trailers.append(("Claude-Session", change.agent_session_id))
        if change.prompt.audio_digest:
            trailers.append(("Voice-Note-SHA256", change.prompt.audio_digest))
        trailers.append(("Diff-Fingerprint", change.diff.fingerprint))
        message = CommitMessage(
            subject=COMMIT_SUBJECT,
            body=f"Prompt: {change.prompt.text}\n\nTime: {now.isoformat(timespec='seconds')}",
            trailers=tuple(trailers),
        )
        commit = await self._p.workspace.commit_turn(
            change.baseline,
            fingerprint=change.diff.fingerprint,
            message=message,
            author=self._s.commit_author,
            choice=choice,
        )
        async with self._state_lock:
            session = await self._session(change.chat_id)
            stored = session.pending_change(change.id)
            stored.approve(user, commit, now=now, auto=auto)
            session.settle(stored)
            await self._p.store.save_session(session)
        await self._release(change.baseline)
        await self._audit(
            change.chat_id,
            user,
            "approve",
            change_id=change.id,
            prompt=change.prompt.text,
            audio_digest=change.prompt.audio_digest,
            agent_session_id=change.agent_session_id,
            diff_fingerprint=change.diff.fingerprint,
            commit_sha=commit.sha,
            detail=choice.value if choice is not None else None,
        )
        return stored

    async def _reject_change(
        self, chat: ChatId, user: UserId, change_id: ChangeId | None
    ) -> tuple[PendingChange, Restored]:
        """Take Claude's change back; returns it as stored, rejected, and what the workspace restored and kept."""
        if self._workspace_lock.locked():
            raise TurnInProgressError
        async with self._workspace_lock:
            session = await self._session(chat)
            change = session.pending_change(change_id)
            restored = await self._p.workspace.restore_turn(change.baseline)
            async with self._state_lock:
                session = await self._session(chat)
                stored = session.pending_change(change.id)
                stored.reject(user, now=self._p.clock.now())
                session.settle(stored)
                await self._p.store.save_session(session)
            await self._release(change.baseline)
        await self._audit(
            chat,
            user,
            "reject",
            change_id=change.id,
            prompt=change.prompt.text,
            diff_fingerprint=change.diff.fingerprint,
        )
        return stored, restored

    async def _announce_commit(self, decided: PendingChange, choice: ApprovalChoice | None = None) -> CommitInfo:
        """After Approve: the change's messages say it is committed, and `ChangeCommitted` tells the chat."""
        commit = _committed(decided)
        await self._mark_decided(decided)
        diff = decided.diff
        left_out = diff.overlapping if choice is ApprovalChoice.LEAVE_OUT else ()
        kept_yours = tuple(f.path for f in diff.files if f.owner is Ownership.BOTH)
        await self._p.messenger.send(
            decided.chat_id,
            ChangeCommitted(
                decided.id,
                commit,
                len(diff.files) - len(left_out),
                left_out=left_out,
                kept_yours=kept_yours,
                prompt=decided.prompt.text,
            ),
        )
        return commit

    async def _announce_reject(self, decided: PendingChange, restored: Restored) -> None:
        await self._mark_decided(decided)
        await self._p.messenger.send(
            decided.chat_id, ChangeDiscarded(decided.id, restored.restored, restored.merged, restored.kept)
        )

    async def _diff_view(self, chat: ChatId, change_id: ChangeId | None) -> tuple[DiffView, PendingChange | None]:
        """
        The diff a Show Diff button refers to.

        For the pending change, the change comes back too (its buttons go under the diff), and the diff is the
        workspace's now: late edits since the summary are listed, and the change's fingerprint moves with them, so
        older buttons stop working (while a turn runs, the stored diff is shown: the tree is still changing). A
        decided change's diff is marked with its decision.
        """
        session = await self._session(chat)
        pending = session.pending
        if pending is not None and pending.is_pending and (change_id in (None, pending.id)):
            return await self._current_diff(pending)
        if change_id is None:
            raise NoPendingChangeError
        change = await self._p.store.load_change(chat, change_id)
        if change is None:
            raise ChangeNotPendingError(change_id.value, "removed")
        return self._decided_diff(change), None

    async def _current_diff(self, change: PendingChange) -> tuple[DiffView, PendingChange]:
        if self._workspace_lock.locked():
            return DiffView(change.diff, change.id, self._blocked(change.findings)), change
        diff = await self._p.workspace.changes_since(change.baseline)
        if diff.fingerprint == change.diff.fingerprint:
            return DiffView(diff, change.id, self._blocked(change.findings)), change
        findings = tuple(await self._p.scanner.scan(diff)) if not diff.is_empty else ()
        async with self._state_lock:
            session = await self._session(change.chat_id)
            stored = session.pending_change(change.id)
            stored.refresh(diff, findings)
            await self._p.store.save_session(session)
        await self._audit(
            change.chat_id, None, "refresh", change_id=change.id, diff_fingerprint=diff.fingerprint, detail="late edits"
        )
        return DiffView(diff, change.id, self._blocked(findings), refreshed=True), stored

    def _decided_diff(self, change: PendingChange) -> DiffView:
        decision, detail = _decision_of(change)
        return DiffView(change.diff, change.id, decision=decision, decision_detail=detail)

    async def _remember_message(self, change: PendingChange, ref: MessageRef) -> None:
        """Note that *ref* shows *change*'s buttons, so they go when the change is decided."""
        async with self._state_lock:
            session = await self._session(change.chat_id)
            if session.pending is not None and session.pending.id == change.id and session.pending.is_pending:
                session.pending.message_ids = (*session.pending.message_ids, ref.message_id)
                await self._p.store.save_session(session)
                return
        # Decided while the message was on its way (e.g. an Approve raced the Show Diff): take its buttons now.
        decided = await self._p.store.load_change(change.chat_id, change.id)
        if decided is not None and not decided.is_pending:
            await self._edit_quietly(ref, self._decided_diff(decided) if change.message_ids else self._summary(decided))

    async def _mark_decided(self, change: PendingChange) -> None:
        """Edit every message showing the change: the summary says what happened; no Approve/Reject is left."""
        for n, message_id in enumerate(change.message_ids):
            reply = self._summary(change) if n == 0 else self._decided_diff(change)
            await self._edit_quietly(MessageRef(change.chat_id, message_id), reply)

    async def _edit_quietly(self, ref: MessageRef, reply: Reply) -> None:
        try:
            await self._p.messenger.edit(ref, reply)
        except PortError as exc:  # cosmetic: the decision itself is recorded and was announced
            logger.info("could not update message %s after a decision: %s", ref.message_id, exc)

    # --- helpers --------------------------------------------------------------

    async def _release(self, baseline: Baseline) -> None:
        """The turn is settled: its checkpoint may go (housekeeping, so a failure is only logged)."""
        try:
            await self._p.workspace.release_turn(baseline)
        except WorkspaceError as exc:
            logger.warning("could not release checkpoint of turn %s: %s", baseline.turn_id, exc)

    async def _session(self, chat: ChatId) -> Session:
        session = await self._p.store.load_session(chat)
        if session is None:
            session = Session(chat_id=chat, compaction_threshold=self._s.compaction_threshold)
        return session

    @_use_case
    async def pending_diff(self, chat: ChatId) -> Diff:
        """
        The diff of the pending change, without sending anything.

        Raises:
            NoPendingChangeError: Nothing is pending in *chat*.
            StateStoreError: The session store could not be read.
        """
        session = await self._session(chat)
        if session.pending is None or not session.pending.is_pending:
            raise NoPendingChangeError
        return session.pending.diff

    def _summary(self, change: PendingChange, *, superseded_previous: bool = False) -> ChangeSummary:
        decision, detail = _decision_of(change)
        return ChangeSummary(
            change_id=change.id,
            diff=change.diff,
            blocked_reasons=self._blocked(change.findings),
            superseded_previous=superseded_previous,
            decision=decision,
            decision_detail=detail,
        )

    @staticmethod
    def _blocked(findings: tuple[SecretFinding, ...]) -> tuple[str, ...]:
        return tuple(f"possible secret: {f}" for f in findings)

    def _answer(self, result: AgentResult) -> AgentAnswer:
        redact = self._s.redact
        return AgentAnswer(
            text=redact(result.text),
            success=result.success,
            cost_usd=result.cost_usd,
            num_turns=result.num_turns,
            duration_ms=result.duration_ms,
            permission_denials=tuple(
                attrs.evolve(d, label=redact(d.label), hint=redact(d.hint)) for d in result.permission_denials
            ),
            notices=tuple(redact(n) for n in result.notices),
            errors=tuple(redact(e) for e in result.errors),
        )

    async def _audit(
        self,
        chat: ChatId,
        user: UserId | None,
        action: str,
        *,
        change_id: ChangeId | None = None,
        audio_digest: str | None = None,
        transcript: str | None = None,
        prompt: str | None = None,
        agent_session_id: str | None = None,
        diff_fingerprint: str | None = None,
        commit_sha: str | None = None,
        detail: str | None = None,
    ) -> None:
        await self._p.store.append_audit(
            AuditRecord(
                at=self._p.clock.now(),
                chat_id=chat,
                user_id=user,
                action=action,
                change_id=change_id,
                audio_digest=audio_digest,
                transcript=transcript,
                prompt=prompt,
                agent_session_id=agent_session_id,
                diff_fingerprint=diff_fingerprint,
                commit_sha=commit_sha,
                detail=detail,
            )
        )


_DECISIONS = {
    ChangeStatus.APPROVED: Decision.APPROVED,
    ChangeStatus.AUTO_APPROVED: Decision.AUTO_APPROVED,
    ChangeStatus.REJECTED: Decision.REJECTED,
    ChangeStatus.SUPERSEDED: Decision.SUPERSEDED,
}


def _committed(change: PendingChange) -> CommitInfo:
    if change.commit is None:  # pragma: no cover - approve() always records the commit
        raise WorkspaceError(f"change {change.id} was approved without a commit")
    return change.commit


def _decision_of(change: PendingChange) -> tuple[Decision | None, str]:
    """What became of *change* (None while pending) and a detail to show with it (the commit's short sha)."""
    return _DECISIONS.get(change.status), change.commit.short_sha if change.commit is not None else ""


def _change_id(value: ChangeId | str | None) -> ChangeId | None:
    if value is None or isinstance(value, ChangeId):
        return value
    try:
        return ChangeId(value)
    except ValueError:
        raise MalformedUpdateError(f"{value[:40]!r} is not a change id") from None


def _describe(event: AgentEvent) -> str | None:
    match event:
        case ToolStarted(label=label):
            return f"🔧 {label}"
        case ToolFinished(ok=False, summary=summary):
            return f"⚠️ failed: {summary[:80]}" if summary else "⚠️ a step failed"
        case PermissionDenied(label=label):
            return f"🚫 not allowed: {label}"
        case ApiRetry(attempt=attempt):
            return f"🔁 API retry {attempt}"
        case Compacted():
            return "🗜 context compacted"
        case Notice(text=text):
            return f"ℹ️ {text}"
        case AssistantText():
            return None
    return None
