from __future__ import annotations

import io
from pathlib import Path

import pytest

from voicecoder.adapters.stt.audio_intake import AudioFormat, AudioLimits, check_audio, probe_duration, sniff_format
from voicecoder.domain.errors import AudioTooLargeError, AudioTooLongError, UnsupportedAudioError
from voicecoder.domain.model import Audio

av = pytest.importorskip("av", reason="PyAV (bundled with faster-whisper) is not installed")
np = pytest.importorskip("numpy", reason="numpy (bundled with faster-whisper) is not installed")

VOICE = Path(__file__).resolve().parents[2] / "fixtures" / "voice"


def encode_tone(container: str, codec: str, seconds: float, options: dict[str, str] | None = None) -> bytes:
    """A real 440 Hz tone encoded by FFmpeg (through PyAV) into *container* with *codec*."""
    rate = 16_000
    samples = np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 440 / rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        if codec == "pcm_s16le":
            frame = av.AudioFrame.from_ndarray(
                (samples * 3000).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
            )
        else:
            frame = av.AudioFrame.from_ndarray(
                (samples * 0.1).astype(np.float32).reshape(1, -1), format="fltp", layout="mono"
            )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


@pytest.fixture(name="ogg")
def _ogg() -> bytes:
    return (VOICE / "01_create_file.ogg").read_bytes()


@pytest.fixture(name="not_audio")
def _not_audio() -> bytes:
    return (VOICE / "not_audio.ogg").read_bytes()


class TestSniffFormat:
    def test_telegram_voice_note(self, ogg: bytes) -> None:
        """An OGG/Opus voice note is recognised as OGG."""
        assert sniff_format(ogg) is AudioFormat.OGG

    def test_wav(self) -> None:
        """A RIFF/WAVE file is WAV."""
        assert sniff_format(encode_tone("wav", "pcm_s16le", 0.5)) is AudioFormat.WAV

    def test_m4a(self) -> None:
        """An AAC file in an MP4 (ipod) container is M4A."""
        assert sniff_format(encode_tone("ipod", "aac", 0.5)) is AudioFormat.M4A

    def test_mp3_with_id3(self) -> None:
        """An MP3 starting with an ID3 tag is MP3."""
        data = encode_tone("mp3", "libmp3lame", 0.5)

        assert data.startswith(b"ID3")
        assert sniff_format(data) is AudioFormat.MP3

    def test_mp3_bare_frames(self) -> None:
        """An MP3 without an ID3 tag is recognised by its frame sync."""
        data = encode_tone("mp3", "libmp3lame", 0.5, {"id3v2_version": "0", "write_xing": "0"})

        assert not data.startswith(b"ID3")
        assert sniff_format(data) is AudioFormat.MP3

    def test_webm_opus(self) -> None:
        """Opus in WebM (what Chromium's MediaRecorder records) is WebM, with its MIME type and extension."""
        fmt = sniff_format(encode_tone("webm", "libopus", 0.5))

        assert (fmt, fmt.value if fmt else None, fmt.extension if fmt else None) == (
            AudioFormat.WEBM,
            "audio/webm",
            "webm",
        )

    def test_other_matroska_is_refused(self) -> None:
        """A Matroska file that is not WebM (same EBML magic, DocType "matroska") is not accepted."""
        data = encode_tone("matroska", "libopus", 0.5)

        assert data.startswith(b"\x1a\x45\xdf\xa3")
        assert sniff_format(data) is None

    @pytest.mark.parametrize("data", [b"", b"hello, this is not audio", b"RIFF\0\0\0\0AVI ", b"\x89PNG\r\n\x1a\n"])
    def test_other_bytes(self, data: bytes) -> None:
        """Text, empty input, an AVI and a PNG are not accepted."""
        assert sniff_format(data) is None

    def test_fixture_text_file(self, not_audio: bytes) -> None:
        """The not_audio.ogg fixture (text) is not accepted despite its name."""
        assert sniff_format(not_audio) is None


class TestProbeDuration:
    def test_ogg_duration(self, ogg: bytes) -> None:
        """The duration of a real voice note comes from its container."""
        actual = probe_duration(ogg)

        assert actual is not None
        assert actual == pytest.approx(4.151, abs=0.01)

    def test_wav_duration(self) -> None:
        """A WAV file's duration is read too."""
        actual = probe_duration(encode_tone("wav", "pcm_s16le", 1.5))

        assert actual == pytest.approx(1.5, abs=0.05)

    def test_garbage_with_ogg_magic(self) -> None:
        """Bytes that only start like an Ogg page cannot be opened."""
        with pytest.raises(UnsupportedAudioError):
            probe_duration(b"OggS" + b"\x00" * 200)


class TestCheckAudio:
    def test_accepts_webm_and_reads_its_duration(self) -> None:
        """A WebM recording passes intake; its duration comes from the container (PyAV), not from the sender."""
        info = check_audio(Audio(data=encode_tone("webm", "libopus", 1.5)), AudioLimits(max_duration_s=60))

        assert info.format is AudioFormat.WEBM
        assert info.duration_s is not None
        assert abs(info.duration_s - 1.5) < 0.1

    def test_long_webm_is_refused(self) -> None:
        """A WebM recording longer than the limit is refused like any other container."""
        with pytest.raises(AudioTooLongError):
            check_audio(Audio(data=encode_tone("webm", "libopus", 3.0)), AudioLimits(max_duration_s=2))

    def test_accepts_voice_note(self, ogg: bytes) -> None:
        """A normal voice note passes with its format and probed duration."""
        info = check_audio(Audio(ogg), AudioLimits())

        assert info.format is AudioFormat.OGG
        assert info.duration_s == pytest.approx(4.151, abs=0.01)

    def test_size_checked_first(self) -> None:
        """Oversize input is refused by size before its content is even looked at."""
        with pytest.raises(AudioTooLargeError) as info:
            check_audio(Audio(b"not audio at all" * 100), AudioLimits(max_bytes=1000))

        assert info.value.size_bytes == 1600
        assert info.value.limit_bytes == 1000

    def test_not_audio(self, not_audio: bytes) -> None:
        """A text file is UnsupportedAudioError."""
        with pytest.raises(UnsupportedAudioError):
            check_audio(Audio(not_audio), AudioLimits())

    def test_declared_duration_over_limit(self, ogg: bytes) -> None:
        """A declared duration over the limit is refused without probing."""
        with pytest.raises(AudioTooLongError) as info:
            check_audio(Audio(ogg, declared_duration_s=700), AudioLimits(probe=False))

        assert info.value.duration_s == 700
        assert info.value.limit_s == 600

    def test_probed_duration_beats_a_lying_declaration(self, ogg: bytes) -> None:
        """A sender claiming 1 s for a 4.15 s clip is still refused by the probed duration."""
        with pytest.raises(AudioTooLongError) as info:
            check_audio(Audio(ogg, declared_duration_s=1.0), AudioLimits(max_duration_s=3.0))

        assert info.value.duration_s == pytest.approx(4.151, abs=0.01)

    def test_without_probe_ogg_pages_still_read(self, ogg: bytes) -> None:
        """With PyAV probing off, an Ogg note's own duration (read from its pages) still wins over the declared one."""
        info = check_audio(Audio(ogg, declared_duration_s=4.0), AudioLimits(max_duration_s=5.0, probe=False))

        assert info.duration_s == pytest.approx(4.151, abs=0.01)

    def test_without_probe_declared_duration_is_used(self) -> None:
        """With probing off and a container that records no duration (MP3), the declared duration is reported."""
        mp3 = encode_tone("mp3", "libmp3lame", 0.5)

        info = check_audio(Audio(mp3, declared_duration_s=4.0), AudioLimits(max_duration_s=5.0, probe=False))

        assert info.duration_s == 4.0

    def test_corrupt_container(self) -> None:
        """An Ogg header followed by garbage is UnsupportedAudioError when probing."""
        with pytest.raises(UnsupportedAudioError):
            check_audio(Audio(b"OggS" + bytes(500)), AudioLimits())
