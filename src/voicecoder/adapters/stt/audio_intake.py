"""
Checks every transcriber applies to a recording before any upload or decoding, and the one audio sniffer.

Order matters and is cheap first: the size (no parsing at all), then the container's magic bytes,
then the duration the sender declared, then the duration the container itself records. Ogg (Opus or
Vorbis, i.e. every Telegram voice note) and WAV durations are read here in pure Python, so cloud-only
installs refuse an over-long note before uploading it; MP3, M4A and WebM durations need PyAV (bundled with
faster-whisper; no ffmpeg binary) and are left to the declared duration and the provider without it.

WebM (Opus in the Matroska profile browsers record, and what some Telegram clients attach as audio) is accepted:
every built-in engine decodes it (the local engine through PyAV; Deepgram, AssemblyAI and OpenAI-compatible
services take it as is). Other Matroska files are not: no provider promises them.

This module is public: a third-party provider calls `check_audio` first, exactly as the built-in ones do.
"""

from __future__ import annotations

import enum
import io
import logging
import struct

import attrs

from voicecoder.domain.errors import AudioTooLargeError, AudioTooLongError, UnsupportedAudioError
from voicecoder.domain.model import Audio

log = logging.getLogger(__name__)

__all__ = [
    "AudioFormat",
    "AudioInfo",
    "AudioLimits",
    "check_audio",
    "container_duration",
    "probe_duration",
    "sniff_format",
]


class AudioFormat(enum.Enum):
    """Containers voicecoder accepts, with the MIME type sent to providers."""

    OGG = "audio/ogg"
    MP3 = "audio/mpeg"
    M4A = "audio/mp4"
    WAV = "audio/wav"
    WEBM = "audio/webm"

    @property
    def extension(self) -> str:
        """The usual file name extension of the container (``m4a`` for MP4 audio)."""
        return _EXTENSIONS[self]


_EXTENSIONS = {
    AudioFormat.OGG: "ogg",
    AudioFormat.MP3: "mp3",
    AudioFormat.M4A: "m4a",
    AudioFormat.WAV: "wav",
    AudioFormat.WEBM: "webm",
}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_WEBM_DOCTYPE = b"\x42\x82\x84webm"  # the EBML header's DocType element: 4 bytes, "webm"
_EBML_HEADER_MAX = 64


@attrs.frozen
class AudioLimits:
    """Refuse recordings larger than *max_bytes* or longer than *max_duration_s*."""

    max_bytes: int = 20_000_000
    max_duration_s: float = 600.0
    #: Read the duration from the container headers (needs PyAV); the declared duration is always checked.
    probe: bool = True


@attrs.frozen
class AudioInfo:
    """What intake learned about a recording that passed the checks."""

    format: AudioFormat
    duration_s: float | None


_MP3_SYNC_MASK = 0xE0


def sniff_format(data: bytes) -> AudioFormat | None:
    """The container of *data* judged by its magic bytes, or None when it is not one we accept."""
    if data.startswith(b"OggS"):
        return AudioFormat.OGG
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return AudioFormat.WAV
    if data[4:8] == b"ftyp":
        return AudioFormat.M4A
    if data.startswith(b"ID3"):
        return AudioFormat.MP3
    if data.startswith(_EBML_MAGIC) and _WEBM_DOCTYPE in data[:_EBML_HEADER_MAX]:
        return AudioFormat.WEBM
    # A bare MPEG audio frame: 11 sync bits set, layer bits not "reserved".
    if len(data) >= 2 and data[0] == 0xFF and data[1] & _MP3_SYNC_MASK == _MP3_SYNC_MASK and data[1] & 0x06:
        return AudioFormat.MP3
    return None


_OGG_HEADER = struct.Struct("<4sBBqIIIB")
_OPUS_RATE = 48_000


def _ogg_duration(data: bytes) -> float | None:
    """
    Seconds of an Ogg Opus/Vorbis stream from its pages: the last granule position over the codec's rate.

    Opus counts granules at 48 kHz whatever the input rate and starts after ``pre-skip`` samples (RFC 7845);
    Vorbis counts samples at the rate of its identification header. None when the stream is neither or the
    pages cannot be walked (truncated or damaged: the decoder will judge those).
    """
    position = 0
    rate: int | None = None
    pre_skip = 0
    last_granule = -1
    while position + _OGG_HEADER.size <= len(data):
        magic, _version, _flags, granule, _serial, _sequence, _crc, segments = _OGG_HEADER.unpack_from(data, position)
        if magic != b"OggS":
            return None
        table_end = position + _OGG_HEADER.size + segments
        if table_end > len(data):
            return None
        body_length = sum(data[position + _OGG_HEADER.size : table_end])
        body = data[table_end : table_end + body_length]
        if rate is None:
            if body.startswith(b"OpusHead") and len(body) >= 12:
                rate = _OPUS_RATE
                pre_skip = int.from_bytes(body[10:12], "little")
            elif body.startswith(b"\x01vorbis") and len(body) >= 16:
                rate = int.from_bytes(body[12:16], "little") or None
            else:
                return None
        if granule >= 0:
            last_granule = granule
        position = table_end + body_length
    if rate is None or last_granule < 0:
        return None
    return max(0, last_granule - pre_skip) / rate


def _wav_duration(data: bytes) -> float | None:
    """Seconds of a RIFF/WAVE file from its ``fmt `` byte rate and ``data`` chunk size, or None."""
    position = 12
    byte_rate = 0
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if chunk_id == b"fmt " and size >= 12:
            byte_rate = int.from_bytes(data[position + 16 : position + 20], "little")
        elif chunk_id == b"data":
            if not byte_rate:
                return None
            # A streamed WAV may declare 0 or 0xFFFFFFFF; then the bytes present are the truth.
            present = len(data) - position - 8
            length = present if size in {0, 0xFFFFFFFF} else min(size, present)
            return length / byte_rate
        position += 8 + size + (size & 1)
    return None


def container_duration(data: bytes, fmt: AudioFormat | None = None) -> float | None:
    """
    The duration recorded in an Ogg or WAV container, read without any decoder; None for other formats.

    Cheap and dependency-free, so every install refuses an over-long voice note before any upload.
    """
    fmt = fmt or sniff_format(data)
    if fmt is AudioFormat.OGG:
        return _ogg_duration(data)
    if fmt is AudioFormat.WAV:
        return _wav_duration(data)
    return None


def probe_duration(data: bytes) -> float | None:
    """
    The duration in seconds from the container headers, or None when PyAV is absent or the container has none.

    Raises:
        UnsupportedAudioError: PyAV cannot open the bytes as an audio container.
    """
    try:
        import av  # noqa: PLC0415 - optional: PyAV ships with the local-stt extra only
    except ImportError:
        log.debug("PyAV is not installed; relying on the declared duration")
        return None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise UnsupportedAudioError("no audio stream")
            if container.duration is not None:
                return float(container.duration) / 1_000_000
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return None
    except av.error.FFmpegError as exc:
        raise UnsupportedAudioError("the container cannot be read") from exc


def check_audio(audio: Audio, limits: AudioLimits) -> AudioInfo:
    """
    Apply *limits* and the format check to *audio*, cheapest check first.

    Raises:
        AudioTooLargeError: More bytes than ``limits.max_bytes`` (checked before anything is parsed).
        UnsupportedAudioError: Not an OGG/Opus, MP3, M4A, WAV or WebM container.
        AudioTooLongError: The declared or probed duration exceeds ``limits.max_duration_s``.
    """
    if audio.size > limits.max_bytes:
        raise AudioTooLargeError(audio.size, limits.max_bytes)
    fmt = sniff_format(audio.data)
    if fmt is None:
        raise UnsupportedAudioError("not an ogg, mp3, m4a, wav or webm file")
    declared = audio.declared_duration_s
    if declared is not None and declared > limits.max_duration_s:
        raise AudioTooLongError(declared, limits.max_duration_s)
    duration = declared
    recorded = container_duration(audio.data, fmt)
    if recorded is not None:
        if recorded > limits.max_duration_s:
            raise AudioTooLongError(recorded, limits.max_duration_s)
        duration = recorded
    if limits.probe and recorded is None:
        probed = probe_duration(audio.data)
        if probed is not None:
            if probed > limits.max_duration_s:
                raise AudioTooLongError(probed, limits.max_duration_s)
            duration = probed
    return AudioInfo(format=fmt, duration_s=duration)
