"""The sandbox web chat's conversation view and button presses, against a real FakeBotApi."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.sandbox_web.chat import USER_ID, Bot, conversation, post_json
from voicecoder.simulators.bot_api import FakeBotApi
from voicecoder.simulators.web_chat import (
    create_sandbox_web_app,
)


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
