"""
Adapters: the implementations of the domain's ports, grouped by the system they wrap.

Speech-to-text names are re-exported here (imported on first use, so importing one adapter does not load
them all): ``from voicecoder.adapters import OpenAITranscriber, check_audio``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

__all__ = [
    "AssemblyAITranscriber",
    "AudioLimits",
    "CodeAwareTranscriber",
    "DeepgramTranscriber",
    "LocalWhisperTranscriber",
    "OpenAITranscriber",
    "WorkspaceVocabulary",
    "check_audio",
]
_STT = frozenset(__all__)


def __getattr__(name: str) -> Any:
    if name in _STT:
        return getattr(importlib.import_module("voicecoder.adapters.stt"), name)
    raise AttributeError(f"module 'voicecoder.adapters' has no attribute {name!r}")
