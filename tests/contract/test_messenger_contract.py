"""The Messenger contract, run by the recording fake, TelegramMessenger (fake Bot API) and TelethonMessenger."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import attrs
import pytest
from telethon import TelegramClient, events
from telethon.sessions import StringSession

from voicecoder.adapters.telegram.api import TelegramBotApi
from voicecoder.adapters.telegram.messenger import TelegramMessenger
from voicecoder.adapters.telegram.pacing import PacingPolicy
from voicecoder.adapters.telethon import TelethonMessenger
from voicecoder.domain.callbacks import encode_callback
from voicecoder.domain.model import ChatId
from voicecoder.domain.ports import Messenger
from voicecoder.domain.replies import MessageRef, Reply, buttons_of
from voicecoder.simulators import FAKE_API_HASH, FAKE_API_ID, FAKE_BOT_TOKEN, FakeTelegram
from voicecoder.simulators.bot_api import DEFAULT_USER, FakeBotApi
from voicecoder.testing.contracts.messenger import ChatView, MessengerContract, SeenMessage
from voicecoder.testing.fakes import RecordingMessenger


@attrs.define
class RecordingView:
    """The recording fake keeps structured replies: the user "sees" the reply and its buttons."""

    fake: RecordingMessenger
    chat: ChatId = attrs.field(factory=lambda: ChatId(5))
    splits_long_text: bool = False
    sends_documents: bool = False
    _ids: itertools.count[int] = attrs.field(factory=itertools.count)

    def _latest(self, ref: MessageRef) -> Reply:
        edits = [reply for edited, reply in self.fake.edits if edited == ref]
        return edits[-1] if edits else next(s.reply for s in self.fake.sent if s.ref == ref)

    def _seen(self, reply: Reply) -> SeenMessage:
        return SeenMessage(repr(reply), tuple(encode_callback(b) for b in buttons_of(reply)))

    async def message(self, ref: MessageRef) -> SeenMessage:
        return self._seen(self._latest(ref))

    async def messages(self) -> list[SeenMessage]:
        return [self._seen(self._latest(s.ref)) for s in self.fake.sent if s.chat == self.chat]

    async def press(self, ref: MessageRef, data: str) -> str:
        return f"cb-{next(self._ids)}"

    async def callback_answer(self, callback_id: str) -> tuple[str | None, bool] | None:
        texts = [text for cid, text in self.fake.callbacks if cid == callback_id]
        alerts = [alert for cid, alert in self.fake.alerts if cid == callback_id]
        return (texts[0], alerts[0]) if texts else None

    async def unreachable(self) -> ChatId:
        self.fake.fail_next = 1
        return self.chat

    async def refuse_next_answer(self) -> bool:
        self.fake.fail_next_answer = 1
        return True


class TestRecordingMessenger(MessengerContract):
    @pytest.fixture
    def messenger(self, recording: RecordingMessenger) -> Messenger:
        return recording

    @pytest.fixture
    def recording(self) -> RecordingMessenger:
        return RecordingMessenger()

    @pytest.fixture
    def chat(self, recording: RecordingMessenger) -> ChatView:
        return RecordingView(recording)


@attrs.define
class BotApiView:
    """The chat as the fake Bot API holds it."""

    api: FakeBotApi
    chat: ChatId = attrs.field(factory=lambda: ChatId(DEFAULT_USER.id))
    splits_long_text: bool = True
    sends_documents: bool = True

    async def message(self, ref: MessageRef) -> SeenMessage:
        msg = self.api.messages[(ref.chat_id.value, ref.message_id)]
        document = None
        if msg.document is not None:
            document = (msg.document.file_name or "", msg.document.data)
        return SeenMessage(msg.text or msg.caption or "", tuple(msg.callback_datas()), document)

    async def messages(self) -> list[SeenMessage]:
        return [await self.message(MessageRef(self.chat, m.message_id)) for m in self.api.bot_messages(self.chat.value)]

    async def press(self, ref: MessageRef, data: str) -> str:
        update = await self.api.press(ref.message_id, data)
        return str(update["callback_query"]["id"])

    async def callback_answer(self, callback_id: str) -> tuple[str | None, bool] | None:
        for entry in self.api.transcript():
            if entry.get("kind") == "callback_answer" and entry.get("callback_query_id") == callback_id:
                return entry.get("text"), bool(entry.get("show_alert"))
        return None

    async def unreachable(self) -> ChatId:
        return ChatId(987654321)

    async def refuse_next_answer(self) -> bool:
        self.api.fail_next("answerCallbackQuery", code=403)
        return True


class TestTelegramMessenger(MessengerContract):
    @pytest.fixture
    async def api(self) -> AsyncIterator[FakeBotApi]:
        async with FakeBotApi() as api:
            api.add_chat(DEFAULT_USER)
            yield api

    @pytest.fixture
    async def messenger(self, api: FakeBotApi) -> AsyncIterator[Messenger]:
        # Unpaced: the contract is about what arrives, and at Telegram's 1 message/s per chat its one-of-every-reply
        # case slept ~30 s; the pacer has its own tests on a fake clock (tests/unit/adapters/test_telegram_bot_api.py).
        client = TelegramBotApi(api.token, base_url=api.base_url, pacing=PacingPolicy(per_chat_rate=0, global_rate=0))
        yield TelegramMessenger(client)
        await client.close()

    @pytest.fixture
    def chat(self, api: FakeBotApi) -> ChatView:
        return BotApiView(api)


@attrs.define
class TelethonView:
    """The chat as the local fake MTProto Telegram holds it."""

    tg: FakeTelegram
    chat: ChatId
    splits_long_text: bool = True
    sends_documents: bool = True

    async def message(self, ref: MessageRef) -> SeenMessage:
        msg = self.tg.messages[ref.message_id]
        document = None
        if msg.document is not None and msg.document_data is not None:
            name = next(a.file_name for a in msg.document.attributes if hasattr(a, "file_name"))
            document = (name, msg.document_data)
        return SeenMessage(msg.text, tuple(data.decode() for _, data in msg.buttons()), document)

    async def messages(self) -> list[SeenMessage]:
        return [await self.message(MessageRef(self.chat, m.id)) for m in self.tg.bot_messages(self.chat.value)]

    async def press(self, ref: MessageRef, data: str) -> str:
        return str(await self.tg.press(ref.message_id, data.encode()))

    async def callback_answer(self, callback_id: str) -> tuple[str | None, bool] | None:
        return self.tg.callbacks[int(callback_id)].answer

    async def unreachable(self) -> ChatId:
        return ChatId(987654321)

    async def refuse_next_answer(self) -> bool:
        return False  # the local MTProto fake answers every SetBotCallbackAnswer or says the query is too old


async def connected_bot(tg: FakeTelegram) -> TelegramClient:
    """A Telethon bot client logged in to *tg*, which has seen one message from the default user."""
    client = TelegramClient(StringSession(tg.session_string()), FAKE_API_ID, FAKE_API_HASH)
    seen = asyncio.Event()

    async def on_message(_: events.NewMessage.Event) -> None:
        seen.set()

    client.add_event_handler(on_message, events.NewMessage(incoming=True))
    await client.start(bot_token=FAKE_BOT_TOKEN)
    await tg.send_text("/start")
    await asyncio.wait_for(seen.wait(), 10)
    client.remove_event_handler(on_message)
    return client


class TestTelethonMessenger(MessengerContract):
    @pytest.fixture
    async def tg(self) -> AsyncIterator[FakeTelegram]:
        async with FakeTelegram() as tg:
            yield tg

    @pytest.fixture
    async def client(self, tg: FakeTelegram) -> AsyncIterator[TelegramClient]:
        client = await connected_bot(tg)
        yield client
        await client.disconnect()

    @pytest.fixture
    def messenger(self, client: TelegramClient) -> Messenger:
        return TelethonMessenger(client)

    @pytest.fixture
    def chat(self, tg: FakeTelegram) -> ChatView:
        return TelethonView(tg, ChatId(next(iter(tg.users))))
