"""
Speech-to-text adapters (the public surface of the package).

The embedded faster-whisper engine, Deepgram, AssemblyAI and any OpenAI-compatible server, the audio intake
checks every provider applies first, the workspace vocabulary and the code-aware wrapper, and the plug-in
registry (`voicecoder.transcribers` entry points).

This package is public: a third-party provider imports `check_audio` and `AudioLimits` from here. Names load on
first use, so importing one (the intake checks, say) does not import every provider's SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecoder.lazy import lazy_exports

if TYPE_CHECKING:
    from voicecoder.adapters.stt.assemblyai import AssemblyAITranscriber
    from voicecoder.adapters.stt.audio_intake import (
        AudioFormat,
        AudioInfo,
        AudioLimits,
        check_audio,
        container_duration,
        probe_duration,
        sniff_format,
    )
    from voicecoder.adapters.stt.code_aware import CodeAwareTranscriber
    from voicecoder.adapters.stt.code_vocabulary import CODING_VOCABULARY, apply_spoken_forms, recognizer_terms
    from voicecoder.adapters.stt.deepgram import DeepgramTranscriber
    from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber, check_device
    from voicecoder.adapters.stt.openai_compatible import OpenAITranscriber
    from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary

_MODULES = {
    "apply_spoken_forms": ".code_vocabulary",
    "AssemblyAITranscriber": ".assemblyai",
    "AudioFormat": ".audio_intake",
    "AudioInfo": ".audio_intake",
    "AudioLimits": ".audio_intake",
    "check_audio": ".audio_intake",
    "check_device": ".local_whisper",
    "CodeAwareTranscriber": ".code_aware",
    "CODING_VOCABULARY": ".code_vocabulary",
    "container_duration": ".audio_intake",
    "DeepgramTranscriber": ".deepgram",
    "LocalWhisperTranscriber": ".local_whisper",
    "OpenAITranscriber": ".openai_compatible",
    "probe_duration": ".audio_intake",
    "recognizer_terms": ".code_vocabulary",
    "sniff_format": ".audio_intake",
    "WorkspaceVocabulary": ".vocabulary",
}

__all__ = [
    "CODING_VOCABULARY",
    "AssemblyAITranscriber",
    "AudioFormat",
    "AudioInfo",
    "AudioLimits",
    "CodeAwareTranscriber",
    "DeepgramTranscriber",
    "LocalWhisperTranscriber",
    "OpenAITranscriber",
    "WorkspaceVocabulary",
    "apply_spoken_forms",
    "check_audio",
    "check_device",
    "container_duration",
    "probe_duration",
    "recognizer_terms",
    "sniff_format",
]

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
