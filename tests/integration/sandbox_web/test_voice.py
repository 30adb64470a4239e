"""The sandbox web chat's voice recordings and uploads, against a real FakeBotApi."""

from __future__ import annotations

import io

import aiohttp
import pytest

from tests.integration.sandbox_web.chat import VOICE, WEBM_HEADER, Bot, conversation, wav_bytes
from voicecoder.simulators.web_chat import (
    MAX_VOICE_BYTES,
    recording_duration,
)


class TestVoice:
    async def test_multipart_ogg_arrives_as_a_voice_note_with_the_bytes(
        self, http: aiohttp.ClientSession, base: str, bot: Bot
    ) -> None:
        """An OGG recording becomes a Telegram voice note; the bot downloads exactly the uploaded bytes."""
        data = VOICE.read_bytes()
        form = aiohttp.FormData()
        form.add_field("voice", data, filename="voice.ogg", content_type="audio/ogg")
        form.add_field("duration", "3.4")

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 200
            assert (await resp.json())["kind"] == "voice"
        (update,) = await bot.updates()
        voice = update["message"]["voice"]
        file = await bot.call("getFile", file_id=voice["file_id"])
        async with bot.http.get(f"{bot.api.base_url}/file/bot{bot.api.token}/{file['file_path']}") as resp:
            downloaded = await resp.read()

        assert ("audio/ogg", 3, len(data)) == (voice["mime_type"], voice["duration"], voice["file_size"])
        assert data == downloaded

    async def test_raw_wav_body_arrives_as_audio(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """A raw WAV body (file input) becomes an audio message with the sniffed MIME type, whatever the header says."""
        data = wav_bytes()

        async with http.post(
            base + "api/voice?name=take%201.wav&duration=0.5", data=data, headers={"Content-Type": "text/plain"}
        ) as resp:
            assert resp.status == 200
        (update,) = await bot.updates()
        audio = update["message"]["audio"]
        file = await bot.call("getFile", file_id=audio["file_id"])
        async with bot.http.get(f"{bot.api.base_url}/file/bot{bot.api.token}/{file['file_path']}") as resp:
            downloaded = await resp.read()

        assert (audio["mime_type"], audio["file_name"], audio["duration"]) == ("audio/wav", "take 1.wav", 1)
        assert data == downloaded

    @pytest.mark.parametrize(
        ("data", "field", "expected"),
        [
            (VOICE.read_bytes(), "voice", 4),  # 01_create_file.ogg: 4.14 s of Opus
            (wav_bytes(3.7), "audio", 4),
            (wav_bytes(0.2), "audio", 1),
        ],
    )
    async def test_a_file_without_a_duration_is_measured(
        self, http: aiohttp.ClientSession, base: str, bot: Bot, data: bytes, field: str, expected: int
    ) -> None:
        """An uploaded file sent without a duration carries its measured length, as a Telegram client's would."""
        form = aiohttp.FormData()
        form.add_field("voice", data, filename="upload.bin", content_type="application/octet-stream")

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 200
        (update,) = await bot.updates()

        assert update["message"][field]["duration"] == expected

    def test_measured_length_matches_pyav(self) -> None:
        """The header-only OGG reader agrees with a full decode (PyAV) within a frame."""
        av = pytest.importorskip("av", reason="PyAV comes with the local-stt extra")
        for clip in sorted(VOICE.parent.glob("*.ogg")):
            data = clip.read_bytes()
            measured = recording_duration(data)
            if clip.name == "not_audio.ogg":
                assert measured is None
                continue
            with av.open(io.BytesIO(data)) as container:
                stream = container.streams.audio[0]
                decoded = sum(frame.samples for frame in container.decode(stream)) / stream.codec_context.sample_rate
            assert measured is not None
            assert abs(measured - decoded) < 0.03, clip.name

    async def test_webm_from_media_recorder_is_passed_on(
        self, http: aiohttp.ClientSession, base: str, bot: Bot
    ) -> None:
        """A WebM recording (Chromium's MediaRecorder) reaches the bot as audio/webm, a type the bot accepts."""
        data = WEBM_HEADER + b"\x00" * 64
        form = aiohttp.FormData()
        form.add_field("voice", data, filename="voice.webm", content_type="audio/webm;codecs=opus")

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 200
        (update,) = await bot.updates()

        assert (
            update["message"]["audio"]["mime_type"],
            update["message"]["audio"]["file_name"],
        ) == ("audio/webm", "voice.webm")

    @pytest.mark.parametrize(
        ("data", "mime"),
        [(b"\x00\x00\x00\x1cftypiso6" + b"\x00" * 64, "audio/mp4"), (WEBM_HEADER + b"\x00" * 64, "audio/webm")],
    )
    async def test_microphone_recording_is_a_voice_note(
        self, http: aiohttp.ClientSession, base: str, bot: Bot, data: bytes, mime: str
    ) -> None:
        """A MediaRecorder recording (kind=voice) is a voice note whatever its container, with the sniffed type."""
        form = aiohttp.FormData()
        form.add_field("voice", data, filename="voice.bin", content_type="application/octet-stream")
        form.add_field("duration", "1.6")
        form.add_field("kind", "voice")

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 200
        (update,) = await bot.updates()

        assert (update["message"]["voice"]["mime_type"], update["message"]["voice"]["duration"]) == (mime, 2)

    async def test_recording_shows_as_a_playable_voice_note(self, http: aiohttp.ClientSession, base: str) -> None:
        """The user's own voice note is in the conversation with a URL that plays the same bytes."""
        data = VOICE.read_bytes()
        async with http.post(base + "api/voice?duration=2", data=data) as resp:
            assert resp.status == 200

        (mine,) = (await conversation(http, base))["messages"]
        async with http.get(base + mine["voice"]["url"]) as resp:
            played = await resp.read()
            content_type = resp.content_type

        assert (mine["voice"]["duration"], content_type) == (2, "audio/ogg")
        assert data == played

    async def test_large_multipart_upload(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """A few megabytes (a long WAV) pass: the upload is streamed, not capped by aiohttp's 1 MiB default."""
        data = wav_bytes(seconds=100.0)
        form = aiohttp.FormData()
        form.add_field("voice", io.BytesIO(data), filename="long.wav", content_type="audio/wav")

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 200
        (update,) = await bot.updates()

        assert update["message"]["audio"]["file_size"] == len(data) > 3_000_000

    async def test_not_audio_is_415(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """Bytes that are no audio container are refused before reaching the bot."""
        async with http.post(base + "api/voice", data=b"<html>hello</html>") as resp:
            assert resp.status == 415
        assert await bot.updates() == []

    async def test_empty_is_400(self, http: aiohttp.ClientSession, base: str) -> None:
        """An empty recording (e.g. a cancelled MediaRecorder) is refused."""
        form = aiohttp.FormData()
        form.add_field("voice", b"", filename="voice.webm", content_type="audio/webm")

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 400

    async def test_multipart_without_a_file_is_400(self, http: aiohttp.ClientSession, base: str) -> None:
        """A form without the voice part is refused."""
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("duration", "2")
        form.add_field("other", "x")

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 400

    async def test_oversize_is_413(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """Uploads larger than MAX_VOICE_BYTES are cut off with 413 and never reach the bot."""
        data = b"OggS" + b"\x00" * MAX_VOICE_BYTES

        async with http.post(base + "api/voice", data=io.BytesIO(data)) as resp:
            assert resp.status == 413
        assert await bot.updates() == []
