"""
Loopback fakes of the Deepgram, AssemblyAI and OpenAI-compatible speech APIs, following their public docs.

They never answer by looking a clip up: a fake hears the uploaded bytes through the `Recognizer` it is given
(`EngineRecognizer` for real recognition with the embedded engine, `ScriptedRecognizer` for protocol tests).
Bytes that are not an Ogg/MP3/WAV/M4A container are refused the way each service refuses corrupt audio.

Every request is recorded (``server.requests``), including refused ones, so a test can prove that nothing was
uploaded; ``received_vocabulary()`` tells what vocabulary the latest request carried. Failures are scripted
with `script()` (the next matching request gets the given status, headers and body, raw bytes included),
``delay_s`` (every answer waits) and `stall_next()` (a request held until the client leaves).

    async with FakeDeepgramServer(recognizer=ScriptedRecognizer("run the tests")) as server:
        adapter = DeepgramTranscriber(api_key=server.api_key, base_url=server.base_url)
"""

from __future__ import annotations

from voicecoder.simulators.stt.assemblyai import (
    ASSEMBLYAI_INVALID_AUTH,
    ASSEMBLYAI_NOT_AUDIO,
    FakeAssemblyAIServer,
)
from voicecoder.simulators.stt.base import FakeSpeechServer, RecordedRequest, ScriptedResponse
from voicecoder.simulators.stt.deepgram import (
    DEEPGRAM_CORRUPT_AUDIO,
    DEEPGRAM_INVALID_AUTH,
    FakeDeepgramServer,
)
from voicecoder.simulators.stt.openai import OPENAI_FORMATS, FakeOpenAIServer, openai_error
from voicecoder.simulators.stt.recognizers import (
    EngineRecognizer,
    Recognition,
    Recognizer,
    ScriptedRecognizer,
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
