"""
The sandbox web chat against a real FakeBotApi: the page's JSON API plays the user, and a "bot" made of
plain Bot API calls over HTTP (getUpdates, sendMessage, editMessageText, sendDocument, answerCallbackQuery)
plays the other side.
"""

from __future__ import annotations

import asyncio
import html
import importlib.resources
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from voicecoder.simulators.bot_api import FakeBotApi
from voicecoder.simulators.demo_model import DEMO_PROMPTS
from voicecoder.simulators.web_chat import (
    CSRF_HEADER,
    MAX_VOICE_BYTES,
    create_sandbox_web_app,
    recording_duration,
    render_entities,
)

# The EBML header Chromium's MediaRecorder writes: DocType "webm" (what tells WebM from other Matroska).
WEBM_HEADER = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm"
USER_ID = 424242
VOICE = Path(__file__).resolve().parent.parent / "fixtures" / "voice" / "01_create_file.ogg"


class Bot:
    """The bot side: real Bot API calls to the fake over HTTP, as the webhook server's client would make."""

    def __init__(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        self.api = api
        self.http = http
        self.offset = 0

    async def call(self, method: str, **params: Any) -> Any:
        url = f"{self.api.base_url}/bot{self.api.token}/{method}"
        async with self.http.post(url, json=params) as resp:
            body = await resp.json()
        assert body["ok"], body
        return body["result"]

    async def updates(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.call("getUpdates", offset=self.offset, timeout=0)
        if found:
            self.offset = found[-1]["update_id"] + 1
        return found

    async def say(self, text: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sendMessage", chat_id=USER_ID, text=text, parse_mode="HTML", **params)
        return result


@pytest.fixture(name="bot_api")
async def _bot_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that sends what the sandbox page sends: the anti-CSRF header."""
    async with aiohttp.ClientSession(headers={CSRF_HEADER: "1"}) as session:
        yield session


@pytest.fixture(name="plain_http")
async def _plain_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client without the sandbox header, like another web site's form or fetch."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(name="base")
async def _base(bot_api: FakeBotApi) -> AsyncIterator[str]:
    """The web chat served for real on 127.0.0.1, as its URL."""
    app = create_sandbox_web_app(bot_api, user_id=USER_ID, chat_id=USER_ID, user_name="Grace")
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture(name="bot")
def _bot(bot_api: FakeBotApi, http: aiohttp.ClientSession) -> Bot:
    return Bot(bot_api, http)


async def conversation(http: aiohttp.ClientSession, base: str, **query: Any) -> dict[str, Any]:
    async with http.get(base + "api/conversation", params={k: str(v) for k, v in query.items()}) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def post_json(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


def wav_bytes(seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x01" * int(16000 * seconds))
    return buf.getvalue()


class TestPage:
    async def test_index_and_assets_are_served_locally(self, http: aiohttp.ClientSession, base: str) -> None:
        """GET / is the chat page; its CSS and JS come from the same app (no CDN), with a strict CSP."""
        async with http.get(base) as resp:
            page = await resp.text()
            csp = resp.headers["Content-Security-Policy"]
        async with http.get(base + "static/app.js") as js, http.get(base + "static/app.css") as css:
            statuses = (js.status, css.status, js.content_type, css.content_type)
            script = await js.text()

        assert 'src="static/app.js"' in page
        assert "http://" not in page
        assert "https://" not in page
        assert "script-src 'self'" in csp
        assert statuses == (200, 200, "text/javascript", "text/css")
        assert "api/conversation" in script

    async def test_unknown_asset_is_404(self, http: aiohttp.ClientSession, base: str) -> None:
        """Only the known assets are served: no path traversal into the package."""
        async with http.get(base + "static/..%2F__init__.py") as a, http.get(base + "static/index.htm") as b:
            assert (a.status, b.status) == (404, 404)

    async def test_healthz(self, http: aiohttp.ClientSession, base: str) -> None:
        """GET /healthz answers while the app runs."""
        async with http.get(base + "healthz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"ok": True}

    def test_static_files_are_package_data(self) -> None:
        """The page ships inside the package, so an installed wheel can serve it."""
        static = importlib.resources.files("voicecoder.simulators").joinpath("web_chat_static")

        names = {p.name for p in static.iterdir()}

        assert {"index.html", "app.js", "app.css"} <= names


class TestCrossSite:
    async def test_post_without_the_sandbox_header_is_403(
        self, plain_http: aiohttp.ClientSession, base: str, bot: Bot
    ) -> None:
        """A cross-site form or simple request (no custom header) cannot send a prompt."""
        form = aiohttp.FormData()
        form.add_field("voice", VOICE.read_bytes(), filename="v.ogg")

        sent = await post_json(plain_http, base + "api/send", {"text": "rm -rf /"})
        async with plain_http.post(base + "api/voice", data=form) as resp:
            voice_status = resp.status

        assert (sent[0], voice_status) == (403, 403)
        assert await bot.updates() == []

    async def test_foreign_origin_is_403(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """Even with the header, a request from another origin is refused."""
        async with http.post(
            base + "api/send", json={"text": "hi"}, headers={"Origin": "https://evil.example"}
        ) as resp:
            status = resp.status

        assert status == 403
        assert await bot.updates() == []

    async def test_own_origin_is_accepted(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """The page's own origin (what a browser sends) passes."""
        async with http.post(base + "api/send", json={"text": "hi"}, headers={"Origin": base.rstrip("/")}) as resp:
            status = resp.status

        assert status == 200
        assert len(await bot.updates()) == 1

    async def test_foreign_host_is_403(self, http: aiohttp.ClientSession, base: str) -> None:
        """A DNS-rebound name (Host not loopback) gets nothing, not even the conversation."""
        async with http.get(base + "api/conversation", headers={"Host": "evil.example:80"}) as resp:
            assert resp.status == 403

    async def test_localhost_names_are_accepted(self, http: aiohttp.ClientSession, base: str) -> None:
        """127.0.0.1 and localhost, with or without a port, are the sandbox's own names."""
        port = base.rsplit(":", 1)[1].strip("/")
        statuses = []
        for host in (f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):
            async with http.get(base + "healthz", headers={"Host": host}) as resp:
                statuses.append(resp.status)

        assert statuses == [200, 200, 200]


class TestSend:
    async def test_text_reaches_the_bot_as_a_user_update(
        self, http: aiohttp.ClientSession, base: str, bot: Bot
    ) -> None:
        """A typed message arrives at the bot (getUpdates) as a message from the sandbox user in their chat."""
        status, body = await post_json(http, base + "api/send", {"text": "add a README please"})
        updates = await bot.updates()

        assert status == 200
        assert [body["update_id"]] == [u["update_id"] for u in updates]
        message = updates[0]["message"]
        assert message["text"] == "add a README please"
        assert (
            message["from"]["id"],
            message["chat"]["id"],
            message["from"]["first_name"],
        ) == (USER_ID, USER_ID, "Grace")

    async def test_command_gets_a_bot_command_entity(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """/status is sent like a Telegram client sends commands."""
        await post_json(http, base + "api/send", {"text": "/status"})

        (update,) = await bot.updates()

        assert update["message"]["entities"] == [{"offset": 0, "length": 7, "type": "bot_command"}]

    @pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": 42}, ["x"], {"text": "x" * 4097}])
    async def test_bad_text_is_400_and_sends_nothing(
        self, http: aiohttp.ClientSession, base: str, bot: Bot, body: Any
    ) -> None:
        """Missing, blank, non-string or over-long text is refused before anything reaches the bot."""
        status, answer = await post_json(http, base + "api/send", body)

        assert status == 400
        assert answer["error"]
        assert await bot.updates() == []

    async def test_own_message_shows_in_the_conversation(self, http: aiohttp.ClientSession, base: str) -> None:
        """What the user sent is part of the chat, escaped."""
        await post_json(http, base + "api/send", {"text": "compare a < b & c"})

        conv = await conversation(http, base)

        (mine,) = conv["messages"]
        assert (mine["from"], mine["html"]) == ("me", "compare a &lt; b &amp; c")


class TestConversation:
    async def test_bot_message_with_buttons(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """A bot message appears with its Telegram HTML rendered and its inline keyboard."""
        keyboard = {
            "inline_keyboard": [
                [
                    {"text": "✅ Approve", "callback_data": "a:c1:abcd"},
                    {"text": "❌ Reject", "callback_data": "r:c1:abcd"},
                ],
                [{"text": "📝 Show Diff", "callback_data": "d:c1:abcd"}],
            ]
        }
        sent = await bot.say("<b>Change</b> ready: <code>a.py</code> +3 −1", reply_markup=keyboard)

        conv = await conversation(http, base)

        (msg,) = conv["messages"]
        assert sent["message_id"] == msg["id"]
        assert msg["from"] == "bot"
        assert msg["html"] == "<b>Change</b> ready: <code>a.py</code> +3 −1"
        assert [[b["text"] for b in row] for row in msg["buttons"]] == [["✅ Approve", "❌ Reject"], ["📝 Show Diff"]]
        assert msg["buttons"][1][0]["callback_data"] == "d:c1:abcd"

    async def test_edit_is_reflected_in_place(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """editMessageText changes the same message (same key, new rev, marked edited) and drops its keyboard."""
        cancel = {"inline_keyboard": [[{"text": "⏹ Cancel", "callback_data": "c::"}]]}
        sent = await bot.say("⏳ Claude is working on this…", reply_markup=cancel)
        before = await conversation(http, base)

        await bot.call(
            "editMessageText",
            chat_id=USER_ID,
            message_id=sent["message_id"],
            text="⏳ Claude is working on this…\n• Edit a.py",
            parse_mode="HTML",
        )
        after = await conversation(http, base)

        (old,), (new,) = before["messages"], after["messages"]
        assert old["key"] == new["key"]
        assert (old["edited"], new["edited"]) == (False, True)
        assert new["rev"] > old["rev"]
        assert new["html"] == "⏳ Claude is working on this…\n• Edit a.py"
        assert (old["buttons"], new["buttons"]) == ([[{"text": "⏹ Cancel", "callback_data": "c::"}]], [])
        assert after["version"] > before["version"]

    async def test_long_poll_returns_when_the_bot_sends(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """A waiting request is answered as soon as the bot sends something, not at its timeout."""
        version = (await conversation(http, base))["version"]

        async def later() -> None:
            await asyncio.sleep(0.2)
            await bot.say("hello")

        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.create_task(later())
        conv = await conversation(http, base, since=version, wait=10)
        elapsed = loop.time() - started
        await task

        assert [m["html"] for m in conv["messages"]] == ["hello"]
        assert conv["version"] > version
        assert elapsed < 5

    async def test_shutdown_releases_waiting_long_polls(
        self, bot_api: FakeBotApi, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Stopping the server answers pending long polls at once instead of holding shutdown for their wait."""
        waiting = asyncio.Event()
        wait_transcript = bot_api.wait_transcript

        async def noted_wait(**kwargs: Any) -> list[dict[str, Any]]:
            waiting.set()
            return await wait_transcript(**kwargs)

        monkeypatch.setattr(bot_api, "wait_transcript", noted_wait)
        app = create_sandbox_web_app(bot_api, user_id=USER_ID, chat_id=USER_ID)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=20.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        poll = asyncio.create_task(conversation(http, base, since=0, wait=30))
        await asyncio.wait_for(waiting.wait(), 30)  # the poll is inside the server, waiting
        loop = asyncio.get_running_loop()
        started = loop.time()

        await runner.cleanup()
        conv = await asyncio.wait_for(poll, 5)

        assert loop.time() - started < 5
        assert conv["version"] == 0

    async def test_long_poll_times_out_unchanged(self, http: aiohttp.ClientSession, base: str) -> None:
        """With nothing new, the long poll answers after *wait* with the same version."""
        version = (await conversation(http, base))["version"]

        conv = await conversation(http, base, since=version, wait=0.3)

        assert version == conv["version"]

    async def test_version_from_before_a_restart_answers_at_once(self, http: aiohttp.ClientSession, base: str) -> None:
        """A page that saw a later version (the sandbox restarted) gets the current chat without waiting."""
        loop = asyncio.get_running_loop()
        started = loop.time()

        conv = await conversation(http, base, since=999, wait=10)

        assert loop.time() - started < 5
        assert conv["version"] == 0

    async def test_bad_query_is_400(self, http: aiohttp.ClientSession, base: str) -> None:
        """Non-numeric since/wait are refused."""
        async with http.get(base + "api/conversation", params={"since": "x"}) as resp:
            assert resp.status == 400

    async def test_other_chats_are_not_shown(self, http: aiohttp.ClientSession, base: str, bot_api: FakeBotApi) -> None:
        """Only the sandbox user's chat is part of the conversation."""
        await bot_api.send_text("someone else")

        conv = await conversation(http, base)

        assert conv["messages"] == []

    async def test_document_is_a_download_link(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """A .diff the bot sends as a document can be downloaded from the page, as an attachment."""
        diff = b"--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n" * 200
        form = aiohttp.FormData()
        form.add_field("chat_id", str(USER_ID))
        form.add_field("caption", "📝 Full diff")
        form.add_field("document", diff, filename="change-c1.diff", content_type="text/x-diff")
        async with bot.http.post(f"{bot.api.base_url}/bot{bot.api.token}/sendDocument", data=form) as resp:
            assert resp.status == 200

        (msg,) = (await conversation(http, base))["messages"]
        async with http.get(base + msg["document"]["url"]) as resp:
            data = await resp.read()
            disposition = resp.headers["Content-Disposition"]
            content_type = resp.content_type

        assert ("change-c1.diff", len(diff)) == (msg["document"]["name"], msg["document"]["size"])
        assert msg["html"] == "📝 Full diff"
        assert diff == data
        assert disposition == 'attachment; filename="change-c1.diff"'
        assert content_type == "application/octet-stream"

    async def test_unknown_file_is_404(self, http: aiohttp.ClientSession, base: str, bot_api: FakeBotApi) -> None:
        """Files outside the sandbox chat are not served, even if the fake holds them."""
        stored = bot_api.add_file(b"secret", kind="documents", extension="txt", file_name="x.txt")

        async with http.get(base + f"api/files/{stored.file_id}") as resp:
            assert resp.status == 404

    async def test_markup_from_the_bot_is_escaped(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """Escaped markup in a bot message stays text: nothing executable reaches the page."""
        await bot.say('&lt;img src=x onerror=alert(1)&gt; <a href="javascript:alert(1)">click</a>')

        (msg,) = (await conversation(http, base))["messages"]

        assert msg["html"] == "&lt;img src=x onerror=alert(1)&gt; click"


class TestPress:
    async def test_press_reaches_the_bot_as_a_callback_query(
        self, http: aiohttp.ClientSession, base: str, bot: Bot
    ) -> None:
        """Pressing a button sends a callback_query referencing the bot's message, and its answer shows."""
        keyboard = {"inline_keyboard": [[{"text": "📊 Git Status", "callback_data": "s:c1:ff"}]]}
        sent = await bot.say("Change ready", reply_markup=keyboard)

        status, _ = await post_json(http, base + "api/press", {"message_id": sent["message_id"], "data": "s:c1:ff"})
        (update,) = await bot.updates()
        query = update["callback_query"]
        await bot.call("answerCallbackQuery", callback_query_id=query["id"], text="📊 Git status sent")
        conv = await conversation(http, base)

        assert status == 200
        assert ("s:c1:ff", sent["message_id"], USER_ID) == (
            query["data"],
            query["message"]["message_id"],
            query["from"]["id"],
        )
        assert [a["text"] for a in conv["answers"]] == ["📊 Git status sent"]

    @pytest.mark.parametrize("data", ["nope", "s:c1:f"])
    async def test_button_not_on_the_message_is_404(
        self, http: aiohttp.ClientSession, base: str, bot: Bot, data: str
    ) -> None:
        """A client can only press buttons that exist; nothing reaches the bot otherwise."""
        sent = await bot.say(
            "Change ready", reply_markup={"inline_keyboard": [[{"text": "S", "callback_data": "s:c1:ff"}]]}
        )

        status, body = await post_json(http, base + "api/press", {"message_id": sent["message_id"], "data": data})

        assert status == 404
        assert "callback_data" in body["error"]
        assert await bot.updates() == []

    @pytest.mark.parametrize(
        "body", [{}, {"message_id": "1", "data": "x"}, {"message_id": True, "data": "x"}, {"message_id": 1}]
    )
    async def test_malformed_press_is_400(self, http: aiohttp.ClientSession, base: str, body: Any) -> None:
        """message_id must be a number and data a string."""
        status, _ = await post_json(http, base + "api/press", body)

        assert status == 400


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


class TestRenderEntities:
    def test_plain_text_is_escaped(self) -> None:
        """Without entities, the text is only escaped."""
        assert render_entities("a <b> & c", []) == "a &lt;b&gt; &amp; c"

    def test_nested_entities(self) -> None:
        """Nested entities give nested tags."""
        entities = [{"offset": 0, "length": 11, "type": "bold"}, {"offset": 6, "length": 5, "type": "italic"}]

        assert render_entities("hello world!", entities) == "<b>hello <i>world</i></b>!"

    def test_utf16_offsets_after_emoji(self) -> None:
        """Offsets count UTF-16 code units: an emoji outside the BMP is two."""
        text = "🤖 Claude: done"
        entities = [{"offset": 3, "length": 7, "type": "bold"}]

        assert render_entities(text, entities) == "🤖 <b>Claude:</b> done"

    def test_overlapping_entities_are_closed_and_reopened(self) -> None:
        """Crossing entities still give well-formed HTML."""
        entities = [{"offset": 0, "length": 4, "type": "bold"}, {"offset": 2, "length": 4, "type": "italic"}]

        assert render_entities("abcdef", entities) == "<b>ab<i>cd</i></b><i>ef</i>"

    def test_pre_with_language(self) -> None:
        """pre with a language becomes pre/code with a language class; a bad language is dropped."""
        good = render_entities("-a\n+b", [{"offset": 0, "length": 5, "type": "pre", "language": "diff"}])
        bad = render_entities("x", [{"offset": 0, "length": 1, "type": "pre", "language": 'x" onclick="y'}])

        assert good == '<pre><code class="language-diff">-a\n+b</code></pre>'
        assert bad == "<pre>x</pre>"

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            (
                'https://example.org/?a=1&b="2"',
                (
                    '<a href="https://example.org/?a=1&amp;b=&quot;2&quot;" target="_blank" rel="noopener noreferrer">'
                    "go</a>"
                ),
            ),
            ("javascript:alert(1)", "go"),
            ("data:text/html,x", "go"),
        ],
    )
    def test_links_only_to_safe_schemes(self, url: str, expected: str) -> None:
        """text_link keeps http(s)/tg/mailto targets, escaped; anything else is plain text."""
        assert expected == render_entities("go", [{"offset": 0, "length": 2, "type": "text_link", "url": url}])

    def test_spoiler_quote_and_unknown_kinds(self) -> None:
        """Spoilers and quotes have their tags; mentions and unknown kinds are plain text."""
        text = "secret quote @ada"
        entities = [
            {"offset": 0, "length": 6, "type": "spoiler"},
            {"offset": 7, "length": 5, "type": "expandable_blockquote"},
            {"offset": 13, "length": 4, "type": "mention"},
            {"offset": 0, "length": 3, "type": "<script>"},
        ]

        expected = '<span class="tg-spoiler">secret</span> <blockquote>quote</blockquote> @ada'
        assert expected == render_entities(text, entities)

    def test_entities_out_of_range_are_clipped_or_ignored(self) -> None:
        """Garbage offsets do not raise or produce unbalanced tags."""
        entities: list[dict[str, Any]] = [
            {"offset": 2, "length": 100, "type": "bold"},
            {"offset": 50, "length": 1, "type": "italic"},
            {"offset": "x", "length": 1, "type": "code"},
            {"type": "code"},
        ]

        assert render_entities("abc", entities) == "ab<b>c</b>"


class TestReplies:
    async def test_a_text_reply_carries_the_replied_message(
        self, http: aiohttp.ClientSession, base: str, bot: Bot
    ) -> None:
        """Replying to a bot message sends reply_to_message with its text and keyboard; the page quotes it."""
        keyboard = {"inline_keyboard": [[{"text": "✅ Allow", "callback_data": "y:0123abcd:"}]]}
        sent = await bot.say("💻 <b>Claude wants to run a command</b>", reply_markup=keyboard)
        await bot.updates()

        status, _ = await post_json(http, base + "api/send", {"text": "no, not now", "reply_to": sent["message_id"]})
        (update,) = await bot.updates()
        async with http.get(base + "api/conversation") as resp:
            mine = [m for m in (await resp.json())["messages"] if m["from"] == "me"]

        assert status == 200
        replied = update["message"]["reply_to_message"]
        assert (replied["message_id"], replied["text"]) == (sent["message_id"], "💻 Claude wants to run a command")
        assert replied["reply_markup"] == keyboard
        assert mine[-1]["reply_to"] == {"id": sent["message_id"], "text": "💻 Claude wants to run a command"}

    async def test_a_voice_reply(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """A recorded voice note can reply too (the reply_to form field)."""
        sent = await bot.say("question")
        await bot.updates()
        form = aiohttp.FormData()
        form.add_field("voice", VOICE.read_bytes(), filename="voice.ogg", content_type="audio/ogg")
        form.add_field("reply_to", str(sent["message_id"]))

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 200
        (update,) = await bot.updates()

        assert update["message"]["reply_to_message"]["message_id"] == sent["message_id"]

    @pytest.mark.parametrize(("reply_to", "status"), [(999999, 404), ("7", 400), (True, 400)])
    async def test_bad_reply_targets_are_refused(
        self, http: aiohttp.ClientSession, base: str, bot: Bot, reply_to: Any, status: int
    ) -> None:
        """A reply to a message that does not exist is 404, a malformed id 400; nothing is sent."""
        got, _ = await post_json(http, base + "api/send", {"text": "x", "reply_to": reply_to})

        assert got == status
        assert await bot.updates() == []

    async def test_the_page_offers_the_demo_prompts(self, http: aiohttp.ClientSession, base: str) -> None:
        """Every request the demo model understands is a tappable chip on the page."""
        async with http.get(base) as resp:
            page = html.unescape(await resp.text())

        assert [p for p in DEMO_PROMPTS if f'data-command="{p}"' not in page] == []
