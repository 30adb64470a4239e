"""
Checks every transcriber applies to a recording before any upload or decoding.

Order matters and is cheap first: the size (no parsing at all), then the container's magic bytes,
then the duration the sender declared, then the duration read from the container headers with PyAV
(bundled with faster-whisper; no ffmpeg binary). PyAV is optional: without it, cloud-only installs
rely on the declared duration and the provider's own checks.
"""

from __future__ import annotations

import enum
import io
import logging

import attrs

from voicecoder.domain.errors import AudioTooLargeError, AudioTooLongError, UnsupportedAudioError
from voicecoder.domain.model import Audio

log = logging.getLogger(__name__)

__all__ = ["AudioFormat", "AudioInfo", "AudioLimits", "check_audio", "probe_duration", "sniff_format"]


class AudioFormat(enum.Enum):
    """Containers voicecoder accepts, with the MIME type sent to providers."""

    OGG = "audio/ogg"
    MP3 = "audio/mpeg"
    M4A = "audio/mp4"
    WAV = "audio/wav"


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
    # A bare MPEG audio frame: 11 sync bits set, layer bits not "reserved".
    if len(data) >= 2 and data[0] == 0xFF and data[1] & _MP3_SYNC_MASK == _MP3_SYNC_MASK and data[1] & 0x06:
        return AudioFormat.MP3
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
        UnsupportedAudioError: Not an OGG/Opus, MP3, M4A or WAV container.
        AudioTooLongError: The declared or probed duration exceeds ``limits.max_duration_s``.
    """
    if audio.size > limits.max_bytes:
        raise AudioTooLargeError(audio.size, limits.max_bytes)
    fmt = sniff_format(audio.data)
    if fmt is None:
        raise UnsupportedAudioError("not an ogg, mp3, m4a or wav file")
    declared = audio.declared_duration_s
    if declared is not None and declared > limits.max_duration_s:
        raise AudioTooLongError(declared, limits.max_duration_s)
    duration = declared
    if limits.probe:
        probed = probe_duration(audio.data)
        if probed is not None:
            if probed > limits.max_duration_s:
                raise AudioTooLongError(probed, limits.max_duration_s)
            duration = probed
    return AudioInfo(format=fmt, duration_s=duration)
