"""The adapters behind voicecoder's ports (the agent adapter's public names are re-exported here)."""

from __future__ import annotations

from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig, UnavailableAgent

__all__ = ["ClaudeCliAgent", "ClaudeCliConfig", "UnavailableAgent"]
