"""The former home of `voicecoder.simulators.stt` (the simulators left the test package); same names."""

from __future__ import annotations

from voicecoder.simulators.stt import (
    ASSEMBLYAI_INVALID_AUTH,
    ASSEMBLYAI_NOT_AUDIO,
    DEEPGRAM_CORRUPT_AUDIO,
    DEEPGRAM_INVALID_AUTH,
    OPENAI_FORMATS,
    EngineRecognizer,
    FakeAssemblyAIServer,
    FakeDeepgramServer,
    FakeOpenAIServer,
    FakeSpeechServer,
    Recognition,
    Recognizer,
    RecordedRequest,
    ScriptedRecognizer,
    ScriptedResponse,
    openai_error,
)

__all__ = [
    "ASSEMBLYAI_INVALID_AUTH",
    "ASSEMBLYAI_NOT_AUDIO",
    "DEEPGRAM_CORRUPT_AUDIO",
    "DEEPGRAM_INVALID_AUTH",
    "OPENAI_FORMATS",
    "EngineRecognizer",
    "FakeAssemblyAIServer",
    "FakeDeepgramServer",
    "FakeOpenAIServer",
    "FakeSpeechServer",
    "Recognition",
    "Recognizer",
    "RecordedRequest",
    "ScriptedRecognizer",
    "ScriptedResponse",
    "openai_error",
]
