"""The sandbox web chat served for real on 127.0.0.1 against a real FakeBotApi, and the bot side."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.integration.sandbox_web.chat import USER_ID, Bot
from voicecoder.simulators.bot_api import FakeBotApi
from voicecoder.simulators.web_chat import CSRF_HEADER, create_sandbox_web_app


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
