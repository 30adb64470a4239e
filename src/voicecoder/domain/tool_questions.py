"""
Tool approval inside a turn: the `ToolGate` a turn hands the agent, the questions on the phone and their answers.

`ToolQuestions` asks the `ToolPolicy` about each `ToolRequest`; what it may not decide alone becomes a
`ToolQuestion` on the phone, answered by a button (`answer`), a reply (`deny_by_reply`), the timeout, ⏹ Cancel
(the turn's scope) or a restart (`shutdown`). Exactly one of them wins; the question is then edited to show it.
A denied tool's hint (how to let it run next time) is kept per turn for the final answer (`with_hints`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import attrs

from voicecoder.domain.errors import PortError
from voicecoder.domain.model import (
    AgentResult,
    AuditAction,
    ChatId,
    QuestionId,
    Session,
    ToolDecision,
    ToolRequest,
    UserId,
)
from voicecoder.domain.policy import ToolAction, ToolPolicy
from voicecoder.domain.ports import Messenger
from voicecoder.domain.replies import (
    Action,
    Button,
    CallbackAnswer,
    MessageRef,
    PermissionsView,
    ToolOutcome,
    ToolQuestion,
    ToolQuestionClosed,
)
from voicecoder.domain.unit_of_work import Sessions

__all__ = ["Progress", "RunningTurn", "ToolQuestions"]

logger = logging.getLogger(__name__)


def minutes(seconds: float) -> str:
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class Audit(Protocol):
    """Appends an audit record (`AppContext.audit`)."""

    async def __call__(
        self, chat: ChatId, user: UserId | None, action: AuditAction, /, *, detail: str | None = None
    ) -> None: ...


@attrs.define
class Progress:
    """Live state of a running turn, rendered into the one status message."""

    prompt: str
    started: float
    steps: list[str] = attrs.field(factory=list)
    last_edit: float = 0.0
    dirty: bool = False


@attrs.define(eq=False)
class RunningTurn:
    """A running turn: what ⏹ Cancel, tool questions and shutdown need to reach it."""

    chat: ChatId
    user: UserId
    scope: anyio.CancelScope
    progress: Progress
    status_ref: MessageRef | None = None
    announced: anyio.Event = attrs.field(factory=anyio.Event)
    announce_error: PortError | None = None
    stop_reason: str | None = None
    hints: dict[str, str] = attrs.field(factory=dict)
    """How to let a tool run next time, by tool_use_id, for the tools this turn's questions denied."""


@attrs.define(eq=False)
class _Question:
    """A tool question waiting on the phone; exactly one answer (button, reply, timeout, cancel, restart) wins."""

    question: ToolQuestion
    turn: RunningTurn
    ref: MessageRef | None = None
    """The question's message; None while it is on its way (a press can arrive before the send returns)."""
    answered: anyio.Event = attrs.field(factory=anyio.Event)
    decision: ToolDecision | None = None
    outcome: ToolOutcome | None = None
    by: str | None = None
    reason: str = ""

    def resolve(self, decision: ToolDecision, outcome: ToolOutcome, by: str | None = None, reason: str = "") -> bool:
        """Record the answer; False when another answer came first."""
        if self.decision is not None:
            return False
        self.decision, self.outcome, self.by, self.reason = decision, outcome, by, reason
        self.answered.set()
        return True


@attrs.define(eq=False)
class ToolQuestions:
    """The tool-approval use cases of one `VoiceCoder`; it owns the open questions."""

    messenger: Messenger
    sessions: Sessions
    policy: ToolPolicy | None
    timeout_s: float
    redact: Callable[[str], str]
    audit: Audit
    new_id: Callable[[int], str]
    show_progress: Callable[[RunningTurn], Awaitable[None]]
    stopping: bool = False
    _questions: dict[QuestionId, _Question] = attrs.field(factory=dict, init=False)

    def with_hints(self, result: AgentResult, turn: RunningTurn) -> AgentResult:
        """Each denied tool says how to let it run next time (issue: a denial must not be a dead end)."""
        if not result.permission_denials:
            return result
        if self.policy is None:
            default = (
                "tool approval is off here, so only what the agent's own settings allow runs; "
                "turn it on (auto-edits) to be asked on the phone instead"
            )
        else:
            default = "send the request again and tap ✅ Allow when I ask (or 🔓 to allow it for this session)"
        denials = tuple(
            attrs.evolve(d, hint=turn.hints.get(d.tool_use_id or "", default) if not d.hint else d.hint)
            for d in result.permission_denials
        )
        return attrs.evolve(result, permission_denials=denials)

    async def decide(self, turn: RunningTurn, request: ToolRequest) -> ToolDecision:
        """The runner's ToolGate: the policy decides, or the user does on the phone."""
        policy = self.policy
        if policy is None:  # pragma: no cover - no gate is passed to the runner then
            return ToolDecision.allowed()
        redact = self.redact
        shown = attrs.evolve(
            request,
            label=redact(request.label),
            command=redact(request.command) if request.command is not None else None,
            description=redact(request.description) if request.description is not None else None,
            url=redact(request.url) if request.url is not None else None,
            preview=redact(request.preview) if request.preview is not None else None,
        )
        session = await self.sessions.read(turn.chat)
        ruling = policy.decide(request, session.tool_rules)
        if ruling.action is ToolAction.ALLOW:
            logger.info("tool allowed by %s: %s", ruling.rule, shown.label)
            return ToolDecision.allowed()
        if ruling.action is ToolAction.DENY:
            turn.hints[request.tool_use_id or ""] = "voicecoder never lets Claude work outside the workspace"
            await self._step(turn, f"🚫 refused: {shown.label}")
            await self.audit(
                turn.chat, turn.user, AuditAction.TOOL_DENY, detail=f"{shown.label}: outside the workspace"
            )
            return ToolDecision.denied(ruling.reason)
        if self.stopping:
            return ToolDecision.denied(
                "voicecoder is restarting, so nobody can answer now. Stop and tell the user to send the request again."
            )
        question = ToolQuestion(
            question_id=QuestionId(self.new_id(8)),
            request=shown,
            timeout_s=self.timeout_s,
            session_rule=None if ruling.flagged else ruling.rule,
            flagged=ruling.flagged,
            uncovered=ruling.uncovered,
        )
        # Open before it is sent: the user can tap its button as soon as Telegram has the message, which may be
        # before our send returns; a press that found no open question would leave the agent waiting.
        pending = _Question(question=question, turn=turn)
        self._questions[question.question_id] = pending
        try:
            pending.ref = await self.messenger.send(turn.chat, question)
        except PortError as exc:
            self._questions.pop(question.question_id, None)
            logger.warning("could not show a tool question: %s", exc)
            turn.hints[request.tool_use_id or ""] = "the question could not be shown on the phone; try again"
            return ToolDecision.denied(
                "voicecoder could not show this question on the user's phone, so it was denied. "
                "Tell the user what you wanted to run."
            )
        except BaseException:
            self._questions.pop(question.question_id, None)
            raise
        try:
            if pending.outcome is not None:  # answered while it was on its way: show the answer now
                try:
                    await self._close(pending)
                except PortError as exc:
                    logger.warning("could not show the answer to a tool question: %s", exc)
            # Inside the try: an answer, ⏹ or a restart may come while the status is being edited.
            await self._step(turn, f"❓ waiting for your answer: {shown.label}")
            with anyio.move_on_after(self.timeout_s):
                await pending.answered.wait()
            pending.resolve(
                ToolDecision.denied(
                    f"Nobody answered on the phone within {minutes(self.timeout_s)}, so voicecoder denied "
                    "it. Do not retry it; tell the user what you wanted to run and why."
                ),
                ToolOutcome.TIMED_OUT,
            )
        except anyio.get_cancelled_exc_class():
            outcome = ToolOutcome.RESTARTED if turn.stop_reason else ToolOutcome.CANCELLED
            pending.resolve(ToolDecision.denied("The turn was stopped."), outcome)
            raise
        finally:
            self._questions.pop(question.question_id, None)
            with anyio.CancelScope(shield=True):
                await self._after_answer(pending)
        decision = pending.decision
        assert decision is not None
        return decision

    async def _after_answer(self, pending: _Question) -> None:
        """Edit the question to show the outcome (the answering user's path already did for button answers)."""
        turn, outcome = pending.turn, pending.outcome
        label = pending.question.request.label
        if outcome in (ToolOutcome.DENIED, ToolOutcome.TIMED_OUT):
            hint = (
                f"nobody answered within {minutes(self.timeout_s)}; send the request again and answer the question"
                if outcome is ToolOutcome.TIMED_OUT
                else "you denied it; send the request again and tap ✅ Allow to let it run"
            )
            turn.hints[pending.question.request.tool_use_id or ""] = hint
        step = (
            {
                ToolOutcome.ALLOWED: f"✅ allowed: {label}",
                ToolOutcome.ALLOWED_FOR_SESSION: f"🔓 allowed for this session: {label}",
                ToolOutcome.DENIED: f"❌ denied: {label}",
                ToolOutcome.TIMED_OUT: f"⌛ no answer, denied: {label}",
            }.get(outcome)
            if outcome is not None
            else None
        )
        if step is not None:
            await self._step(turn, step)
        detail = f"{label}: {outcome.value if outcome else '?'}" + (f" ({pending.reason})" if pending.reason else "")
        try:
            await self.audit(
                turn.chat,
                turn.user,
                AuditAction.TOOL_ALLOW if pending.decision and pending.decision.allow else AuditAction.TOOL_DENY,
                detail=detail,
            )
            if outcome in (ToolOutcome.TIMED_OUT, ToolOutcome.CANCELLED, ToolOutcome.RESTARTED):
                await self._close(pending)
        except PortError as exc:
            logger.warning("could not record the answer to a tool question: %s", exc)

    async def _close(self, pending: _Question) -> None:
        """Edit the question to show its outcome (and who gave it); no message yet means its sender does it."""
        if pending.ref is None or pending.outcome is None:
            return
        await self.messenger.edit(
            pending.ref, ToolQuestionClosed(pending.question, pending.outcome, pending.by, pending.reason)
        )

    async def _step(self, turn: RunningTurn, step: str) -> None:
        turn.progress.steps.append(step)
        await self.show_progress(turn)

    async def answer(
        self,
        chat: ChatId,
        user: UserId,
        button: Button,
        user_name: str | None,
        *,
        acknowledge: Callable[[CallbackAnswer], Awaitable[None]],
    ) -> CallbackAnswer:
        """A tool-question button: record the answer, *acknowledge* the press, then edit the question to show it."""
        pending = self._questions.get(button.question) if button.question is not None else None
        if pending is None or pending.turn.chat != chat or pending.decision is not None:
            ack = CallbackAnswer("This question is no longer open.")
            await acknowledge(ack)
            return ack
        by = user_name or f"user {user.value}"
        rule = pending.question.session_rule
        if button.action is Action.TOOL_ALLOW_SESSION and rule is not None:
            outcome, decision, ack = (
                ToolOutcome.ALLOWED_FOR_SESSION,
                ToolDecision.allowed(),
                CallbackAnswer(f"🔓 Allowed: {rule}"),
            )
        elif button.action is Action.TOOL_DENY:
            outcome, ack = ToolOutcome.DENIED, CallbackAnswer("❌ Denied")
            decision = ToolDecision.denied(
                "The user denied this from their phone. Do not try it another way; "
                "tell them what you wanted it for and ask how to go on."
            )
        else:
            outcome, decision, ack = ToolOutcome.ALLOWED, ToolDecision.allowed(), CallbackAnswer("✅ Allowed")
        if not pending.resolve(decision, outcome, by):
            ack = CallbackAnswer("This question is no longer open.")
            await acknowledge(ack)
            return ack
        if outcome is ToolOutcome.ALLOWED_FOR_SESSION and rule is not None:
            async with self.sessions.update(chat) as session:
                session.allow_tool(rule)
        await acknowledge(ack)
        await self._close(pending)
        return ack

    def is_open(self, chat: ChatId, message_id: int) -> bool:
        """Whether *message_id* is a question in *chat* still waiting for its answer."""
        return any(
            q.turn.chat == chat and q.ref is not None and q.ref.message_id == message_id
            for q in self._questions.values()
        )

    async def deny_by_reply(
        self, chat: ChatId, user: UserId, message_id: int, reason: str, user_name: str | None
    ) -> bool:
        """Deny the open question *message_id* with *reason*; False when it is not an open question."""
        pending = next(
            (
                q
                for q in self._questions.values()
                if q.turn.chat == chat and q.ref is not None and q.ref.message_id == message_id
            ),
            None,
        )
        if pending is None or not reason.strip():
            return False
        by = user_name or f"user {user.value}"
        message = f"The user denied this from their phone and said: “{reason.strip()}”"
        if not pending.resolve(ToolDecision.denied(message), ToolOutcome.DENIED, by, reason.strip()):
            return False
        await self._close(pending)
        return True

    async def permissions(self, chat: ChatId, user: UserId, *, clear: bool = False) -> None:
        """/permissions: the approval mode and rules; ``clear`` forgets this session's rules."""
        cleared: tuple[str, ...] = ()
        async with self.sessions.update(chat) as session:
            if clear and session.tool_rules:
                cleared, session.tool_rules = session.tool_rules, ()
        if cleared:
            await self.audit(chat, user, AuditAction.PERMISSIONS_CLEAR, detail=", ".join(cleared))
        await self.messenger.send(chat, self.view(session, cleared))

    def view(self, session: Session, cleared: tuple[str, ...] = ()) -> PermissionsView:
        tools = self.policy
        return PermissionsView(
            mode=tools.mode.value if tools is not None else "off",
            timeout_s=self.timeout_s,
            operator_rules=tools.allow if tools is not None else (),
            session_rules=session.tool_rules,
            cleared=cleared,
        )

    async def shutdown(self, reason: str = "voicecoder is restarting") -> None:
        """
        The app is going down: end what waits for an answer nobody can give any more.

        Every open tool question is denied, the turns that were waiting on one are stopped and their users told.
        Turns not waiting on a question may finish.
        """
        self.stopping = True
        for pending in list(self._questions.values()):
            turn = pending.turn
            if pending.resolve(
                ToolDecision.denied(f"{reason}; the question could not be answered."), ToolOutcome.RESTARTED
            ):
                turn.stop_reason = f"{reason} while a question was waiting"
                turn.scope.cancel()
