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

from typing import TYPE_CHECKING

from voicecoder.lazy import lazy_exports

if TYPE_CHECKING:
    from voicecoder.bootstrap import open_voicecoder
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

# Names load on first use (PEP 562): `python -m voicecoder.entrypoints.cli` and every other submodule import this
# package first, and a command that stops at a configuration error must not pay for the whole domain (its attrs
# classes are built at import) or, through `open_voicecoder`, for the composition root and every adapter.
_MODULES: dict[str, str] = {
    "Action": "voicecoder.domain.replies",
    "AgentRequest": "voicecoder.domain.model",
    "AgentResult": "voicecoder.domain.model",
    "AgentRunner": "voicecoder.domain.ports",
    "ApprovalPolicy": "voicecoder.domain.policy",
    "Audio": "voicecoder.domain.model",
    "Baseline": "voicecoder.domain.model",
    "Button": "voicecoder.domain.replies",
    "COMMANDS": "voicecoder.domain.app",
    "CallbackAnswer": "voicecoder.domain.replies",
    "ChangeId": "voicecoder.domain.model",
    "ChatId": "voicecoder.domain.model",
    "Clock": "voicecoder.domain.ports",
    "CommitInfo": "voicecoder.domain.model",
    "DeliveryError": "voicecoder.domain.errors",
    "Diff": "voicecoder.domain.model",
    "DomainError": "voicecoder.domain.errors",
    "MAX_CALLBACK_BYTES": "voicecoder.domain.callbacks",
    "MIN_FINGERPRINT": "voicecoder.domain.callbacks",
    "MessageRef": "voicecoder.domain.replies",
    "Messenger": "voicecoder.domain.ports",
    "PendingChange": "voicecoder.domain.model",
    "PortError": "voicecoder.domain.errors",
    "Ports": "voicecoder.domain.services",
    "Prompt": "voicecoder.domain.model",
    "Reply": "voicecoder.domain.replies",
    "SecretScanner": "voicecoder.domain.ports",
    "Session": "voicecoder.domain.model",
    "Settings": "voicecoder.domain.services",
    "StateStore": "voicecoder.domain.ports",
    "StateStoreError": "voicecoder.domain.errors",
    "Transcriber": "voicecoder.domain.ports",
    "Transcript": "voicecoder.domain.model",
    "TranscriptionHints": "voicecoder.domain.model",
    "UnexpectedAdapterError": "voicecoder.domain.errors",
    "UserId": "voicecoder.domain.model",
    "VocabularySource": "voicecoder.domain.ports",
    "VoiceCoder": "voicecoder.domain.services",
    "VoiceCoderApp": "voicecoder.domain.app",
    "VoicecoderError": "voicecoder.domain.errors",
    "Workspace": "voicecoder.domain.ports",
    "WorkspaceStatus": "voicecoder.domain.model",
    "decode_callback": "voicecoder.domain.callbacks",
    "encode_callback": "voicecoder.domain.callbacks",
    "errors": "voicecoder.domain.errors",
    "open_voicecoder": "voicecoder.bootstrap",
    "replies": "voicecoder.domain.replies",
}

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
