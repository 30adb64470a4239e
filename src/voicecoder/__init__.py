"""
voicecoder: drive a coding agent in a git workspace from chat, by voice, with approval before every commit.

Embed the domain in your own bot::

    from voicecoder import VoiceCoder, Ports, Settings
    app = VoiceCoder(Ports(workspace=..., agent=..., transcriber=..., messenger=..., store=..., clock=..., scanner=...),
                     Settings(allowed_users=frozenset({UserId(42)})))
    await app.prompt(ChatId(1), UserId(42), "add a test for parse()")

`voicecoder.testing` has in-memory fakes of every port and the contract suites.
"""

from __future__ import annotations

from voicecoder.domain import errors, replies
from voicecoder.domain.model import (
    AgentRequest,
    AgentResult,
    Audio,
    Baseline,
    ChangeId,
    ChatId,
    CommitInfo,
    Diff,
    PendingChange,
    Prompt,
    Session,
    Transcript,
    TranscriptionHints,
    UserId,
)
from voicecoder.domain.policy import ApprovalPolicy
from voicecoder.domain.ports import (
    AgentRunner,
    Clock,
    Messenger,
    SecretScanner,
    StateStore,
    Transcriber,
    VocabularySource,
    Workspace,
)
from voicecoder.domain.services import Ports, Settings, VoiceCoder

__version__ = "0.1.0"

__all__ = [
    "AgentRequest",
    "AgentResult",
    "AgentRunner",
    "ApprovalPolicy",
    "Audio",
    "Baseline",
    "ChangeId",
    "ChatId",
    "Clock",
    "CommitInfo",
    "Diff",
    "Messenger",
    "PendingChange",
    "Ports",
    "Prompt",
    "SecretScanner",
    "Session",
    "Settings",
    "StateStore",
    "Transcriber",
    "Transcript",
    "TranscriptionHints",
    "UserId",
    "VocabularySource",
    "VoiceCoder",
    "Workspace",
    "__version__",
    "errors",
    "replies",
]
