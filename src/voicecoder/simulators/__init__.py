"""
Local stand-ins for systems tests and the sandbox cannot reach: here, a fake MTProto Telegram for Telethon.

(The Bot API, Anthropic and STT fakes still live in `voicecoder.testing`; `voicecoder.testing` re-exports these.)
Importing this package needs the ``telethon`` extra.
"""

from __future__ import annotations

from voicecoder.simulators.fake_telegram import (
    FAKE_API_HASH,
    FAKE_API_ID,
    FAKE_BOT_TOKEN,
    FakeTelegram,
    FakeTelegramUser,
    StoredMessage,
)

__all__ = ["FAKE_API_HASH", "FAKE_API_ID", "FAKE_BOT_TOKEN", "FakeTelegram", "FakeTelegramUser", "StoredMessage"]
