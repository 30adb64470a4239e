"""The sandbox page's uploads: a recorded voice note or a picked audio file, read within limits and measured."""

from __future__ import annotations

import io
import math

import attrs
from aiohttp import BodyPartReader, web

from voicecoder.adapters.stt.audio_intake import sniff_format

MAX_VOICE_BYTES = 25 << 20


@attrs.frozen
class Recording:
    data: bytes
    file_name: str | None
    duration: int | None
    recorded: bool
    """Recorded with the microphone (a voice note), not a file the user picked."""
    reply_to: int | None = None
    """The message this voice note replies to (e.g. a tool question it answers)."""


async def read_limited(part: BodyPartReader | web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await (part.read_chunk(1 << 16) if isinstance(part, BodyPartReader) else part.content.read(1 << 16))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_VOICE_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_VOICE_BYTES, actual_size=size)
        chunks.append(chunk)


def _duration(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0 or seconds > 24 * 3600:
        return None
    return max(1, round(seconds))


async def read_recording(request: web.Request) -> Recording:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        data: bytes | None = None
        file_name: str | None = None
        duration: int | None = None
        recorded = False
        reply_to: int | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "duration":
                duration = _duration((await part.read(decode=True)).decode("ascii", "replace")[:32])
            elif part.name == "reply_to":
                reply_to = message_id_field((await part.read(decode=True)).decode("ascii", "replace")[:32])
            elif part.name == "kind":
                recorded = (await part.read(decode=True))[:16] == b"voice"
            elif data is None and (part.name == "voice" or part.filename):
                file_name = part.filename
                data = await read_limited(part)
            else:
                await part.release()
        if data is None:
            raise web.HTTPBadRequest(
                text='{"error": "a \'voice\' file part is required"}', content_type="application/json"
            )
        return Recording(data, file_name, duration, recorded, reply_to)
    return Recording(
        await read_limited(request),
        request.query.get("name"),
        _duration(request.query.get("duration")),
        request.query.get("kind") == "voice",
        message_id_field(request.query.get("reply_to")),
    )


def message_id_field(value: str | None) -> int | None:
    """A message id from a form field or query, or None (a malformed one is refused)."""
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise web.HTTPBadRequest(text='{"error": "reply_to is a message id"}', content_type="application/json")
    return int(value)


def recording_duration(data: bytes) -> float | None:
    """
    The length of a recording in seconds, as a Telegram client measures it before sending (None if unknown).

    OGG (Opus or Vorbis) and WAV are read from their headers; other containers through PyAV when it is
    installed (the local speech engine brings it).
    """
    if data.startswith(b"OggS"):
        return _ogg_duration(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav_duration(data)
    return _pyav_duration(data)


def _ogg_duration(data: bytes) -> float | None:
    # The granule position of the last page counts samples: at 48 kHz minus the encoder's pre-skip for Opus
    # (RFC 7845 §4), at the identification header's sample rate for Vorbis.
    last = data.rfind(b"OggS")
    if last < 0 or len(data) < last + 14:
        return None
    granule = int.from_bytes(data[last + 6 : last + 14], "little", signed=True)
    if granule < 0:
        return None
    head = data.find(b"OpusHead")
    if head >= 0 and len(data) >= head + 12:
        pre_skip = int.from_bytes(data[head + 10 : head + 12], "little")
        return max(0.0, (granule - pre_skip) / 48_000)
    vorbis = data.find(b"\x01vorbis")
    if vorbis >= 0 and len(data) >= vorbis + 16:
        rate = int.from_bytes(data[vorbis + 12 : vorbis + 16], "little")
        return granule / rate if rate else None
    return None


def _wav_duration(data: bytes) -> float | None:
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt " and pos + 20 <= len(data):
            byte_rate = int.from_bytes(data[pos + 16 : pos + 20], "little")
        elif chunk == b"data":
            size = min(size, len(data) - pos - 8)
            return size / byte_rate if byte_rate else None
        pos += 8 + size + (size & 1)
    return None


def _pyav_duration(data: bytes) -> float | None:
    try:
        import av  # noqa: PLC0415 - optional: present with the local speech engine
    except ImportError:
        return None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if container.duration is not None:
                return float(container.duration) / 1_000_000
    except (av.FFmpegError, ValueError, OSError):
        return None
    return None


def sniff_audio(data: bytes) -> tuple[str, str] | None:
    """
    The (MIME type, file extension) of a browser recording or audio file: the bot's own sniffer decides.

    So the page accepts exactly what the bot can transcribe (WebM included), never a file it would refuse.
    """
    fmt = sniff_format(data)
    return (fmt.value, fmt.extension) if fmt is not None else None
