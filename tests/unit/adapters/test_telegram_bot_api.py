from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.loopback import free_port
from voicecoder.adapters.telegram.api import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    PacingPolicy,
    RetryPolicy,
    TelegramApiError,
    TelegramBotApi,
    TokenBucketPacer,
    Update,
)
from voicecoder.domain.errors import DeliveryError, MalformedUpdateError
from voicecoder.simulators.bot_api import DEFAULT_TOKEN, DEFAULT_USER, FakeBotApi

VOICE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "voice" / "01_create_file.ogg"
CHAT = DEFAULT_USER.id
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=5)
NO_PACING = PacingPolicy(per_chat_rate=0, global_rate=0)


@pytest.fixture(name="api")
async def _api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(time_scale=0.01) as api:
        api.add_chat()
        yield api


@pytest.fixture(name="client")
async def _client(api: FakeBotApi) -> AsyncIterator[TelegramBotApi]:
    async with TelegramBotApi(
        DEFAULT_TOKEN, base_url=api.base_url, retry=FAST_RETRY, pacing=NO_PACING, timeout=2.0
    ) as client:
        yield client


class TestTelegramBotApi:
    async def test_send_message_round_trip(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """sendMessage returns the parsed Message; the fake holds the plain text and the keyboard."""
        markup = InlineKeyboardMarkup(((InlineKeyboardButton("✅ Approve", callback_data="a:1"),),))

        msg = await client.send_message(CHAT, "<b>Hi</b> &lt;there&gt;", reply_markup=markup)

        assert msg.chat.id == CHAT
        assert msg.text == "Hi <there>"
        assert msg.reply_markup == markup
        assert api.bot_messages()[-1].callback_datas() == ["a:1"]

    async def test_send_message_id_returns_the_sent_messages_id(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """send_message_id sends what send_message sends (buttons, topic) and returns the id Telegram gave it."""
        markup = InlineKeyboardMarkup(((InlineKeyboardButton("✅ Approve", callback_data="a:1"),),))

        first = await client.send_message_id(CHAT, "<b>one</b>", reply_markup=markup)
        second = await client.send_message_id(CHAT, "two <", parse_mode=None)

        sent = api.bot_messages()
        assert [m.message_id for m in sent[-2:]] == [first, second]
        assert [m.text for m in sent[-2:]] == ["one", "two <"]
        assert sent[-2].callback_datas() == ["a:1"]

    async def test_send_message_id_keeps_the_error_handling(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """A 429 is waited out and a 5xx retried as for every call; a 400 raises at once with its description."""
        api.fail_next("sendMessage", code=429, retry_after=1)
        api.fail_next("sendMessage", code=500)

        sent = await client.send_message_id(CHAT, "after the flood")

        assert api.bot_messages()[-1].message_id == sent
        assert [c.status for c in api.calls_to("sendMessage")] == [429, 500, 200]
        with pytest.raises(TelegramApiError) as info:
            await client.send_message_id(CHAT, "<b>unclosed")
        assert info.value.code == 400
        assert info.value.is_parse_error

    @pytest.mark.parametrize("result", ["true", "{}", '{"message_id":"7"}', '{"message_id":true}'])
    async def test_send_message_id_refuses_an_answer_without_a_message_id(self, result: str) -> None:
        """An ok answer whose result has no integer message_id is a MalformedUpdateError, as send_message's parse."""

        async def answer(_request: web.Request) -> web.Response:
            return web.Response(text=f'{{"ok":true,"result":{result}}}', content_type="application/json")

        app = web.Application()
        app.router.add_post("/bot{rest:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with TelegramBotApi(
                DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{port}", pacing=NO_PACING, timeout=2.0
            ) as client:
                with pytest.raises(MalformedUpdateError):
                    await client.send_message_id(CHAT, "x")
        finally:
            await runner.cleanup()

    async def test_429_retry_after_is_honoured(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """A 429 waits parameters.retry_after seconds, then the message is delivered."""
        api.fail_next("sendMessage", code=429, retry_after=1)
        start = time.monotonic()

        msg = await client.send_message(CHAT, "after the flood")

        assert time.monotonic() - start >= 0.95
        assert msg.text == "after the flood"
        assert [c.status for c in api.calls_to("sendMessage")] == [429, 200]

    async def test_429_longer_than_allowed_raises(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """A flood wait beyond max_retry_after is not slept through: the caller gets the 429."""
        api.fail_next("sendMessage", code=429, retry_after=30)

        with pytest.raises(TelegramApiError) as info:
            await client.send_message(CHAT, "x")

        assert info.value.code == 429
        assert info.value.retry_after == 30
        assert len(api.calls_to("sendMessage")) == 1

    async def test_5xx_is_retried(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """Two 500s are retried with backoff; the third attempt delivers."""
        api.fail_next("sendMessage", 2, code=500)

        msg = await client.send_message(CHAT, "eventually")

        assert msg.text == "eventually"
        assert [c.status for c in api.calls_to("sendMessage")] == [500, 500, 200]

    async def test_5xx_gives_up_after_bounded_attempts(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """Persistent 5xx ends in a TelegramApiError after RetryPolicy.attempts calls."""
        api.fail_next("getMe", 10, code=502)

        with pytest.raises(TelegramApiError) as info:
            await client.get_me()

        assert info.value.code == 502
        assert len(api.calls_to("getMe")) == FAST_RETRY.attempts

    async def test_timeout_is_retried(self, api: FakeBotApi) -> None:
        """A request that hangs times out and is retried."""
        api.hang_next("getMe")
        async with TelegramBotApi(
            DEFAULT_TOKEN, base_url=api.base_url, retry=FAST_RETRY, pacing=NO_PACING, timeout=0.3
        ) as client:
            me = await client.get_me()

        assert me.username == "voicecoder_bot"
        assert [c.status for c in api.calls_to("getMe")] == [0, 200]

    async def test_not_modified_is_success(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """Editing a message to the same content is not an error."""
        msg = await client.send_message(CHAT, "same")

        result = await client.edit_message_text(CHAT, msg.message_id, "same")

        assert result is None
        assert "message is not modified" in (api.calls_to("editMessageText")[0].description or "")

    async def test_bad_request_raises_typed_error(self, client: TelegramBotApi) -> None:
        """A 400 is not retried and raises TelegramApiError, a DeliveryError, with Telegram's description."""
        with pytest.raises(DeliveryError) as info:
            await client.edit_message_text(CHAT, 999_999, "nope")

        assert isinstance(info.value, TelegramApiError)
        assert info.value.code == 400
        assert info.value.description == "Bad Request: message to edit not found"
        assert info.value.method == "editMessageText"

    async def test_token_never_in_errors_or_logs(self, api: FakeBotApi, caplog: pytest.LogCaptureFixture) -> None:
        """Neither unreachable servers, wrong tokens nor retries put the token in exception texts or logs."""
        caplog.set_level(logging.DEBUG)
        errors: list[str] = []
        async with TelegramBotApi(
            DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY, pacing=NO_PACING
        ) as dead:
            with pytest.raises(TelegramApiError) as info:
                await dead.get_me()
            errors.append(str(info.value))
            assert info.value.__cause__ is None
            with pytest.raises(TelegramApiError) as info:
                await dead.download_file("voice/file_1.oga")
            errors.append(str(info.value))
        async with TelegramBotApi(
            DEFAULT_TOKEN + "x", base_url=api.base_url, retry=FAST_RETRY, pacing=NO_PACING
        ) as wrong:
            with pytest.raises(TelegramApiError) as info:
                await wrong.get_me()
            errors.append(str(info.value))
            assert info.value.code == 401

        secret = DEFAULT_TOKEN.split(":", 1)[1]
        assert all(secret not in e for e in errors)
        assert secret not in caplog.text
        assert "network error" in errors[0]
        assert "retry" in caplog.text

    async def test_redact_hides_plain_and_encoded_token(self) -> None:
        """redact() covers the token as written and URL-encoded."""
        client = TelegramBotApi(DEFAULT_TOKEN)

        text = client.redact(f"GET /bot{DEFAULT_TOKEN}/x and {DEFAULT_TOKEN.replace(':', '%3A')}")

        assert DEFAULT_TOKEN.split(":", 1)[1] not in text
        assert text.count("<token>") == 2
        await client.close()

    async def test_sends_to_one_chat_are_paced(self, api: FakeBotApi) -> None:
        """With 10 msg/s and a burst of 2 per chat, five sends to one chat take about 0.3 s."""
        pacing = PacingPolicy(per_chat_rate=10, per_chat_burst=2, global_rate=0)
        async with TelegramBotApi(DEFAULT_TOKEN, base_url=api.base_url, retry=FAST_RETRY, pacing=pacing) as client:
            start = time.monotonic()
            for i in range(5):
                await client.send_message(CHAT, f"m{i}")
            elapsed = time.monotonic() - start

        assert elapsed >= 0.28
        assert [m.text for m in api.bot_messages()] == ["m0", "m1", "m2", "m3", "m4"]

    async def test_file_download_round_trip(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """getFile gives a file_path; the download returns the exact bytes."""
        data = VOICE.read_bytes()
        stored = api.add_file(data)

        file = await client.get_file(stored.file_id)
        assert file.file_path is not None
        downloaded = await client.download_file(file.file_path)

        assert downloaded == data
        assert file.file_size == len(data)

    async def test_download_over_limit_refused(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """A download larger than max_bytes stops with a 413 TelegramApiError."""
        stored = api.add_file(b"x" * 5000)

        with pytest.raises(TelegramApiError) as info:
            await client.download_file(stored.file_path, max_bytes=1000)

        assert info.value.code == 413

    async def test_get_file_too_big(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """Files over 20 MB cannot be fetched through getFile."""
        stored = api.add_file(b"tiny", declared_size=25 << 20)

        with pytest.raises(TelegramApiError) as info:
            await client.get_file(stored.file_id)

        assert info.value.description == "Bad Request: file is too big"

    async def test_send_document_uploads_bytes(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """sendDocument goes out as multipart; the fake holds the bytes, name and caption."""
        body = b"--- a/x\n+++ b/x\n" * 100

        msg = await client.send_document(CHAT, body, "change.diff", caption="📝 <b>Diff</b>")

        stored = api.bot_messages()[-1]
        assert msg.document is not None
        assert stored.document is not None
        assert stored.document.data == body
        assert stored.document.file_name == "change.diff"
        assert stored.caption == "📝 Diff"

    async def test_commands_and_chat_action(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """setMyCommands and sendChatAction reach the fake with valid parameters."""
        await client.set_my_commands([BotCommand("start", "Welcome"), BotCommand("help", "Help")])
        await client.send_chat_action(CHAT)

        assert [c["command"] for c in next(iter(api.commands.values()))] == ["start", "help"]
        assert api.transcript()[-1]["action"] == "typing"

    async def test_webhook_lifecycle_and_polling_conflict(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """setWebhook (with certificate) is reported by getWebhookInfo, blocks getUpdates; deleteWebhook frees it."""
        await client.set_webhook(
            "http://127.0.0.1:9/hook",
            secret_token="s3cr3t_-",
            max_connections=7,
            allowed_updates=["message", "callback_query"],
            certificate=b"-----BEGIN CERTIFICATE-----\n",
        )
        info = await client.get_webhook_info()
        with pytest.raises(TelegramApiError) as conflict:
            await client.get_updates()
        await client.delete_webhook()
        after = await client.get_webhook_info()

        assert info.url == "http://127.0.0.1:9/hook"
        assert info.has_custom_certificate
        assert info.max_connections == 7
        assert info.allowed_updates == ("message", "callback_query")
        assert conflict.value.code == 409
        assert after.url == ""

    async def test_get_updates_confirms_with_offset(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """getUpdates returns queued updates as typed Updates; a higher offset confirms them."""
        sent = await api.send_text("/start")
        await api.send_text("hello")

        first = await client.get_updates(timeout=1)
        again = await client.get_updates(offset=first[-1].update_id + 1, timeout=0)

        assert [u.update_id for u in first] == [sent["update_id"], sent["update_id"] + 1]
        assert first[0].message is not None
        assert first[0].message.text == "/start"
        assert again == []

    async def test_get_updates_long_poll_wakes_on_new_update(self, api: FakeBotApi, client: TelegramBotApi) -> None:
        """A long poll returns as soon as the user writes, not at its timeout."""

        async def later() -> None:
            await asyncio.sleep(0.2)
            await api.send_text("late")

        task = asyncio.create_task(later())
        start = time.monotonic()
        updates = await client.get_updates(timeout=10)
        await task

        assert time.monotonic() - start < 5
        assert updates[0].message is not None
        assert updates[0].message.text == "late"


class TestTokenBucketPacer:
    def test_burst_then_rate(self) -> None:
        """Per chat: the burst goes out at once, then one send per 1/rate seconds; other chats are independent."""
        now = [0.0]
        pacer = TokenBucketPacer(PacingPolicy(per_chat_rate=1, per_chat_burst=3, global_rate=0), clock=lambda: now[0])

        delays = [pacer.reserve(1) for _ in range(5)]
        other = pacer.reserve(2)

        assert delays == [0.0, 0.0, 0.0, 1.0, 2.0]
        assert other == 0.0

    def test_global_limit_applies_across_chats(self) -> None:
        """The global bucket delays sends across different chats."""
        now = [0.0]
        pacer = TokenBucketPacer(PacingPolicy(per_chat_rate=0, global_rate=30, global_burst=2), clock=lambda: now[0])

        delays = [pacer.reserve(chat) for chat in range(4)]

        assert delays[:2] == [0.0, 0.0]
        assert delays[2] == pytest.approx(1 / 30)
        assert delays[3] == pytest.approx(2 / 30)

    def test_tokens_refill_over_time(self) -> None:
        """After waiting, the bucket is full again."""
        now = [0.0]
        pacer = TokenBucketPacer(PacingPolicy(per_chat_rate=2, per_chat_burst=1, global_rate=0), clock=lambda: now[0])
        pacer.reserve(1)

        now[0] = 10.0

        assert pacer.reserve(1) == 0.0


class TestUpdate:
    def test_unknown_fields_are_tolerated(self) -> None:
        """Fields the client does not model are ignored (and kept in raw)."""
        raw = {
            "update_id": 1,
            "message": {
                "message_id": 2,
                "chat": {"id": 3, "type": "private", "is_forum": False},
                "date": 4,
                "text": "hi",
                "brand_new_field": {"x": 1},
            },
        }

        update = Update.from_json(raw)

        assert update.message is not None
        assert update.message.text == "hi"
        assert update.raw["message"]["brand_new_field"] == {"x": 1}
        assert update.kind == "message"

    @pytest.mark.parametrize(
        "raw",
        [
            {},
            {"update_id": "1"},
            {"update_id": True},
            {"update_id": 1, "message": {"chat": {"id": 1}}},
            {"update_id": 1, "message": {"message_id": 1, "chat": {"id": "x"}}},
            {"update_id": 1, "callback_query": {"id": 5, "from": {"id": 1}}},
            {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "voice": {"duration": 3}}},
        ],
    )
    def test_malformed_raises(self, raw: dict[str, object]) -> None:
        """Missing or mistyped required fields raise MalformedUpdateError."""
        with pytest.raises(MalformedUpdateError):
            Update.from_json(raw)


class TestSecretsNeverReachAChat:
    async def test_text_captions_documents_and_errors(self, api: FakeBotApi) -> None:
        """
        The token in any form (also its secret half alone) and other configured secrets are replaced in what a chat
        shows; error texts never carry them either.
        """
        half = DEFAULT_TOKEN.split(":", 1)[1]
        webhook_secret = "webhook-Secret_0123456789"
        leaks = f"{DEFAULT_TOKEN} {DEFAULT_TOKEN.replace(':', '%3A')} {half} {webhook_secret}"
        async with TelegramBotApi(
            DEFAULT_TOKEN, base_url=api.base_url, retry=FAST_RETRY, pacing=NO_PACING, secrets=[webhook_secret]
        ) as client:
            sent = await client.send_message(CHAT, f"<code>{leaks}</code>")
            await client.edit_message_text(CHAT, sent.message_id, f"edited {leaks}")
            await client.send_document(CHAT, f"+TOKEN={leaks}\n".encode(), "change.diff", caption=f"diff {leaks}")
            api.fail_next("sendMessage", 1, code=400, description=f"Bad Request: token {half} is odd")
            with pytest.raises(TelegramApiError) as refused:
                await client.send_message(CHAT, "x")

        shown = json.dumps([api.transcript(), [m.html for m in api.bot_messages(CHAT)]])
        document = next(iter(api.files.values())).data if api.files else b""
        for secret in (half, webhook_secret):
            assert secret not in shown
            assert secret.encode() not in document
            assert secret not in str(refused.value)
        assert "[redacted]" in shown
        assert b"[redacted]" in document

    async def test_urls_and_secret_token_are_sent_as_given(self, api: FakeBotApi) -> None:
        """Only what a chat shows is redacted: setWebhook still gets its secret_token and a /<token> path."""
        secret = "webhook-Secret_0123456789"
        url = "https://bot.example.org/" + DEFAULT_TOKEN
        async with TelegramBotApi(DEFAULT_TOKEN, base_url=api.base_url, secrets=[secret]) as client:
            await client.set_webhook(url, secret_token=secret)

        call = api.calls_to("setWebhook")[0]
        assert (call.params["url"], call.params["secret_token"]) == (url, secret)
