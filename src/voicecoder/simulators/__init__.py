"""
Faithful loopback stand-ins for the systems voicecoder talks to but tests and the sandbox cannot reach.

* `FakeBotApi` (``.bot_api``): the Telegram Bot API, webhook delivery included.
* `FakeAnthropicApi` (``.anthropic``): the Anthropic Messages API, for the real Claude Code CLI.
* `FakeDeepgramServer`, `FakeAssemblyAIServer`, `FakeOpenAIServer` (``.stt``): the speech-to-text services.
* `FakeTelegram` (``.fake_telegram``): a fake MTProto Telegram for Telethon clients (needs the ``telethon`` extra).

They are product code: ``voicecoder sandbox`` runs them, and ``voicecoder.testing`` re-exports them for tests.
Imports are lazy: a name's module (and aiohttp or telethon) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecoder.lazy import lazy_exports

if TYPE_CHECKING:
    from voicecoder.simulators.anthropic import FakeAnthropicApi
    from voicecoder.simulators.bot_api import FakeBotApi, FakeUser
    from voicecoder.simulators.fake_telegram import (
        FAKE_API_HASH,
        FAKE_API_ID,
        FAKE_BOT_TOKEN,
        FakeTelegram,
        FakeTelegramUser,
        StoredMessage,
    )
    from voicecoder.simulators.stt import FakeAssemblyAIServer, FakeDeepgramServer, FakeOpenAIServer

_MODULES = {
    "FAKE_API_HASH": "voicecoder.simulators.fake_telegram",
    "FAKE_API_ID": "voicecoder.simulators.fake_telegram",
    "FAKE_BOT_TOKEN": "voicecoder.simulators.fake_telegram",
    "FakeAnthropicApi": "voicecoder.simulators.anthropic",
    "FakeAssemblyAIServer": "voicecoder.simulators.stt",
    "FakeBotApi": "voicecoder.simulators.bot_api",
    "FakeDeepgramServer": "voicecoder.simulators.stt",
    "FakeOpenAIServer": "voicecoder.simulators.stt",
    "FakeTelegram": "voicecoder.simulators.fake_telegram",
    "FakeTelegramUser": "voicecoder.simulators.fake_telegram",
    "FakeUser": "voicecoder.simulators.bot_api",
    "StoredMessage": "voicecoder.simulators.fake_telegram",
}

__all__ = [
    "FAKE_API_HASH",
    "FAKE_API_ID",
    "FAKE_BOT_TOKEN",
    "FakeAnthropicApi",
    "FakeAssemblyAIServer",
    "FakeBotApi",
    "FakeDeepgramServer",
    "FakeOpenAIServer",
    "FakeTelegram",
    "FakeTelegramUser",
    "FakeUser",
    "StoredMessage",
]

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
