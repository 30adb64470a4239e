from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from voicecoder.simulators.bot_api import (
    DEFAULT_TOKEN,
    DEFAULT_USER,
    FakeBotApi,
    FakeUser,
    TelegramHtmlError,
    parse_telegram_html,
)

BOB = FakeUser(333333333, first_name="Bob", username="bob")
CAROL = FakeUser(444444444, first_name="Carol", username=None)


@attrs.define
class Receiver:
    """A real webhook endpoint: records every POST; scripted statuses and delays per update."""

    url: str = ""
    seen: list[tuple[int, str | None, float, float]] = attrs.field(factory=list)  # id, secret, start, end
    statuses: dict[int, list[int]] = attrs.field(factory=dict)  # update_id -> statuses to answer, in order
    delays: dict[int, list[float]] = attrs.field(factory=dict)
    retry_after: str | None = None
    in_flight: int = 0
    peak: int = 0
    gate: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        update: dict[str, Any] = await request.json()
        uid = update["update_id"]
        start = time.monotonic()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.gate is not None and "message" in update:
                await self.gate.wait()
            delays = self.delays.get(uid)
            if delays:
                await asyncio.sleep(delays.pop(0))
            statuses = self.statuses.get(uid)
            status = statuses.pop(0) if statuses else 200
        finally:
            self.in_flight -= 1
        self.seen.append((uid, request.headers.get("X-Telegram-Bot-Api-Secret-Token"), start, time.monotonic()))
        headers = {"Retry-After": self.retry_after} if self.retry_after and status != 200 else None
        return web.Response(status=status, headers=headers)

    def ids(self) -> list[int]:
        return [s[0] for s in self.seen]


@pytest.fixture(name="api")
async def _api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(time_scale=0.01, webhook_timeout=2.0) as api:
        api.add_chat()
        yield api


@pytest.fixture(name="receiver")
async def _receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield receiver
    if receiver.gate is not None:
        receiver.gate.set()
    await runner.cleanup()


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def bot(http: aiohttp.ClientSession, api: FakeBotApi, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{api.base_url}/bot{DEFAULT_TOKEN}/{method}", json=params) as resp:
        body: dict[str, Any] = await resp.json()
        return resp.status, body


class TestParseTelegramHtml:
    def test_entities_and_utf16_offsets(self) -> None:
        """Tags become entities with UTF-16 offsets (an emoji counts 2); entities are decoded."""
        plain, entities = parse_telegram_html(
            '😀 <b>bold &amp; <i>both</i></b> <pre><code class="language-diff">+a &lt; b</code></pre>'
        )

        assert plain == "😀 bold & both +a < b"
        assert {"offset": 3, "length": 11, "type": "bold"} in entities
        assert {"offset": 10, "length": 4, "type": "italic"} in entities
        assert {"offset": 15, "length": 6, "type": "pre", "language": "diff"} in entities

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
            ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
            ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
            ("a < b", "Unexpected start tag at byte offset 2"),
            ("x</b>", "Unexpected end tag at byte offset 1"),
            ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler"'),
        ],
    )
    def test_invalid_html(self, source: str, message: str) -> None:
        """Invalid HTML raises with a Telegram-like message."""
        with pytest.raises(TelegramHtmlError, match=message.replace("(", r"\(")):
            parse_telegram_html(source)

    def test_lone_ampersand_and_gt_are_text(self) -> None:
        """Like Telegram, an '&' that starts no entity and a bare '>' are plain text."""
        assert parse_telegram_html("a & b > c")[0] == "a & b > c"


class TestFakeBotApiMethods:
    async def test_wrong_token_and_unknown_method(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """A wrong token is 401 Unauthorized; an unknown method is 404; method names are case-insensitive."""
        async with http.post(f"{api.base_url}/bot123:wrong/getMe") as resp:
            wrong = (resp.status, await resp.json())
        missing = await bot(http, api, "fooBar")
        me = await bot(http, api, "GETME")

        assert wrong == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        assert missing[0] == 404
        assert missing[1]["description"] == "Not Found: method not found"
        assert me[1]["result"]["is_bot"] is True

    async def test_text_limits_after_entity_parsing(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """4096 visible characters pass however many tags surround them; 4097 are too long; blank is empty."""
        chat = DEFAULT_USER.id
        ok = await bot(http, api, "sendMessage", chat_id=chat, text="<b>" + "&lt;" * 4096 + "</b>", parse_mode="HTML")
        long = await bot(http, api, "sendMessage", chat_id=chat, text="x" * 4097)
        empty = await bot(http, api, "sendMessage", chat_id=chat, text="<b> </b>", parse_mode="HTML")

        assert ok[0] == 200
        assert long == (400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        assert empty[1]["description"] == "Bad Request: message text is empty"

    async def test_bad_html_and_button_data(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """Unparseable HTML and callback_data over 64 bytes are refused with Telegram's texts."""
        chat = DEFAULT_USER.id
        html = await bot(http, api, "sendMessage", chat_id=chat, text="a <b", parse_mode="HTML")
        too_big = {"inline_keyboard": [[{"text": "x", "callback_data": "é" * 33}]]}
        fits = {"inline_keyboard": [[{"text": "x", "callback_data": "é" * 32}]]}
        big = await bot(http, api, "sendMessage", chat_id=chat, text="x", reply_markup=too_big)
        ok = await bot(http, api, "sendMessage", chat_id=chat, text="x", reply_markup=fits)
        unknown = await bot(http, api, "sendMessage", chat_id=12345, text="x")

        assert html[1]["description"].startswith("Bad Request: can't parse entities: ")
        assert big[1]["description"] == "Bad Request: BUTTON_DATA_INVALID"
        assert ok[0] == 200
        assert unknown[1]["description"] == "Bad Request: chat not found"

    async def test_edit_semantics(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """Identical edits are 'not modified', unknown ids 'not found', and omitting reply_markup drops buttons."""
        chat = DEFAULT_USER.id
        markup = {"inline_keyboard": [[{"text": "⏹ Cancel", "callback_data": "c::"}]]}
        _, sent = await bot(http, api, "sendMessage", chat_id=chat, text="working", reply_markup=markup)
        mid = sent["result"]["message_id"]

        same = await bot(
            http, api, "editMessageText", chat_id=chat, message_id=mid, text="working", reply_markup=markup
        )
        gone = await bot(http, api, "editMessageText", chat_id=chat, message_id=mid + 50, text="x")
        done = await bot(http, api, "editMessageText", chat_id=chat, message_id=mid, text="working")

        assert same[1]["description"].startswith("Bad Request: message is not modified")
        assert gone[1]["description"] == "Bad Request: message to edit not found"
        assert done[0] == 200
        assert "reply_markup" not in done[1]["result"]
        assert api.messages[(chat, mid)].reply_markup is None

    async def test_callback_answer_once(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """A callback query can be answered once; again (or an unknown id) is 'query is too old'."""
        markup = {"inline_keyboard": [[{"text": "ok", "callback_data": "s::"}]]}
        _, sent = await bot(http, api, "sendMessage", chat_id=DEFAULT_USER.id, text="x", reply_markup=markup)
        update = await api.press(sent["result"]["message_id"], "s::")
        qid = update["callback_query"]["id"]

        first = await bot(http, api, "answerCallbackQuery", callback_query_id=qid, text="done")
        second = await bot(http, api, "answerCallbackQuery", callback_query_id=qid)

        assert first[1]["result"] is True
        assert second[1]["description"].startswith("Bad Request: query is too old")
        with pytest.raises(LookupError):
            await api.press(sent["result"]["message_id"], "not-a-button")

    async def test_files(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """getFile serves registered files; too big and unknown ids fail; the download route serves bytes."""
        small = api.add_file(b"OggS-data")
        big = api.add_file(b"x", declared_size=21 << 20)

        ok = await bot(http, api, "getFile", file_id=small.file_id)
        too_big = await bot(http, api, "getFile", file_id=big.file_id)
        unknown = await bot(http, api, "getFile", file_id="nope")
        async with http.get(f"{api.base_url}/file/bot{DEFAULT_TOKEN}/{ok[1]['result']['file_path']}") as resp:
            data = await resp.read()

        assert data == b"OggS-data"
        assert too_big[1]["description"] == "Bad Request: file is too big"
        assert unknown[1]["description"] == "Bad Request: wrong file_id or the file is temporarily unavailable"

    async def test_secret_token_validation(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """secret_token allows 1-256 characters of A-Z, a-z, 0-9, _ and -."""
        bad = await bot(http, api, "setWebhook", url="http://127.0.0.1:1/h", secret_token="has space")
        long = await bot(http, api, "setWebhook", url="http://127.0.0.1:1/h", secret_token="a" * 257)

        assert bad[1]["description"] == "Bad Request: secret token contains unallowed characters"
        assert long[1]["description"] == "Bad Request: secret token is too long"

    async def test_scripted_429(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """A scripted 429 carries parameters.retry_after and the Retry-After header."""
        api.fail_next("getMe", code=429, retry_after=7)

        async with http.post(f"{api.base_url}/bot{DEFAULT_TOKEN}/getMe") as resp:
            body = await resp.json()
            header = resp.headers.get("Retry-After")

        assert body == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        }
        assert header == "7"
        assert api.calls[0].status == 429


class TestFakeBotApiPolling:
    async def test_get_updates_offset_and_conflicts(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """getUpdates confirms by offset, is refused while a webhook is set, and a newer poller ends an older one."""
        first = await api.send_text("one")
        await api.send_text("two")

        _, got = await bot(http, api, "getUpdates")
        _, rest = await bot(http, api, "getUpdates", offset=first["update_id"] + 1)
        waiting = asyncio.create_task(bot(http, api, "getUpdates", offset=first["update_id"] + 2, timeout=5))
        await asyncio.sleep(0.2)
        await bot(http, api, "getUpdates", offset=first["update_id"] + 2, timeout=0)
        old = await waiting
        await bot(http, api, "setWebhook", url="http://127.0.0.1:1/h")
        blocked = await bot(http, api, "getUpdates")

        assert [u["message"]["text"] for u in got["result"]] == ["one", "two"]
        assert [u["message"]["text"] for u in rest["result"]] == ["two"]
        assert old[0] == 409
        assert old[1]["description"].startswith("Conflict: terminated by other getUpdates request")
        assert blocked[1]["description"].startswith("Conflict: can't use getUpdates method while webhook is active")

    async def test_allowed_updates_filter(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """Updates of kinds not in allowed_updates are never queued."""
        markup = {"inline_keyboard": [[{"text": "ok", "callback_data": "s::"}]]}
        _, sent = await bot(http, api, "sendMessage", chat_id=DEFAULT_USER.id, text="x", reply_markup=markup)
        await bot(http, api, "getUpdates", allowed_updates=["message"])

        await api.press(sent["result"]["message_id"], "s::")
        await api.send_text("hello")
        _, got = await bot(http, api, "getUpdates")

        assert [next(k for k in u if k != "update_id") for u in got["result"]] == ["message"]


class TestFakeBotApiWebhook:
    async def test_delivery_with_secret_in_order_per_chat(
        self, api: FakeBotApi, http: aiohttp.ClientSession, receiver: Receiver
    ) -> None:
        """Updates are POSTed with the secret header; a chat's next update waits for the previous 2xx."""
        await bot(http, api, "setWebhook", url=receiver.url, secret_token="s3cret_-")
        ids = [(await api.send_text(f"m{i}"))["update_id"] for i in range(3)]
        receiver.delays[ids[0]] = [0.2]

        await api.drain(5)

        assert receiver.ids() == ids
        assert {s[1] for s in receiver.seen} == {"s3cret_-"}
        for (_, _, _, end), (_, _, start, _) in zip(receiver.seen, receiver.seen[1:], strict=False):
            assert start >= end - 0.01

    async def test_chats_in_parallel_up_to_max_connections(
        self, api: FakeBotApi, http: aiohttp.ClientSession, receiver: Receiver
    ) -> None:
        """Different chats are delivered in parallel, never more than max_connections at once."""
        await bot(http, api, "setWebhook", url=receiver.url, max_connections=2)
        for user in (DEFAULT_USER, BOB, CAROL):
            update = await api.send_text("slow", user=user)
            receiver.delays[update["update_id"]] = [0.3]

        await api.drain(5)

        assert receiver.peak == 2
        assert len(receiver.seen) == 3

    async def test_non_2xx_is_retried_and_reported(
        self, api: FakeBotApi, http: aiohttp.ClientSession, receiver: Receiver
    ) -> None:
        """A 500 is retried (immediately, then with backoff) and recorded for getWebhookInfo."""
        await bot(http, api, "setWebhook", url=receiver.url)
        update = await api.send_text("flaky")
        receiver.statuses[update["update_id"]] = [500, 500]

        await api.drain(5)
        _, info = await bot(http, api, "getWebhookInfo")

        assert receiver.ids() == [update["update_id"]] * 3
        assert info["result"]["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
        assert info["result"]["pending_update_count"] == 0
        assert info["result"]["url"] == receiver.url

    async def test_timeout_is_retried(self, receiver: Receiver) -> None:
        """A webhook that does not answer in time gets the same update again."""
        async with FakeBotApi(time_scale=0.01, webhook_timeout=0.2) as api, aiohttp.ClientSession() as http:
            await bot(http, api, "setWebhook", url=receiver.url)
            update = await api.send_text("slow once")
            receiver.delays[update["update_id"]] = [0.5, 0.0]

            await api.drain(5)

            assert (update["update_id"], "timeout") in api.webhook_deliveries
            assert receiver.ids()[-1] == update["update_id"]
            assert api.pending_update_count == 0

    async def test_retry_after_header_is_honoured(
        self, api: FakeBotApi, http: aiohttp.ClientSession, receiver: Receiver
    ) -> None:
        """A failed webhook answer with Retry-After sets the next attempt's delay (scaled by time_scale)."""
        api.time_scale = 0.2
        receiver.retry_after = "1"
        await bot(http, api, "setWebhook", url=receiver.url)
        update = await api.send_text("later")
        receiver.statuses[update["update_id"]] = [429]

        await api.drain(5)

        first, second = receiver.seen
        assert second[2] - first[3] >= 0.18

    async def test_callbacks_overtake_a_stuck_chat(
        self, api: FakeBotApi, http: aiohttp.ClientSession, receiver: Receiver
    ) -> None:
        """A button press is queued per user, so it arrives while the chat's message is still in flight."""
        markup = {"inline_keyboard": [[{"text": "⏹ Cancel", "callback_data": "c::"}]]}
        _, sent = await bot(http, api, "sendMessage", chat_id=DEFAULT_USER.id, text="working", reply_markup=markup)
        receiver.gate = asyncio.Event()
        await bot(http, api, "setWebhook", url=receiver.url)
        message = await api.send_text("long job")
        async with asyncio.timeout(5):
            while receiver.in_flight == 0:  # the message is at the gated endpoint: the chat is stuck
                await asyncio.sleep(0.005)

        press = await api.press(sent["result"]["message_id"], "c::")
        deadline = time.monotonic() + 5
        while press["update_id"] not in receiver.ids() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        receiver.gate.set()
        await api.drain(5)

        assert receiver.ids() == [press["update_id"], message["update_id"]]

    async def test_gives_up_after_max_attempts(self, receiver: Receiver) -> None:
        """With webhook_max_attempts, an update that keeps failing is dropped and the queue moves on."""
        async with FakeBotApi(time_scale=0.001, webhook_max_attempts=3) as api, aiohttp.ClientSession() as http:
            await bot(http, api, "setWebhook", url=receiver.url)
            bad = await api.send_text("poison")
            good = await api.send_text("fine")
            receiver.statuses[bad["update_id"]] = [500] * 10

            await api.drain(5)

            assert api.dropped_updates == [bad["update_id"]]
            assert receiver.ids() == [bad["update_id"]] * 3 + [good["update_id"]]

    async def test_delete_webhook_returns_updates_to_polling(
        self, api: FakeBotApi, http: aiohttp.ClientSession
    ) -> None:
        """Undelivered updates survive deleteWebhook and are served by getUpdates."""
        await bot(http, api, "setWebhook", url="http://127.0.0.1:1/unreachable")
        update = await api.send_text("stuck")
        async with asyncio.timeout(5):
            while "last_error_message" not in (await bot(http, api, "getWebhookInfo"))[1]["result"]:
                await asyncio.sleep(0.005)  # until a delivery was tried and failed

        deleted = await bot(http, api, "deleteWebhook")
        _, got = await bot(http, api, "getUpdates")

        assert deleted[1]["description"] == "Webhook was deleted"
        assert [u["update_id"] for u in got["result"]] == [update["update_id"]]


class TestFakeBotApiUserEndpoints:
    async def test_message_voice_press_transcript(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """The user side can write, record, press and follow the transcript over HTTP (never cross-origin)."""
        async with http.post(f"{api.base_url}/_user/message", json={"text": "/start"}) as resp:
            start = await resp.json()
            cors = resp.headers.get("Access-Control-Allow-Origin")
        voice_body = {"data_base64": base64.b64encode(b"OggS-voice").decode(), "duration": 3}
        async with http.post(f"{api.base_url}/_user/voice", json=voice_body) as resp:
            voice = await resp.json()
        markup = {"inline_keyboard": [[{"text": "✅ Approve", "callback_data": "a:0123abcd:ff"}]]}
        _, sent = await bot(
            http,
            api,
            "sendMessage",
            chat_id=DEFAULT_USER.id,
            text="<b>ready</b>",
            parse_mode="HTML",
            reply_markup=markup,
        )
        press_body = {"message_id": sent["result"]["message_id"], "callback_data": "a:0123abcd:ff"}
        async with http.post(f"{api.base_url}/_user/press", json=press_body) as resp:
            press = await resp.json()
        async with http.post(f"{api.base_url}/_user/press", json={"message_id": 1, "callback_data": "x"}) as resp:
            missing = resp.status
        async with http.get(f"{api.base_url}/_user/transcript", params={"since": "0"}) as resp:
            transcript = await resp.json()
        async with http.get(f"{api.base_url}/_user/messages") as resp:
            messages = await resp.json()

        assert cors is None
        assert start["update"]["message"]["entities"][0]["type"] == "bot_command"
        file_id = voice["update"]["message"]["voice"]["file_id"]
        assert api.files[file_id].data == b"OggS-voice"
        assert press["update"]["callback_query"]["data"] == "a:0123abcd:ff"
        assert missing == 404
        kinds = [(e["side"], e["kind"]) for e in transcript["entries"]]
        assert kinds == [("user", "message"), ("user", "message"), ("bot", "send"), ("user", "press")]
        assert transcript["entries"][2]["html"] == "<b>ready</b>"
        assert transcript["entries"][2]["text"] == "ready"
        assert [m.get("html") for m in messages["messages"] if m["from"]["is_bot"]] == ["<b>ready</b>"]

    async def test_transcript_long_poll_wakes(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        """GET /_user/transcript?timeout= returns as soon as the bot sends something."""
        last = len(api.transcript())

        async def later() -> None:
            await asyncio.sleep(0.2)
            await bot(http, api, "sendMessage", chat_id=DEFAULT_USER.id, text="hi")

        task = asyncio.create_task(later())
        start = time.monotonic()
        params = {"since": str(last), "timeout": "10"}
        async with http.get(f"{api.base_url}/_user/transcript", params=params) as resp:
            body = await resp.json()
        await task

        assert time.monotonic() - start < 5
        assert [e["text"] for e in body["entries"]] == ["hi"]
        assert body["last"] == body["entries"][-1]["seq"]


class TestForumTopics:
    """Bot API 9.3: forum topics, in private chats too; a send names its topic with message_thread_id."""

    async def test_a_topic_is_created_and_sends_into_it_are_echoed(
        self, api: FakeBotApi, http: aiohttp.ClientSession
    ) -> None:
        chat = DEFAULT_USER.id
        api.add_chat(DEFAULT_USER)
        created = await bot(http, api, "createForumTopic", chat_id=chat, name="api")
        thread = created[1]["result"]["message_thread_id"]
        sent = await bot(http, api, "sendMessage", chat_id=chat, text="hi", message_thread_id=thread)
        plain = await bot(http, api, "sendMessage", chat_id=chat, text="no topic")
        action = await bot(http, api, "sendChatAction", chat_id=chat, action="typing", message_thread_id=thread)

        assert created[1]["result"]["name"] == "api"
        assert sent[1]["result"]["message_thread_id"] == thread
        assert sent[1]["result"]["is_topic_message"] is True
        assert "message_thread_id" not in plain[1]["result"]
        assert action == (200, {"ok": True, "result": True})
        assert api.message(sent[1]["result"]["message_id"]).thread_id == thread

    @pytest.mark.parametrize("method", ["sendMessage", "sendChatAction"])
    async def test_an_unknown_topic_is_refused_as_telegram_does(
        self, api: FakeBotApi, http: aiohttp.ClientSession, method: str
    ) -> None:
        chat = DEFAULT_USER.id
        api.add_chat(DEFAULT_USER)
        other = api.create_topic(BOB.id, "bob's")

        refused = await bot(http, api, method, chat_id=chat, text="x", action="typing", message_thread_id=other)

        assert refused == (
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: message thread not found"},
        )
        assert api.bot_messages(chat) == []

    async def test_a_user_writes_in_a_topic_and_a_press_carries_it(
        self, api: FakeBotApi, http: aiohttp.ClientSession
    ) -> None:
        api.add_chat(DEFAULT_USER)
        thread = api.create_topic(DEFAULT_USER.id, "web")
        keyboard = {"inline_keyboard": [[{"text": "ok", "callback_data": "web/s::"}]]}

        update = await api.send_text("hello", thread=thread)
        sent = await bot(
            http, api, "sendMessage", chat_id=DEFAULT_USER.id, text="b", message_thread_id=thread, reply_markup=keyboard
        )
        press = await api.press(sent[1]["result"]["message_id"], "web/s::")

        assert press["callback_query"]["message"]["message_thread_id"] == thread
        assert update["message"]["message_thread_id"] == thread
        assert update["message"]["is_topic_message"] is True
        with pytest.raises(LookupError, match="no topic"):
            await api.send_text("lost", thread=thread + 1000)
