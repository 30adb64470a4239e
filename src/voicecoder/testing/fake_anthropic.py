"""The former home of `voicecoder.simulators.anthropic` (the simulators left the test package); same names."""

from __future__ import annotations

from voicecoder.simulators.anthropic import (
    ApiError,
    FakeAnthropicApi,
    MessagesRequest,
    Reply,
    Responder,
    Text,
    ToolUse,
    bash,
    default_responder,
    demo_responder,
    write_file,
)

__all__ = [
    "ApiError",
    "FakeAnthropicApi",
    "MessagesRequest",
    "Reply",
    "Responder",
    "Text",
    "ToolUse",
    "bash",
    "default_responder",
    "demo_responder",
    "write_file",
]
