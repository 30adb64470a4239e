from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber
from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary
from voicecoder.domain.errors import NoSpeechError
from voicecoder.domain.model import Audio, TranscriptionHints
from voicecoder.testing.wer import wer

VOICE = Path(__file__).resolve().parents[1] / "fixtures" / "voice"
CREATE_FILE = "create a file called test dot txt with hello world"

pytestmark = pytest.mark.slow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(name="whisper")
def _whisper(whisper_base: LocalWhisperTranscriber) -> LocalWhisperTranscriber:
    """The session's faster-whisper base int8 engine."""
    return whisper_base


@pytest.fixture(name="workspace")
def _workspace(tmp_path: Path) -> Path:
    """A small project that has a test.txt, as the user's workspace would."""
    if shutil.which("git") is None:
        pytest.skip(reason="git CLI missing: it builds the test repository")
    root = tmp_path / "project"
    root.mkdir()
    (root / "test.txt").write_text("placeholder\n")
    (root / "main.py").write_text("def main():\n    pass\n")
    (root / "README.md").write_text("# project\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True, env=env)
    return root


class TestWhisperWithWorkspaceHints:
    async def test_file_name_fixed_by_vocabulary(self, whisper: LocalWhisperTranscriber, workspace: Path) -> None:
        """
        Plain base hears "test dot txt" as test.dxt; with the workspace vocabulary it writes test.txt.
        """
        audio = Audio((VOICE / "01_create_file.ogg").read_bytes())
        vocabulary = await WorkspaceVocabulary(workspace).vocabulary()

        plain = await whisper.transcribe(audio, TranscriptionHints(language="en"))
        hinted = await whisper.transcribe(audio, TranscriptionHints(keyterms=vocabulary, language="en"))

        assert "test.txt" in vocabulary
        assert "test.txt" not in plain.text.lower()
        assert "test.txt" in hinted.text.lower()
        assert wer(CREATE_FILE, hinted.text) < wer(CREATE_FILE, plain.text)

    async def test_unrelated_vocabulary_does_not_invent(self, whisper: LocalWhisperTranscriber) -> None:
        """Hints do not make silence produce text: the vocabulary never leaks into the transcript."""
        audio = Audio((VOICE / "silence_2s.ogg").read_bytes())

        with pytest.raises(NoSpeechError):
            await whisper.transcribe(audio, TranscriptionHints(keyterms=("test.txt", "main.py"), language="en"))


class TestCodingVocabulary:
    async def test_git_log_heard_as_git_log(self, whisper: LocalWhisperTranscriber) -> None:
        """With the code-aware hints, "show me the git log" is not heard as "good log"."""
        from voicecoder.adapters.stt.code_aware import CodeAwareTranscriber  # noqa: PLC0415
        from voicecoder.testing.voice_clips import voice_clip  # noqa: PLC0415

        clip = voice_clip("git_log.ogg")

        result = await CodeAwareTranscriber(whisper).transcribe(clip.audio(), TranscriptionHints(language="en"))

        assert "git log" in result.text.lower()
