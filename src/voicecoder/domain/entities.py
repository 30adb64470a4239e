"""Entities of the voicecoder domain: a chat's Session and the PendingChange a turn leaves for the user to decide."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from voicecoder.domain.errors import (
    ApprovalBlockedError,
    ApprovalChoiceRequiredError,
    ChangeNotPendingError,
    NoPendingChangeError,
    NothingToUndoError,
    StaleChangeError,
)
from voicecoder.domain.values import (
    ApprovalChoice,
    Baseline,
    ChangeId,
    ChatId,
    CommitInfo,
    Diff,
    Prompt,
    PromptSource,
    SecretFinding,
    TurnId,
    UserId,
)


class ChangeStatus(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    AUTO_APPROVED = "auto-approved"


@attrs.define
class PendingChange:
    """A turn's workspace changes awaiting the user's decision."""

    id: ChangeId
    turn_id: TurnId
    chat_id: ChatId
    prompt: Prompt
    baseline: Baseline
    diff: Diff
    created_at: datetime
    agent_session_id: str | None = None
    findings: tuple[SecretFinding, ...] = ()
    status: ChangeStatus = ChangeStatus.PENDING
    decided_at: datetime | None = None
    decided_by: UserId | None = None
    commit: CommitInfo | None = None
    message_ids: tuple[int, ...] = ()
    """Chat messages showing this change with its buttons (the summary first, then diff views): edited when decided."""
    reverted_by: str | None = None
    """The commit that reverted this approved change (/undo), if one did."""
    reverted_at: datetime | None = None

    @property
    def is_pending(self) -> bool:
        return self.status is ChangeStatus.PENDING

    @property
    def is_approved(self) -> bool:
        """Committed (by a user or by the auto-approve policy)."""
        return self.status in (ChangeStatus.APPROVED, ChangeStatus.AUTO_APPROVED)

    def _require_pending(self) -> None:
        if self.status is not ChangeStatus.PENDING:
            raise ChangeNotPendingError(self.id.value, self.status.value)

    def check_approvable(self, fingerprint: str, choice: ApprovalChoice | None = None) -> None:
        """
        Raise unless this change can be approved by someone who saw *fingerprint* (a prefix is enough).

        A change whose agent edits overlap the developer's uncommitted ones needs an explicit *choice*.
        """
        self._require_pending()
        if len(fingerprint) < 8 or not self.diff.fingerprint.startswith(fingerprint):
            raise StaleChangeError("the buttons belong to an older diff")
        if self.findings:
            raise ApprovalBlockedError([f"possible secret: {f}" for f in self.findings])
        if choice is None and self.diff.overlapping:
            raise ApprovalChoiceRequiredError(self.diff.overlapping)

    def refresh(self, diff: Diff, findings: tuple[SecretFinding, ...]) -> None:
        """The workspace was looked at again (late edits appeared): the pending change now shows *diff*."""
        self._require_pending()
        self.diff = diff
        self.findings = findings

    def approve(self, by: UserId, commit: CommitInfo, *, now: datetime, auto: bool = False) -> None:
        self._require_pending()
        self.status = ChangeStatus.AUTO_APPROVED if auto else ChangeStatus.APPROVED
        self.decided_at = now
        self.decided_by = by
        self.commit = commit

    def reject(self, by: UserId, *, now: datetime) -> None:
        self._require_pending()
        self.status = ChangeStatus.REJECTED
        self.decided_at = now
        self.decided_by = by

    def revert(self, commit_sha: str, *, now: datetime) -> None:
        """
        /undo reverted this change's commit with *commit_sha*.

        Raises NothingToUndoError unless the change was approved and is not reverted yet.
        """
        if not self.is_approved or self.reverted_by is not None:
            raise NothingToUndoError
        self.reverted_by = commit_sha
        self.reverted_at = now

    def supersede(self, by_change: ChangeId, *, now: datetime) -> None:
        self._require_pending()
        self.status = ChangeStatus.SUPERSEDED
        self.decided_at = now


DEFAULT_COMPACTION_THRESHOLD = 20


@attrs.define
class Session:
    """One chat's conversation with the agent."""

    chat_id: ChatId
    agent_session_id: str | None = None
    turn_count: int = 0
    compaction_threshold: int = DEFAULT_COMPACTION_THRESHOLD
    approved_count: int = 0
    rejected_count: int = 0
    latest_change: PendingChange | None = None
    """The session's current change: the pending one, or the one decided last (kept so its decision is saved)."""
    started_at: datetime | None = None
    last_activity: datetime | None = None
    open_turn: Baseline | None = None
    """The baseline of a turn that began and was never settled (the process died mid-turn)."""
    open_prompt: Prompt | None = None
    """The prompt the open turn runs: delivered again after a restart, it settles the turn instead of running twice."""
    open_prompt_sent_at: datetime | None = None
    """When the open turn's prompt was sent, as the transport said (what tells a redelivery from a new message)."""
    rerun: Prompt | None = None
    """A prompt cut off by a restart that the user was offered to run again (🔁)."""
    tool_rules: tuple[str, ...] = ()
    """Tool rules the user allowed "for this session" (e.g. ``Bash(pytest *)``); /clear and /permissions clear them."""

    @property
    def pending(self) -> PendingChange | None:
        """The change waiting for Approve or Reject, or None."""
        change = self.latest_change
        return change if change is not None and change.is_pending else None

    @property
    def needs_compaction(self) -> bool:
        return self.agent_session_id is not None and self.turn_count >= self.compaction_threshold

    def interrupted_by(self, prompt: Prompt, sent_at: datetime | None) -> bool:
        """
        Whether *prompt*, sent at *sent_at*, is the open turn's own prompt delivered again (the process stopped).

        A voice note is the same note when its audio is (what it transcribes to may differ); a typed prompt when
        its text is. Both must have been sent at the same moment, so the same words sent anew are a new prompt.
        """
        opened = self.open_prompt
        if self.open_turn is None or opened is None or opened.source is not prompt.source:
            return False
        if prompt.source is PromptSource.VOICE:
            same = opened.audio_digest is not None and opened.audio_digest == prompt.audio_digest
        else:
            same = opened.text == prompt.text
        return same and self.open_prompt_sent_at == sent_at

    def record_turn(self, agent_session_id: str | None, *, now: datetime) -> None:
        if agent_session_id is not None:
            self.agent_session_id = agent_session_id
        if self.started_at is None:
            self.started_at = now
        self.turn_count += 1
        self.last_activity = now

    def compacted(self) -> None:
        self.turn_count = 0

    def attach(self, change: PendingChange, *, now: datetime) -> PendingChange | None:
        """Make *change* the pending one; a previous pending change is superseded and returned."""
        previous = self.pending
        if previous is not None:
            previous.supersede(change.id, now=now)
        self.latest_change = change
        return previous

    def pending_change(self, change_id: ChangeId | None = None) -> PendingChange:
        """
        The pending change (*change_id*, when given, must name it).

        Raises NoPendingChangeError when nothing is pending, ChangeNotPendingError when *change_id* names a
        decided or replaced change.
        """
        pending, latest = self.pending, self.latest_change
        if pending is None:
            if change_id is not None and latest is not None and latest.id == change_id:
                raise ChangeNotPendingError(change_id.value, latest.status.value)
            if change_id is not None:
                raise ChangeNotPendingError(change_id.value, "replaced")
            raise NoPendingChangeError
        if change_id is not None and pending.id != change_id:
            raise ChangeNotPendingError(change_id.value, "replaced")
        return pending

    def settle(self, change: PendingChange) -> None:
        if change.is_approved:
            self.approved_count += 1
        elif change.status is ChangeStatus.REJECTED:
            self.rejected_count += 1

    def allow_tool(self, rule: str) -> bool:
        """Remember *rule* for this session; False if it was already there."""
        if rule in self.tool_rules:
            return False
        self.tool_rules = (*self.tool_rules, rule)
        return True

    def clear(self, *, now: datetime) -> None:
        """
        Forget the agent conversation and its session tool rules.

        A pending change stays pending (its files are still in the tree).
        """
        self.tool_rules = ()
        self.agent_session_id = None
        self.turn_count = 0
        self.started_at = now
        self.last_activity = now
