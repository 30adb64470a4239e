"""The former home of `voicecoder.simulators.bot_api` (the simulators left the test package); same names."""

from __future__ import annotations

from voicecoder.simulators.bot_api import (
    BOT_USER,
    DEFAULT_TOKEN,
    DEFAULT_USER,
    ApiCall,
    BotMessage,
    FakeBotApi,
    FakeUser,
    StoredFile,
    TelegramHtmlError,
    parse_telegram_html,
)

__all__ = [
    "BOT_USER",
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "ApiCall",
    "BotMessage",
    "FakeBotApi",
    "FakeUser",
    "StoredFile",
    "TelegramHtmlError",
    "parse_telegram_html",
]
