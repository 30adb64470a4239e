"""
The standalone Telethon bot's session and login: the session file (0600, seeded from a session string, keeping
its update state across restarts) and `login_bot` against the local fake MTProto Telegram.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from telethon import TelegramClient
from telethon.sessions import StringSession
from telethon.tl import types

from voicecoder.adapters.telethon.serve import login_bot
from voicecoder.adapters.telethon.session import bot_client, bot_session, session_file
from voicecoder.domain.errors import ConfigurationError, DeliveryError
from voicecoder.testing import FAKE_API_HASH, FAKE_API_ID, FAKE_BOT_TOKEN, FakeTelegram


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.fixture(name="tg")
async def _tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as tg:
        yield tg


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestSessionFile:
    def test_a_new_file_is_private(self, tmp_path: Path) -> None:
        """The file will hold the bot's auth key: only its owner may read it, whatever the umask."""
        session = bot_session(tmp_path / "data" / "telethon.session")
        session.close()

        assert mode(tmp_path / "data" / "telethon.session") == 0o600

    def test_telethon_adds_the_extension(self, tmp_path: Path) -> None:
        assert session_file(tmp_path / "bot") == tmp_path / "bot.session"
        bot_session(tmp_path / "bot").close()

        assert mode(tmp_path / "bot.session") == 0o600
        assert not (tmp_path / "bot").exists()

    def test_an_existing_file_readable_by_others_is_tightened(self, tmp_path: Path) -> None:
        path = tmp_path / "telethon.session"
        path.touch(mode=0o644)
        path.chmod(0o644)

        bot_session(path).close()

        assert mode(path) == 0o600

    async def test_a_string_seeds_the_file_and_the_same_string_keeps_its_state(
        self, tmp_path: Path, tg: FakeTelegram
    ) -> None:
        path = tmp_path / "telethon.session"
        seed = tg.session_string()
        wanted = StringSession(seed)

        session = bot_session(path, seed)
        assert session.auth_key is not None
        assert session.auth_key.key == wanted.auth_key.key
        assert (session.dc_id, session.server_address, session.port) == (2, "127.0.0.1", tg.port)
        state = types.updates.State(pts=41, qts=0, date=datetime.now(UTC).replace(microsecond=0), seq=0, unread_count=0)
        session.set_update_state(0, state)
        session.save()
        session.close()

        again = bot_session(path, seed)

        assert again.get_update_state(0) == state
        again.close()

    async def test_another_string_replaces_the_login_and_its_state(self, tmp_path: Path, tg: FakeTelegram) -> None:
        path = tmp_path / "telethon.session"
        first = bot_session(path, tg.session_string())
        first.set_update_state(0, types.updates.State(7, 0, datetime.now(UTC), 0, 0))
        first.save()
        first.close()
        other = tg.session_string()

        replaced = bot_session(path, other)

        assert replaced.auth_key is not None
        assert replaced.auth_key.key == StringSession(other).auth_key.key
        assert replaced.get_update_state(0) is None
        replaced.close()
        assert mode(path) == 0o600

    @pytest.mark.parametrize("seed", ["not a session", "1" + "A" * 30, ""])
    def test_a_string_that_is_no_session_is_refused(self, tmp_path: Path, seed: str) -> None:
        with pytest.raises(ValueError, match="session string"):
            bot_session(tmp_path / "telethon.session", seed)


class TestLogin:
    async def test_logs_in_with_the_token_and_keeps_the_update_state(self, tmp_path: Path, tg: FakeTelegram) -> None:
        """A seeded session logs in with the bot token; on disconnect Telethon saves the update state in the file."""
        path = tmp_path / "telethon.session"
        client = bot_client(bot_session(path, tg.session_string()), FAKE_API_ID, FAKE_API_HASH)

        me = await login_bot(client, FAKE_BOT_TOKEN)
        await tg.send_text("/start")
        await tg.wait_for(lambda: tg.calls_to("GetStateRequest"))
        await client.disconnect()

        assert me.bot
        assert me.id == tg.bot.id
        assert len(tg.calls_to("ImportBotAuthorizationRequest")) == 1
        reopened = bot_session(path)
        saved = reopened.get_update_state(0)
        reopened.close()
        assert saved is not None
        assert saved.pts >= 1

        again = bot_client(bot_session(path), FAKE_API_ID, FAKE_API_HASH)
        await login_bot(again, FAKE_BOT_TOKEN)
        await again.disconnect()
        assert len(tg.calls_to("ImportBotAuthorizationRequest")) == 1  # the session was still logged in

    async def test_a_token_of_another_bot_is_refused(self, tmp_path: Path, tg: FakeTelegram) -> None:
        client = bot_client(bot_session(tmp_path / "s.session", tg.session_string()), FAKE_API_ID, FAKE_API_HASH)
        await login_bot(client, FAKE_BOT_TOKEN)
        try:
            with pytest.raises(ConfigurationError, match="belongs to the bot @voicecoder_bot"):
                await login_bot(client, "7000000002:AAAnotherBotTokenForTheTestOnly_0123456")
        finally:
            await client.disconnect()

    async def test_a_wrong_token_is_refused_by_telegram(self, tmp_path: Path, tg: FakeTelegram) -> None:
        client = bot_client(bot_session(tmp_path / "s.session", tg.session_string()), FAKE_API_ID, FAKE_API_HASH)
        try:
            with pytest.raises(ConfigurationError, match="Telegram refused TELEGRAM_TOKEN"):
                await login_bot(client, "7000000001:AAAWrongTokenForTheSameBotInThisTest_01")
        finally:
            await client.disconnect()

    async def test_unreachable_telegram_is_a_delivery_error(self, tmp_path: Path, tg: FakeTelegram) -> None:
        seed = tg.session_string()
        await tg.__aexit__(None, None, None)  # nothing listens on its port any more
        client = TelegramClient(
            bot_session(tmp_path / "s.session", seed), FAKE_API_ID, FAKE_API_HASH, connection_retries=1, retry_delay=0
        )

        with pytest.raises(DeliveryError, match="Could not reach Telegram"):
            await login_bot(client, FAKE_BOT_TOKEN)
