"""
The Claude Code CLI adapter (`ClaudeCliAgent`), split by job.

``config`` (how to run it), ``environment`` (the agent's allow-listed environment), ``host`` (voicecoder's own
environment kept from it), ``events`` (stream-json →
domain events), ``tools`` (tool requests and answers on the control channel), ``process`` (one long-lived CLI
process and its hygiene), ``runner`` (`ClaudeCliAgent`, the AgentRunner) and ``unavailable`` (answers instead
when the CLI cannot run).
"""

from __future__ import annotations

from voicecoder.adapters.claude.config import (
    DEFAULT_APPEND_SYSTEM_PROMPT,
    PINNED_VERSION,
    TESTED_VERSION_RANGE,
    ClaudeCliConfig,
)
from voicecoder.adapters.claude.environment import QUIET_ENV, agent_environment, config_dir_problem
from voicecoder.adapters.claude.events import LineSplitter, StreamParser, parse_line, redact, tool_label
from voicecoder.adapters.claude.host import hide_own_environment
from voicecoder.adapters.claude.process import CliProcess, leader_is_ours
from voicecoder.adapters.claude.runner import ClaudeCliAgent
from voicecoder.adapters.claude.tools import control_response, tool_kind, tool_request
from voicecoder.adapters.claude.unavailable import UnavailableAgent

__all__ = [
    "DEFAULT_APPEND_SYSTEM_PROMPT",
    "PINNED_VERSION",
    "QUIET_ENV",
    "TESTED_VERSION_RANGE",
    "ClaudeCliAgent",
    "ClaudeCliConfig",
    "CliProcess",
    "LineSplitter",
    "StreamParser",
    "UnavailableAgent",
    "agent_environment",
    "config_dir_problem",
    "control_response",
    "hide_own_environment",
    "leader_is_ours",
    "parse_line",
    "redact",
    "tool_kind",
    "tool_label",
    "tool_request",
]
