"""
A turn: a prompt (typed, or a voice note once transcribed) run by the agent in the workspace, and what it left.

One turn at a time holds the workspace (a later one is `Queued`). Its state changes in two units of work: the
begin (the checkpoint is taken and the open turn saved before the agent may touch the tree, so a crash leaves a
turn the next prompt settles) and the settle (the agent's session, the new pending change and the closed turn,
saved together once the tree's end state is recorded). Then the chat is told: the answer, and the change to
review, `NoChanges`, or `AutoApproved`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import anyio
import attrs

from voicecoder.domain.context import AppContext
from voicecoder.domain.decisions import Decisions, committed
from voicecoder.domain.errors import (
    AgentRunError,
    ConfigurationError,
    DomainError,
    PortError,
    TranscriptionError,
    WorkspaceError,
)
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    ApiRetry,
    AssistantText,
    Audio,
    AuditAction,
    Baseline,
    ChangeId,
    ChatId,
    Compacted,
    EndedTurn,
    Notice,
    PendingChange,
    PermissionDenied,
    Prompt,
    PromptSource,
    ToolDecision,
    ToolFinished,
    ToolRequest,
    ToolStarted,
    Transcript,
    TranscriptionHints,
    TurnId,
    UserId,
)
from voicecoder.domain.policy import Verdict
from voicecoder.domain.replies import (
    AgentAnswer,
    AutoApproved,
    Cancelled,
    Compaction,
    InterruptedPrompt,
    MessageRef,
    NoChanges,
    Queued,
    StalePrompt,
    TurnOutcome,
    Working,
)
from voicecoder.domain.tool_questions import Progress, RunningTurn, ToolQuestions

__all__ = ["MAX_PROGRESS_STEPS", "Turns"]

logger = logging.getLogger(__name__)

MAX_PROGRESS_STEPS = 8

Review = tuple[PendingChange, PendingChange | None]
"""A new pending change to show with its buttons, and the pending change it replaced (if any)."""


@attrs.frozen
class _Begun:
    """What the begin of a turn read and wrote."""

    baseline: Baseline
    previous: PendingChange | None
    recovered: bool
    agent_session_id: str | None
    compaction: tuple[int, str] | None
    """(turns so far, agent session) when the agent's context is due for compaction before this turn."""
    interrupted: Prompt | None = None
    """The prompt was the open turn's own, delivered again after a restart: settle that turn, do not run it."""


class Turns:
    """Prompts, voice notes and speech checks."""

    def __init__(self, context: AppContext, decisions: Decisions, tools: ToolQuestions) -> None:
        self._c = context
        self._decisions = decisions
        self._tools = tools
        self._waiting = 0

    # --- speech ---------------------------------------------------------------

    async def transcribe(self, chat: ChatId, user: UserId, audio: Audio, language: str | None) -> Transcript | None:
        """What *audio* says (with the workspace's names as hints); None, and the chat told why, when it cannot."""
        c = self._c
        await c.ports.messenger.typing(chat)
        try:
            return await c.ports.transcriber.transcribe(audio, await self._hints(language))
        except (TranscriptionError, ConfigurationError) as exc:
            await c.audit(chat, user, AuditAction.TRANSCRIPTION_FAILED, audio_digest=audio.digest, detail=str(exc))
            await c.ports.messenger.send(chat, c.error(exc))
            return None

    async def _hints(self, language: str | None) -> TranscriptionHints:
        """The workspace's names as recognition hints, as every voice note gets them."""
        vocabulary = self._c.ports.vocabulary
        return TranscriptionHints(
            keyterms=await vocabulary.vocabulary() if vocabulary else (),
            language=language or self._c.settings.default_language,
        )

    def _age_over_limit(self, sent_at: datetime | None) -> tuple[float, float] | None:
        """(age, limit) of a prompt sent at *sent_at* when it is older than the configured maximum, else None."""
        limit = self._c.settings.max_prompt_age_s
        if limit is None or sent_at is None:
            return None
        age = (self._c.ports.clock.now() - sent_at).total_seconds()
        return (age, limit) if age > limit else None

    def is_stale(self, sent_at: datetime | None) -> bool:
        """Whether a prompt sent at *sent_at* is older than the configured maximum age."""
        return self._age_over_limit(sent_at) is not None

    async def refuse_stale(
        self,
        chat: ChatId,
        user: UserId,
        sent_at: datetime | None,
        *,
        prompt: str | None = None,
        voice_duration_s: float | None = None,
    ) -> None:
        """Tell the user a prompt sent at *sent_at* (`is_stale`) is not run, and why."""
        c = self._c
        over = self._age_over_limit(sent_at)
        if over is None:  # pragma: no cover - callers check is_stale first
            return
        age, limit = over
        logger.info("prompt in chat %s not run: sent %.0f s ago, over the %.0f s limit", chat, age, limit)
        await c.audit(chat, user, AuditAction.STALE_PROMPT, prompt=prompt, detail=f"sent {age:.0f} s before processing")
        await c.ports.messenger.send(
            chat, StalePrompt(age_s=age, max_age_s=limit, prompt=prompt, voice_duration_s=voice_duration_s)
        )

    # --- the turn -------------------------------------------------------------

    async def interrupted(self, chat: ChatId, prompt: Prompt, sent_at: datetime | None) -> bool:
        """Whether *prompt* is the prompt of *chat*'s open turn delivered again (`Session.interrupted_by`)."""
        return (await self._c.sessions.read(chat)).interrupted_by(prompt, sent_at)

    async def take_rerun(self, chat: ChatId) -> tuple[Prompt, datetime | None] | None:
        """
        The prompt 🔁 runs again (and forget the offer), or None when there is none.

        When the run it started was itself cut off, its open turn's prompt is the one: running it with its own
        send time settles that turn and offers it again.
        """
        async with self._c.sessions.update(chat) as session:
            if session.rerun is not None:
                prompt, session.rerun = session.rerun, None
                return prompt, None
            if session.open_turn is not None and session.open_prompt is not None:
                return session.open_prompt, session.open_prompt_sent_at
        return None

    async def run(self, chat: ChatId, user: UserId, prompt: Prompt, sent_at: datetime | None = None) -> None:
        """
        Run *prompt* (sent at *sent_at*) as one turn, after the turns before it.

        If it is the prompt of a turn a restart cut off, delivered again, that turn is settled instead and the chat
        is asked whether to run it again (`InterruptedPrompt`): it is never run twice without the user's say-so.
        """
        c = self._c
        if c.workspace_lock.locked():
            self._waiting += 1
            try:
                await c.ports.messenger.send(chat, Queued(ahead=self._waiting))
                await c.workspace_lock.acquire()
            finally:
                self._waiting -= 1
        else:
            await c.workspace_lock.acquire()
        try:
            review = await self._locked_turn(chat, user, prompt, sent_at)
        finally:
            c.workspace_lock.release()
        if review is not None:
            # Sent once the workspace is free, so an Approve tapped the moment the buttons show is not refused
            # as "a turn is running".
            await self._ask_for_review(*review)

    async def _ask_for_review(self, change: PendingChange, superseded: PendingChange | None) -> None:
        c = self._c
        ref = await c.ports.messenger.send(
            change.chat_id, c.summary(change, superseded_previous=superseded is not None)
        )
        await c.remember_message(change, ref)
        if superseded is not None:
            await c.mark_decided(superseded)

    async def _begin(self, chat: ChatId, turn_id: TurnId, prompt: Prompt, sent_at: datetime | None) -> _Begun:
        """Take the turn's checkpoint and save it as the open turn (one unit of work); raises WorkspaceError."""
        c = self._c
        async with c.sessions.update(chat) as session:
            previous = session.pending
            open_turn, opened = session.open_turn, session.open_prompt
            if open_turn is not None and opened is not None and session.interrupted_by(prompt, sent_at):
                session.rerun = opened
                return _Begun(
                    baseline=open_turn,
                    previous=previous,
                    recovered=True,
                    agent_session_id=session.agent_session_id,
                    compaction=None,
                    interrupted=opened,
                )
            # A turn that was cut off by a restart is continued, so its edits still need approval. A new turn
            # on top of a pending change extends it: the diff stays cumulative from the first baseline, so
            # Reject always returns to the tree the user last approved, while the developer's own edits made
            # since that change's turn end become part of the new baseline and stay theirs.
            if session.open_turn is not None:
                baseline = session.open_turn
            elif previous is not None:
                baseline = await c.ports.workspace.begin_turn(turn_id, extends=previous.baseline)
            else:
                baseline = await c.ports.workspace.begin_turn(turn_id)
            begun = _Begun(
                baseline=baseline,
                previous=previous,
                recovered=session.open_turn is not None and previous is None,
                agent_session_id=session.agent_session_id,
                compaction=(
                    (session.turn_count, session.agent_session_id)
                    if session.needs_compaction and session.agent_session_id is not None
                    else None
                ),
            )
            session.open_turn = baseline
            session.open_prompt, session.open_prompt_sent_at = prompt, sent_at
        return begun

    async def _locked_turn(self, chat: ChatId, user: UserId, prompt: Prompt, sent_at: datetime | None) -> Review | None:
        """Run the turn; returns the new pending change (and the one it replaced) for review, if there is one."""
        c = self._c
        turn_id = TurnId(f"{c.ports.clock.now():%Y%m%dT%H%M%S}-{c.new_id(4)}")
        try:
            begun = await self._begin(chat, turn_id, prompt, sent_at)
        except WorkspaceError as exc:
            await c.ports.messenger.send(chat, c.error(exc))
            return None
        if begun.interrupted is not None:
            return await self._settle_interrupted(chat, user, begun, begun.interrupted)
        await c.audit(chat, user, AuditAction.PROMPT, prompt=prompt.text, audio_digest=prompt.audio_digest)
        agent_session = begun.agent_session_id
        if begun.compaction is not None:
            agent_session = await self._compact(chat, *begun.compaction)

        notes = ("↩️ includes edits from a turn interrupted by a restart",) if begun.recovered else ()
        result, failure = await self._run_agent(chat, user, agent_session, prompt, notes)
        return await self._settle(chat, user, prompt, turn_id, begun, result, failure)

    async def _settle_interrupted(self, chat: ChatId, user: UserId, begun: _Begun, prompt: Prompt) -> Review | None:
        """The prompt of a cut-off turn came again: settle that turn as it stands and offer to run the prompt again."""
        c = self._c
        logger.info("chat %s: a prompt cut off by a restart arrived again; settling its turn, not running it", chat)
        await c.audit(chat, user, AuditAction.INTERRUPTED, prompt=prompt.text, audio_digest=prompt.audio_digest)
        await c.ports.messenger.send(chat, InterruptedPrompt(prompt.text, voice=prompt.source is PromptSource.VOICE))
        return await self._settle(chat, user, prompt, begun.baseline.turn_id, begun, None, None, quiet=True)

    async def _settle(
        self,
        chat: ChatId,
        user: UserId,
        prompt: Prompt,
        turn_id: TurnId,
        begun: _Begun,
        result: AgentResult | None,
        failure: AgentRunError | None,
        *,
        quiet: bool = False,
    ) -> Review | None:
        c = self._c
        try:
            # What the agent left, recorded now: later edits are told apart from it (never committed with it).
            ended: EndedTurn | WorkspaceError = await c.ports.workspace.end_turn(begun.baseline)
        except WorkspaceError as exc:
            ended = exc
        if isinstance(ended, WorkspaceError):
            # The turn stays open (its edits are settled by the next prompt); the agent's session is kept.
            async with c.sessions.update(chat) as session:
                if result is not None:
                    session.record_turn(result.session_id, now=c.ports.clock.now())
            await self._tell_outcome(chat, user, result, failure)
            await c.ports.messenger.send(chat, c.error(ended))
            return None

        diff, baseline, previous = ended.diff, ended.baseline, begun.previous
        findings = tuple(await c.ports.scanner.scan(diff)) if not diff.is_empty else ()
        decision = c.settings.policy.decide(diff, findings)
        now = c.ports.clock.now()
        change_id = ChangeId(c.new_id(8))
        agent_session = result.session_id if result else None
        change: PendingChange | None = None
        replaced: PendingChange | None = None
        if decision.verdict is not Verdict.NO_CHANGES:
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
        async with c.sessions.update(chat) as session:
            if result is not None:
                session.record_turn(result.session_id, now=now)
            if change is not None:
                replaced = session.attach(change, now=now)
            elif previous is not None and session.pending is not None:
                # The new turn took back what the previous one changed: nothing is left to review.
                replaced = session.pending
                replaced.supersede(change_id, now=now)
                session.latest_change = None
            session.open_turn = session.open_prompt = session.open_prompt_sent_at = None
        # Whatever happened, the agent may have touched the tree: it was looked at. After a failed run the error
        # reply is the whole story when nothing changed; "no changes" on top of it would only contradict it.
        failed = quiet or failure is not None or (result is not None and not result.success)
        await self._tell_outcome(chat, user, result, failure)

        if change is None:
            await c.release(baseline)
            if previous is not None:
                await c.release(previous.baseline)
            if replaced is not None:
                await c.mark_decided(replaced)
            if not failed:
                await c.ports.messenger.send(chat, NoChanges())
            return None

        if replaced is not None and replaced.baseline.snapshot != baseline.snapshot:
            await c.release(replaced.baseline)
        await c.audit(
            chat,
            user,
            AuditAction.CHANGE,
            change_id=change_id,
            prompt=prompt.text,
            audio_digest=prompt.audio_digest,
            agent_session_id=agent_session,
            diff_fingerprint=diff.fingerprint,
            detail=decision.verdict.value,
        )
        if decision.verdict is Verdict.AUTO_APPROVE:
            try:
                commit = committed(await self._decisions.commit(chat, user, change_id, None, auto=True))
            except (DomainError, WorkspaceError) as exc:
                await c.ports.messenger.send(chat, c.error(exc))
            else:
                if replaced is not None:
                    await c.mark_decided(replaced)
                await c.ports.messenger.send(chat, AutoApproved(change_id, diff, commit, decision.rule or ""))
                return None
        return change, replaced

    async def _tell_outcome(
        self, chat: ChatId, user: UserId, result: AgentResult | None, failure: AgentRunError | None
    ) -> None:
        c = self._c
        if result is not None:
            await c.ports.messenger.send(chat, self._answer(result))
            await c.audit(chat, user, AuditAction.ANSWER, agent_session_id=result.session_id, detail=result.subtype)
        if failure is not None:
            await c.ports.messenger.send(chat, c.error(failure))

    async def _run_agent(
        self, chat: ChatId, user: UserId, agent_session: str | None, prompt: Prompt, notes: tuple[str, ...] = ()
    ) -> tuple[AgentResult | None, AgentRunError | None]:
        c = self._c
        clock = c.ports.clock
        progress = Progress(prompt=prompt.text, started=clock.monotonic(), steps=list(notes))
        request = AgentRequest(prompt=prompt.text, session_id=agent_session, resume=agent_session is not None)
        turn = RunningTurn(chat=chat, user=user, scope=anyio.CancelScope(), progress=progress)

        async def on_event(event: AgentEvent) -> None:
            step = _describe(event)
            if step:
                progress.steps.append(c.settings.redact(step))
                progress.dirty = True
            if clock.monotonic() - progress.last_edit >= c.settings.progress_interval_s:
                await self._edit_progress(turn.status_ref, progress)

        async def on_tool(tool_request: ToolRequest) -> ToolDecision:
            return await self._tools.decide(turn, tool_request)

        result: AgentResult | None = None
        failure: AgentRunError | None = None
        c.running[chat] = turn
        try:
            async with anyio.create_task_group() as tg:
                # The status message goes out while the agent starts: the agent never waits for Telegram.
                tg.start_soon(self._announce, turn)
                with turn.scope:
                    try:
                        result = await c.ports.agent.run(
                            request, on_event, on_tool if c.settings.tools is not None else None
                        )
                    except AgentRunError as exc:
                        failure = exc
                await turn.announced.wait()
                tg.cancel_scope.cancel()
            if turn.announce_error is not None:
                raise turn.announce_error
        finally:
            c.running.pop(chat, None)
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
            await c.ports.messenger.edit(
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
            await c.ports.messenger.send(chat, Cancelled(was_running=True, reason=turn.stop_reason))
        if result is not None:
            result = self._tools.with_hints(result, turn)
        return result, failure

    def _answer(self, result: AgentResult) -> AgentAnswer:
        redact = self._c.settings.redact
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

    async def _announce(self, turn: RunningTurn) -> None:
        """Send the turn's status message, then keep 'typing…' and the elapsed time alive while the agent is quiet."""
        messenger = self._c.ports.messenger
        try:
            turn.status_ref = await messenger.send(turn.chat, self._working(turn.progress))
        except PortError as exc:
            # Without the status (and its ⏹ button) the turn must not go on: stop it, let the caller retry.
            turn.announce_error = exc
            turn.scope.cancel()
            return
        finally:
            turn.announced.set()
        while True:
            await messenger.typing(turn.chat)
            await anyio.sleep(self._c.settings.typing_interval_s)
            await self._edit_progress(turn.status_ref, turn.progress)

    async def show_progress(self, turn: RunningTurn) -> None:
        await self._edit_progress(turn.status_ref, turn.progress)

    async def _edit_progress(self, ref: MessageRef | None, progress: Progress) -> None:
        if ref is None:
            return  # the status message is still on its way; the next edit shows everything
        progress.last_edit = self._c.ports.clock.monotonic()
        progress.dirty = False
        try:
            await self._c.ports.messenger.edit(ref, self._working(progress))
        except PortError as exc:  # progress is cosmetic; the answer still goes out
            logger.info("progress edit failed: %s", exc)

    def _working(self, progress: Progress) -> Working:
        return Working(
            prompt=progress.prompt,
            steps=tuple(progress.steps[-MAX_PROGRESS_STEPS:]),
            elapsed_s=self._c.ports.clock.monotonic() - progress.started,
        )

    async def _compact(self, chat: ChatId, turns: int, agent_session: str) -> str | None:
        """Compact the agent's context before the turn; returns the agent session the turn resumes."""
        c = self._c

        async def ignore(_: AgentEvent) -> None:
            return None

        try:
            result = await c.ports.agent.compact(agent_session, ignore)
        except AgentRunError as exc:
            await c.ports.messenger.send(chat, Compaction(turns, ok=False, detail=c.settings.redact(str(exc))))
            return agent_session
        async with c.sessions.update(chat) as session:
            session.compacted()
            if result.session_id:
                session.agent_session_id = result.session_id
            resumed = session.agent_session_id
        await c.ports.messenger.send(
            chat, Compaction(turns, ok=result.success, detail=c.settings.redact(result.text)[:200])
        )
        return resumed


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
