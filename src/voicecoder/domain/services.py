"""
The use cases of voicecoder, over the ports.

`VoiceCoder` is the facade a transport (Telegram webhook, polling, Telethon, an embedder's own bot)
calls. Each method is one use case; every outcome reaches the user through the `Messenger` port as a
structured reply, and domain errors become `ErrorReply`s. Only port failures that the transport can
retry (e.g. `DeliveryError`) propagate.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime

import anyio
import attrs

from voicecoder.domain.errors import (
    AgentRunError,
    DomainError,
    EmptyPromptError,
    NoPendingChangeError,
    PortError,
    TranscriptionError,
    TurnInProgressError,
    WorkspaceError,
)
from voicecoder.domain.model import (
    DEFAULT_COMPACTION_THRESHOLD,
    AgentEvent,
    AgentRequest,
    AgentResult,
    ApiRetry,
    AssistantText,
    Audio,
    AuditRecord,
    Baseline,
    ChangeId,
    ChatId,
    CommitInfo,
    CommitMessage,
    Compacted,
    Diagnostic,
    Diff,
    Notice,
    PendingChange,
    PermissionDenied,
    Prompt,
    Session,
    ToolFinished,
    ToolStarted,
    TranscriptionHints,
    TurnId,
    UserId,
)
from voicecoder.domain.policy import ApprovalPolicy, Verdict
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
    AutoApproved,
    Button,
    Cancelled,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeReverted,
    ChangeSummary,
    Compaction,
    DiffView,
    ErrorReply,
    GitStatusView,
    Heard,
    HelpText,
    InfoReport,
    MessageRef,
    NoChanges,
    Queued,
    SessionCleared,
    SpeechCheck,
    StalePrompt,
    StatusReport,
    Unauthorized,
    Welcome,
    Working,
)

logger = logging.getLogger(__name__)

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "Welcome and how to use the bot"),
    ("help", "Commands and tips"),
    ("status", "Session, turns, pending change, branch, latest commit"),
    ("clear", "Start a fresh Claude session"),
    ("info", "Diagnostics of every dependency"),
    ("undo", "Revert the last approved change with a new commit"),
)

COMMIT_SUBJECT = "Apply changes from Claude"
MAX_PROGRESS_STEPS = 8


def _random_hex(n_bytes: int) -> str:
    return secrets.token_hex(n_bytes)


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
    max_prompt_age_s: float | None = None
    """Prompts (typed or spoken) sent longer ago than this are answered with a notice instead of a paid run."""


@attrs.define
class _Progress:
    """Live state of a running turn, rendered into the one status message."""

    prompt: str
    started: float
    steps: list[str] = attrs.field(factory=list)
    last_edit: float = 0.0
    dirty: bool = False


class VoiceCoder:
    """The application: one instance per workspace."""

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
        self._running: dict[ChatId, anyio.CancelScope] = {}

    @property
    def ports(self) -> Ports:
        return self._p

    @property
    def settings(self) -> Settings:
        return self._s

    # --- access ---------------------------------------------------------------

    def is_authorized(self, user: UserId) -> bool:
        return user in self._s.allowed_users

    async def unauthorized(self, chat: ChatId, user: UserId) -> None:
        logger.warning("unauthorized user %s in chat %s", user, chat)
        await self._p.messenger.send(chat, Unauthorized(user.value))

    async def _guard(self, chat: ChatId, user: UserId) -> bool:
        if self.is_authorized(user):
            return True
        await self.unauthorized(chat, user)
        return False

    # --- simple commands ------------------------------------------------------

    async def start(self, chat: ChatId, user: UserId, user_name: str | None = None) -> None:
        if await self._guard(chat, user):
            await self._p.messenger.send(chat, Welcome(user_name, self._s.workspace_path))

    async def help(self, chat: ChatId, user: UserId) -> None:
        if await self._guard(chat, user):
            await self._p.messenger.send(chat, HelpText(COMMANDS))

    async def clear(self, chat: ChatId, user: UserId) -> None:
        if not await self._guard(chat, user):
            return
        async with self._state_lock:
            session = await self._session(chat)
            session.clear(now=self._p.clock.now())
            await self._p.store.save_session(session)
        await self._audit(chat, user, "clear")
        await self._p.messenger.send(chat, SessionCleared(kept_pending=session.pending is not None))

    async def status(self, chat: ChatId, user: UserId) -> None:
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
        )
        await self._p.messenger.send(chat, report)

    async def info(self, chat: ChatId, user: UserId) -> None:
        if not await self._guard(chat, user):
            return
        await self._p.messenger.send(chat, InfoReport(tuple(await self.diagnose())))

    async def diagnose(self) -> list[Diagnostic]:
        """Every dependency's checks; used by /info and `voicecoder doctor`."""
        results: list[Diagnostic] = []
        for item in self._p.diagnosables:
            try:
                results.extend(await item.diagnose())
            except Exception as exc:  # a broken check must not hide the others
                results.append(Diagnostic(type(item).__name__, ok=False, detail=f"check failed: {exc}"))
        return results

    # --- prompts --------------------------------------------------------------

    async def prompt(self, chat: ChatId, user: UserId, text: str, *, sent_at: datetime | None = None) -> None:
        """
        Run the agent on a typed prompt.

        *sent_at* is when the user sent it; a prompt older than the configured maximum age (it waited out an
        outage) is answered with a notice instead of starting a run.
        """
        if not await self._guard(chat, user):
            return
        if not text.strip():
            await self._p.messenger.send(chat, ErrorReply(str(EmptyPromptError())))
            return
        if await self._stale(chat, user, sent_at, prompt=text.strip()):
            return
        await self._turn(chat, user, Prompt.typed(text.strip()))

    async def voice(
        self,
        chat: ChatId,
        user: UserId,
        audio: Audio,
        *,
        language: str | None = None,
        sent_at: datetime | None = None,
    ) -> None:
        """Transcribe a voice note and run the agent on it; a stale one (see `prompt`) is not even transcribed."""
        if not await self._guard(chat, user):
            return
        if await self._stale(chat, user, sent_at, voice_duration_s=audio.declared_duration_s):
            return
        await self._p.messenger.typing(chat)
        try:
            transcript = await self._p.transcriber.transcribe(audio, await self._hints(language))
        except TranscriptionError as exc:
            await self._audit(chat, user, "transcription-failed", audio_digest=audio.digest, detail=str(exc))
            await self._p.messenger.send(chat, ErrorReply(str(exc)))
            return
        await self._p.messenger.send(chat, Heard(transcript.text, transcript.confidence, transcript.language))
        prompt = Prompt.from_transcript(transcript, audio)
        await self._audit(chat, user, "transcribed", audio_digest=audio.digest, transcript=transcript.text)
        await self._turn(chat, user, prompt)

    async def hear(self, chat: ChatId, user: UserId, audio: Audio, *, language: str | None = None) -> None:
        """
        A speech check: transcribe *audio* and say what was heard and how long it took; nothing is run.

        The operator's test of the deployed bot (`voicecoder selftest`, or a voice note captioned /selftest)
        measures the voice path without starting a paid agent run.
        """
        if not await self._guard(chat, user):
            return
        await self._p.messenger.typing(chat)
        started = self._p.clock.monotonic()
        try:
            transcript = await self._p.transcriber.transcribe(audio, await self._hints(language))
        except TranscriptionError as exc:
            await self._p.messenger.send(chat, ErrorReply(str(exc)))
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
            await self._locked_turn(chat, user, prompt)
        finally:
            self._workspace_lock.release()

    async def _locked_turn(self, chat: ChatId, user: UserId, prompt: Prompt) -> None:
        now = self._p.clock.now()
        session = await self._session(chat)
        if session.needs_compaction:
            await self._compact(chat, session)

        previous = session.pending if session.pending is not None and session.pending.is_pending else None
        turn_id = TurnId(f"{now:%Y%m%dT%H%M%S}-{self._new_id(4)}")
        recovered = session.open_turn is not None and previous is None
        try:
            # A new turn on top of a pending change extends it: the diff stays cumulative from the
            # first baseline, so Reject always returns to the tree the user last approved. A turn that
            # was cut off by a restart is extended the same way, so its edits still need approval.
            if previous is not None:
                baseline = previous.baseline
            elif session.open_turn is not None:
                baseline = session.open_turn
            else:
                baseline = await self._p.workspace.begin_turn(turn_id)
        except WorkspaceError as exc:
            await self._p.messenger.send(chat, ErrorReply(str(exc)))
            return
        async with self._state_lock:
            fresh = await self._session(chat)
            fresh.open_turn = baseline
            await self._p.store.save_session(fresh)
        await self._audit(chat, user, "prompt", prompt=prompt.text, audio_digest=prompt.audio_digest)

        notes = ("↩️ includes edits from a turn interrupted by a restart",) if recovered else ()
        result, failure = await self._run_agent(chat, session, prompt, notes)

        async with self._state_lock:
            session = await self._session(chat)
            if result is not None:
                session.record_turn(result.session_id, now=self._p.clock.now())
            await self._p.store.save_session(session)
        if result is not None:
            await self._p.messenger.send(chat, self._answer(result))
            await self._audit(chat, user, "answer", agent_session_id=result.session_id, detail=result.subtype)
        if failure is not None:
            await self._p.messenger.send(chat, ErrorReply(failure))

        # Whatever happened, the agent may have touched the tree: always look.
        await self._settle_turn(chat, user, prompt, turn_id, baseline, previous, result)

    async def _settle_turn(
        self,
        chat: ChatId,
        user: UserId,
        prompt: Prompt,
        turn_id: TurnId,
        baseline: Baseline,
        previous: PendingChange | None,
        result: AgentResult | None,
    ) -> None:
        try:
            diff = await self._p.workspace.changes_since(baseline)
        except WorkspaceError as exc:
            await self._p.messenger.send(chat, ErrorReply(str(exc)))
            return
        findings = tuple(await self._p.scanner.scan(diff)) if not diff.is_empty else ()
        decision = self._s.policy.decide(diff, findings)
        now = self._p.clock.now()
        change_id = ChangeId(self._new_id(8))
        agent_session = result.session_id if result else None

        if decision.verdict is Verdict.NO_CHANGES:
            async with self._state_lock:
                session = await self._session(chat)
                if previous is not None and session.pending is not None and session.pending.is_pending:
                    session.pending.supersede(change_id, now=now)
                    session.pending = None
                session.open_turn = None
                await self._p.store.save_session(session)
            await self._release(baseline)
            await self._p.messenger.send(chat, NoChanges())
            return

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
                commit = await self._commit(change, user, auto=True)
            except (DomainError, WorkspaceError) as exc:
                await self._p.messenger.send(chat, ErrorReply(str(exc)))
            else:
                await self._p.messenger.send(chat, AutoApproved(change_id, diff, commit, decision.rule or ""))
                return
        await self._p.messenger.send(chat, self._summary(change, superseded_previous=superseded is not None))

    async def _run_agent(
        self, chat: ChatId, session: Session, prompt: Prompt, notes: tuple[str, ...] = ()
    ) -> tuple[AgentResult | None, str | None]:
        clock = self._p.clock
        progress = _Progress(prompt=prompt.text, started=clock.monotonic(), steps=list(notes))
        status_ref = await self._p.messenger.send(chat, self._working(progress))
        request = AgentRequest(
            prompt=prompt.text,
            session_id=session.agent_session_id,
            resume=session.agent_session_id is not None,
        )

        async def on_event(event: AgentEvent) -> None:
            step = _describe(event)
            if step:
                progress.steps.append(step)
                progress.dirty = True
            if clock.monotonic() - progress.last_edit >= self._s.progress_interval_s:
                await self._edit_progress(status_ref, progress)

        result: AgentResult | None = None
        failure: str | None = None
        scope = anyio.CancelScope()
        self._running[chat] = scope
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, chat, status_ref, progress)
                with scope:
                    try:
                        result = await self._p.agent.run(request, on_event)
                    except AgentRunError as exc:
                        failure = str(exc)
                tg.cancel_scope.cancel()
            if scope.cancelled_caught:
                failure = None
                await self._p.messenger.send(chat, Cancelled(was_running=True))
        finally:
            self._running.pop(chat, None)
        await self._p.messenger.edit(
            status_ref,
            Working(
                prompt=progress.prompt,
                steps=tuple(progress.steps[-MAX_PROGRESS_STEPS:]),
                elapsed_s=clock.monotonic() - progress.started,
                cancellable=False,
                finished=True,
            ),
        )
        return result, failure

    async def _heartbeat(self, chat: ChatId, ref: MessageRef, progress: _Progress) -> None:
        """Keep 'typing…' and the elapsed time alive while the agent is quiet."""
        while True:
            await self._p.messenger.typing(chat)
            await anyio.sleep(self._s.typing_interval_s)
            await self._edit_progress(ref, progress)

    async def _edit_progress(self, ref: MessageRef, progress: _Progress) -> None:
        progress.last_edit = self._p.clock.monotonic()
        progress.dirty = False
        try:
            await self._p.messenger.edit(ref, self._working(progress))
        except PortError as exc:  # progress is cosmetic; the answer still goes out
            logger.info("progress edit failed: %s", exc)

    def _working(self, progress: _Progress) -> Working:
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
            await self._p.messenger.send(chat, Compaction(turns, ok=False, detail=str(exc)))
            return
        async with self._state_lock:
            fresh = await self._session(chat)
            fresh.compacted()
            if result.session_id:
                fresh.agent_session_id = result.session_id
            await self._p.store.save_session(fresh)
        session.turn_count = 0
        session.agent_session_id = fresh.agent_session_id
        await self._p.messenger.send(chat, Compaction(turns, ok=result.success, detail=result.text[:200]))

    async def undo(self, chat: ChatId, user: UserId) -> None:
        """Revert this chat's latest approved change that is not reverted yet, with a new commit."""
        if not await self._guard(chat, user):
            return
        if self._workspace_lock.locked():
            await self._p.messenger.send(chat, ErrorReply(str(TurnInProgressError())))
            return
        trail = await self._p.store.audit_trail(chat, 200)
        undone = {r.detail for r in trail if r.action == "undo"}
        target = next(
            (r for r in reversed(trail) if r.action == "approve" and r.commit_sha and r.commit_sha not in undone),
            None,
        )
        if target is None or target.commit_sha is None:
            await self._p.messenger.send(chat, ErrorReply("Nothing to undo: no approved change of this chat is left."))
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
                await self._p.messenger.send(chat, ErrorReply(str(exc)))
                return
        await self._audit(
            chat, user, "undo", change_id=target.change_id, commit_sha=commit.sha, detail=target.commit_sha
        )
        await self._p.messenger.send(chat, ChangeReverted(target.commit_sha, commit))

    # --- buttons --------------------------------------------------------------

    async def press(self, chat: ChatId, user: UserId, callback_id: str, button: Button) -> None:
        if not self.is_authorized(user):
            await self._p.messenger.answer_callback(callback_id, "⛔ Not authorized", alert=True)
            await self.unauthorized(chat, user)
            return
        try:
            match button.action:
                case Action.APPROVE:
                    await self._approve(chat, user, callback_id, button)
                case Action.REJECT:
                    await self._reject(chat, user, callback_id, button)
                case Action.SHOW_DIFF:
                    await self._p.messenger.answer_callback(callback_id)
                    await self._show_diff(chat, button)
                case Action.GIT_STATUS:
                    await self._p.messenger.answer_callback(callback_id)
                    await self._p.messenger.send(chat, GitStatusView(await self._p.workspace.status()))
                case Action.CANCEL:
                    await self._cancel(chat, callback_id)
        except DomainError as exc:
            await self._p.messenger.answer_callback(callback_id, str(exc)[:190], alert=True)
        except WorkspaceError as exc:
            await self._p.messenger.answer_callback(callback_id, "⚠️ Git error")
            await self._p.messenger.send(chat, ErrorReply(str(exc)))

    async def _approve(self, chat: ChatId, user: UserId, callback_id: str, button: Button) -> None:
        if self._workspace_lock.locked():
            raise TurnInProgressError
        async with self._workspace_lock:
            session = await self._session(chat)
            change = session.pending_change(button.change_id)
            change.check_approvable(button.fingerprint or "")
            commit = await self._commit(change, user)
        await self._p.messenger.answer_callback(callback_id, f"✅ Committed {commit.short_sha}")
        await self._p.messenger.send(chat, ChangeCommitted(change.id, commit, len(change.diff.files)))

    async def _commit(self, change: PendingChange, user: UserId, *, auto: bool = False) -> CommitInfo:
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
            change.baseline, fingerprint=change.diff.fingerprint, message=message, author=self._s.commit_author
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
        )
        return commit

    async def _reject(self, chat: ChatId, user: UserId, callback_id: str, button: Button) -> None:
        if self._workspace_lock.locked():
            raise TurnInProgressError
        async with self._workspace_lock:
            session = await self._session(chat)
            change = session.pending_change(button.change_id)
            await self._p.workspace.restore_turn(change.baseline)
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
        await self._p.messenger.answer_callback(callback_id, "❌ Changes discarded")
        await self._p.messenger.send(chat, ChangeDiscarded(change.id, change.diff.paths))

    async def _show_diff(self, chat: ChatId, button: Button) -> None:
        session = await self._session(chat)
        change = session.pending_change(button.change_id)
        await self._p.messenger.send(chat, DiffView(change.diff, change.id))

    async def _cancel(self, chat: ChatId, callback_id: str) -> None:
        scope = self._running.get(chat)
        if scope is None:
            await self._p.messenger.answer_callback(callback_id, "Nothing is running.")
            return
        scope.cancel()
        await self._p.messenger.answer_callback(callback_id, "⏹ Cancelling…")

    async def cancel(self, chat: ChatId, user: UserId) -> bool:
        """Cancel the running turn of *chat* (for embedders without buttons). True if one was running."""
        if not self.is_authorized(user):
            return False
        scope = self._running.get(chat)
        if scope is not None:
            scope.cancel()
        return scope is not None

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

    async def pending_diff(self, chat: ChatId) -> Diff:
        """The diff of the pending change (for embedders)."""
        session = await self._session(chat)
        if session.pending is None or not session.pending.is_pending:
            raise NoPendingChangeError
        return session.pending.diff

    def _summary(self, change: PendingChange, *, superseded_previous: bool = False) -> ChangeSummary:
        return ChangeSummary(
            change_id=change.id,
            diff=change.diff,
            blocked_reasons=tuple(f"possible secret: {f}" for f in change.findings),
            superseded_previous=superseded_previous,
        )

    @staticmethod
    def _answer(result: AgentResult) -> AgentAnswer:
        return AgentAnswer(
            text=result.text,
            success=result.success,
            cost_usd=result.cost_usd,
            num_turns=result.num_turns,
            duration_ms=result.duration_ms,
            permission_denials=result.permission_denials,
            notices=result.notices,
            errors=result.errors,
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
