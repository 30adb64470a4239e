"""
What the use-case modules share.

`commands`, `turns`, `decisions` and `tool_questions` share the ports, the settings, the workspace lock and the
running turns of one `VoiceCoder`, and the few steps more than one of them takes (an error reply, an audit record,
a change's summary, editing the messages of a decided change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import attrs

from voicecoder.domain.errors import PortError, VoicecoderError, WorkspaceError
from voicecoder.domain.model import (
    DEFAULT_COMPACTION_THRESHOLD,
    AuditAction,
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeStatus,
    ChatId,
    PendingChange,
    SecretFinding,
    UserId,
)
from voicecoder.domain.policy import ApprovalPolicy, ToolPolicy
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
from voicecoder.domain.replies import ChangeSummary, Decision, DiffView, ErrorReply, MessageRef, Reply
from voicecoder.domain.tool_questions import RunningTurn
from voicecoder.domain.unit_of_work import Sessions

__all__ = ["AppContext", "Ports", "Settings"]

logger = logging.getLogger(__name__)


def _unchanged(text: str) -> str:
    return text


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
    project: str = ""
    """The project this workspace belongs to, where the bot serves several: /status, /info and summaries name it."""


_DECISIONS = {
    ChangeStatus.APPROVED: Decision.APPROVED,
    ChangeStatus.AUTO_APPROVED: Decision.AUTO_APPROVED,
    ChangeStatus.REJECTED: Decision.REJECTED,
    ChangeStatus.SUPERSEDED: Decision.SUPERSEDED,
}


def decision_of(change: PendingChange) -> tuple[Decision | None, str]:
    """What became of *change* (None while pending) and a detail to show with it (the commit's short sha)."""
    return _DECISIONS.get(change.status), change.commit.short_sha if change.commit is not None else ""


def blocked(findings: tuple[SecretFinding, ...]) -> tuple[str, ...]:
    return tuple(f"possible secret: {f}" for f in findings)


@attrs.define(eq=False)
class AppContext:
    """The state one `VoiceCoder` shares between its use cases, and the steps several of them take."""

    ports: Ports
    settings: Settings
    new_id: Callable[[int], str]
    sessions: Sessions
    workspace_lock: anyio.Lock = attrs.field(factory=anyio.Lock)
    """One turn or decision at a time on the one workspace."""
    running: dict[ChatId, RunningTurn] = attrs.field(factory=dict)

    def error(self, exc: VoicecoderError | str) -> ErrorReply:
        """The chat reply for an error, with the host's hint (if it has one for this error)."""
        if isinstance(exc, str):
            return ErrorReply(self.settings.redact(exc))
        hint = self.settings.error_hint(exc) if self.settings.error_hint is not None else None
        # Agent errors quote its output (stderr): the same redaction as the logs before it reaches the chat.
        return ErrorReply(self.settings.redact(str(exc)), hint)

    async def audit(
        self,
        chat: ChatId,
        user: UserId | None,
        action: AuditAction,
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
        await self.ports.store.append_audit(
            AuditRecord(
                at=self.ports.clock.now(),
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

    async def release(self, baseline: Baseline) -> None:
        """The turn is settled: its checkpoint may go (housekeeping, so a failure is only logged)."""
        try:
            await self.ports.workspace.release_turn(baseline)
        except WorkspaceError as exc:
            logger.warning("could not release checkpoint of turn %s: %s", baseline.turn_id, exc)

    def summary(self, change: PendingChange, *, superseded_previous: bool = False) -> ChangeSummary:
        decision, detail = decision_of(change)
        return ChangeSummary(
            change_id=change.id,
            diff=change.diff,
            blocked_reasons=blocked(change.findings),
            superseded_previous=superseded_previous,
            decision=decision,
            decision_detail=detail,
            project=self.settings.project,
        )

    @staticmethod
    def decided_diff(change: PendingChange) -> DiffView:
        decision, detail = decision_of(change)
        return DiffView(change.diff, change.id, decision=decision, decision_detail=detail)

    async def remember_message(self, change: PendingChange, ref: MessageRef) -> None:
        """Note that *ref* shows *change*'s buttons, so they go when the change is decided."""
        async with self.sessions.update(change.chat_id) as session:
            pending = session.pending
            if pending is not None and pending.id == change.id:
                pending.message_ids = (*pending.message_ids, ref.message_id)
                return
        # Decided while the message was on its way (e.g. an Approve raced the Show Diff): take its buttons now.
        decided = await self.ports.store.load_change(change.chat_id, change.id)
        if decided is not None and not decided.is_pending:
            await self.edit_quietly(ref, self.decided_diff(decided) if change.message_ids else self.summary(decided))

    async def mark_decided(self, change: PendingChange) -> None:
        """Edit every message showing the change: the summary says what happened; no Approve/Reject is left."""
        for n, message_id in enumerate(change.message_ids):
            reply = self.summary(change) if n == 0 else self.decided_diff(change)
            await self.edit_quietly(MessageRef(change.chat_id, message_id), reply)

    async def edit_quietly(self, ref: MessageRef, reply: Reply) -> None:
        try:
            await self.ports.messenger.edit(ref, reply)
        except PortError as exc:  # cosmetic: the decision itself is recorded and was announced
            logger.info("could not update message %s after a decision: %s", ref.message_id, exc)
