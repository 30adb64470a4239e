"""The sandbox web chat's page, its cross-site guard and sending, against a real FakeBotApi."""

from __future__ import annotations

import importlib.resources
from typing import Any

import aiohttp
import pytest

from tests.integration.sandbox_web.chat import USER_ID, VOICE, Bot, conversation, post_json


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
