"""
Every adapter by class name: ``from voicecoder.adapters import DulwichWorkspace, TelethonMessenger``.

Imports are lazy: a name's module (and its third-party library: dulwich, aiohttp, telethon …) is loaded on first
use, so an embedder pays only for what it uses and an optional extra (``telethon``, ``local-stt``) is needed only
by the adapters that wrap it. The aiohttp- and Telethon-based adapters are asyncio-only; the domain, dulwich,
SQLite and the CLI agent adapters run on asyncio and trio alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecoder.lazy import lazy_exports

if TYPE_CHECKING:
    from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig, UnavailableAgent
    from voicecoder.adapters.detect_secrets_scanner import DetectSecretsScanner
    from voicecoder.adapters.git import DulwichWorkspace
    from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, MeteredTranscriber, Metrics
    from voicecoder.adapters.sqlite.inbox import SqliteInbox
    from voicecoder.adapters.sqlite.state_store import SqliteStateStore
    from voicecoder.adapters.stt import (
        AssemblyAITranscriber,
        AudioLimits,
        CodeAwareTranscriber,
        DeepgramTranscriber,
        LocalWhisperTranscriber,
        OpenAITranscriber,
        WorkspaceVocabulary,
        check_audio,
    )
    from voicecoder.adapters.system_clock import SystemClock
    from voicecoder.adapters.telegram.api import TelegramBotApi
    from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
    from voicecoder.adapters.telegram.messenger import TelegramMessenger
    from voicecoder.adapters.telegram.updates import TelegramUpdateHandler
    from voicecoder.adapters.telethon import TelethonMessenger, TelethonUpdateHandler, TelethonUpdates

_MODULES = {
    "AssemblyAITranscriber": ".stt",
    "AudioLimits": ".stt",
    "ClaudeCliAgent": ".claude",
    "ClaudeCliConfig": ".claude",
    "CodeAwareTranscriber": ".stt",
    "DeepgramTranscriber": ".stt",
    "DetectSecretsScanner": ".detect_secrets_scanner",
    "DulwichWorkspace": ".git",
    "LocalWhisperTranscriber": ".stt",
    "MeteredAgentRunner": ".prometheus_metrics",
    "MeteredTranscriber": ".prometheus_metrics",
    "Metrics": ".prometheus_metrics",
    "OpenAITranscriber": ".stt",
    "SqliteInbox": ".sqlite.inbox",
    "SqliteStateStore": ".sqlite.state_store",
    "SystemClock": ".system_clock",
    "TelegramBotApi": ".telegram.api",
    "TelegramMessenger": ".telegram.messenger",
    "TelegramUpdateHandler": ".telegram.updates",
    "TelethonMessenger": ".telethon",
    "TelethonUpdateHandler": ".telethon",
    "TelethonUpdates": ".telethon",
    "UnavailableAgent": ".claude",
    "UpdateDispatcher": ".telegram.dispatcher",
    "WorkspaceVocabulary": ".stt",
    "check_audio": ".stt",
}

__all__ = [
    "AssemblyAITranscriber",
    "AudioLimits",
    "ClaudeCliAgent",
    "ClaudeCliConfig",
    "CodeAwareTranscriber",
    "DeepgramTranscriber",
    "DetectSecretsScanner",
    "DulwichWorkspace",
    "LocalWhisperTranscriber",
    "MeteredAgentRunner",
    "MeteredTranscriber",
    "Metrics",
    "OpenAITranscriber",
    "SqliteInbox",
    "SqliteStateStore",
    "SystemClock",
    "TelegramBotApi",
    "TelegramMessenger",
    "TelegramUpdateHandler",
    "TelethonMessenger",
    "TelethonUpdateHandler",
    "TelethonUpdates",
    "UnavailableAgent",
    "UpdateDispatcher",
    "WorkspaceVocabulary",
    "check_audio",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
