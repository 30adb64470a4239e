"""
voicecoder: drive a coding agent in a git workspace from chat, by voice, with approval before every commit.

Embed it in your own bot (see docs/embedding.md and examples/)::

    from voicecoder import ChatId, UserId, open_voicecoder

    async with open_voicecoder(messenger=my_messenger, workspace="repo", allowed_users=[42]) as app:
        await app.prompt(ChatId(1), UserId(42), "add a test for parse()")
        await app.approve(ChatId(1), UserId(42))

*my_messenger* is a `Messenger`: `voicecoder.adapters` has `TelegramMessenger` (Bot API) and `TelethonMessenger`
(MTProto), or render the structured `replies` yourself. Button presses come back through `decode_callback` and
`VoiceCoder.press`. `voicecoder.testing` has in-memory fakes of every port and the contract suites.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voicecoder.domain import errors, replies
from voicecoder.domain.app import COMMANDS, VoiceCoderApp
from voicecoder.domain.callbacks import MAX_CALLBACK_BYTES, MIN_FINGERPRINT, decode_callback, encode_callback
from voicecoder.domain.errors import (
    DeliveryError,
    DomainError,
    PortError,
    StateStoreError,
    UnexpectedAdapterError,
    VoicecoderError,
)
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
    WorkspaceStatus,
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
from voicecoder.domain.replies import Action, Button, CallbackAnswer, MessageRef, Reply
from voicecoder.domain.services import Ports, Settings, VoiceCoder

if TYPE_CHECKING:
    from voicecoder.bootstrap import open_voicecoder

__version__ = "0.1.0"

__all__ = [
    "COMMANDS",
    "MAX_CALLBACK_BYTES",
    "MIN_FINGERPRINT",
    "Action",
    "AgentRequest",
    "AgentResult",
    "AgentRunner",
    "ApprovalPolicy",
    "Audio",
    "Baseline",
    "Button",
    "CallbackAnswer",
    "ChangeId",
    "ChatId",
    "Clock",
    "CommitInfo",
    "DeliveryError",
    "Diff",
    "DomainError",
    "MessageRef",
    "Messenger",
    "PendingChange",
    "PortError",
    "Ports",
    "Prompt",
    "Reply",
    "SecretScanner",
    "Session",
    "Settings",
    "StateStore",
    "StateStoreError",
    "Transcriber",
    "Transcript",
    "TranscriptionHints",
    "UnexpectedAdapterError",
    "UserId",
    "VocabularySource",
    "VoiceCoder",
    "VoiceCoderApp",
    "VoicecoderError",
    "Workspace",
    "WorkspaceStatus",
    "__version__",
    "decode_callback",
    "encode_callback",
    "errors",
    "open_voicecoder",
    "replies",
]


def __getattr__(name: str) -> Any:
    # `open_voicecoder` lives in the composition root, which imports every adapter: load it only when asked for.
    if name == "open_voicecoder":
        from voicecoder.bootstrap import open_voicecoder  # noqa: PLC0415

        return open_voicecoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "open_voicecoder"})
