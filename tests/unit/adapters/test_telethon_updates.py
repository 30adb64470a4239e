"""
The Telethon update path: records (`voicecoder.adapters.telethon.records`), `TelethonUpdateHandler` and
`TelethonUpdates` on a real Telethon client against the local fake MTProto Telegram, and the durable intake of
`voicecoder serve --transport telethon` over a real SQLite inbox.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from telethon import TelegramClient, events
from telethon.tl import types

from tests.contract.test_messenger_contract import connected_bot
from voicecoder.adapters import SqliteInbox, TelethonMessenger, TelethonUpdateHandler, TelethonUpdates
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telethon.records import (
    CALLBACK_IDS_FROM,
    CallbackIds,
    TelethonUpdate,
    callback_update,
    media_of,
    message_update,
)
from voicecoder.adapters.telethon.serve import durable_intake
from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.domain.model import ChatId
from voicecoder.domain.replies import Working
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing import FakeTelegram, FakeTelegramUser, build_voicecoder
from voicecoder.testing.fakes import FakePorts

OGG = b"OggS" + bytes(range(256)) * 4
STRANGER = FakeTelegramUser(222222222, first_name="Eve", username=None)


@pytest.fixture(name="tg")
async def _tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as tg:
        yield tg


@pytest.fixture(name="client")
async def _client(tg: FakeTelegram) -> AsyncIterator[TelegramClient]:
    client = await connected_bot(tg)
    yield client
    await client.disconnect()


@pytest.fixture(name="wired")
async def _wired(tg: FakeTelegram, client: TelegramClient) -> AsyncIterator[tuple[VoiceCoder, FakePorts]]:
    user = next(iter(tg.users))
    app, fakes = build_voicecoder(messenger=TelethonMessenger(client), allowed_users=[user])
    updates = TelethonUpdates(app, client, max_bytes=10_000)
    updates.register()
    yield app, fakes
    updates.unregister()
    await updates.drain()


def texts(tg: FakeTelegram, user: int) -> list[str]:
    return [m.text for m in tg.bot_messages(user)]


async def wait_text(tg: FakeTelegram, user: int, fragment: str) -> str:
    found = await tg.wait_for(lambda: [t for t in texts(tg, user) if fragment in t])
    return str(found[0])


class TestRecords:
    def test_a_link_preview_is_still_a_text_message(self) -> None:
        """Telegram attaches a web page preview to a text with a link: it is a prompt, not a file."""
        message = types.Message(
            id=5,
            peer_id=types.PeerUser(42),
            date=datetime.now(UTC),
            message="read https://example.org and summarise it",
            media=types.MessageMediaWebPage(webpage=types.WebPageEmpty(id=1)),
        )

        update = message_update(events.NewMessage.Event(message))

        assert update == TelethonUpdate(5, "42:message", update.record)
        assert update.record["text"] == "read https://example.org and summarise it"
        assert update.record["media"] is None
        assert json.loads(update.body()) == update.record

    def test_media_round_trips_through_its_tl_bytes(self) -> None:
        document = types.Document(
            id=77,
            access_hash=99,
            file_reference=b"ref",
            date=datetime.now(UTC),
            mime_type="audio/ogg",
            size=1234,
            dc_id=2,
            attributes=[types.DocumentAttributeAudio(duration=3, voice=True)],
        )
        message = types.Message(
            id=6,
            peer_id=types.PeerUser(42),
            date=datetime.now(UTC),
            message="",
            media=types.MessageMediaDocument(document=document),
        )

        record = message_update(events.NewMessage.Event(message)).record

        assert record["text"] is None
        restored = media_of(json.loads(json.dumps(record)))
        assert isinstance(restored, types.MessageMediaDocument)
        assert restored.document.id == 77
        assert restored.document.access_hash == 99
        assert restored.document.attributes[0].voice is True

    def test_stored_garbage_is_not_media(self) -> None:
        with pytest.raises(ValueError, match="not a TL object"):
            media_of({"media": base64.b64encode(b"\x01\x02\x03\x04garbage").decode()})

    def test_callback_ids_increase_and_stay_out_of_the_message_range(self) -> None:
        ids = CallbackIds()
        taken = [ids.next() for _ in range(1000)]

        assert taken == sorted(set(taken))
        assert all(i > CALLBACK_IDS_FROM > 2**40 for i in taken)
        assert max(taken) < 2**63


class TestRouting:
    async def test_commands_and_prompts(
        self, tg: FakeTelegram, wired: tuple[VoiceCoder, FakePorts], client: TelegramClient
    ) -> None:
        user = next(iter(tg.users))
        await tg.send_text("/help")
        await wait_text(tg, user, "ℹ️ Commands")
        await tg.send_text("/nonsense")
        await tg.wait_for(lambda: len([t for t in texts(tg, user) if "ℹ️ Commands" in t]) == 2)

        await tg.send_text("add a test for parse()")

        await wait_text(tg, user, "Echo: add a test for parse()")
        assert [r.prompt for r in wired[1].agent.requests] == ["add a test for parse()"]

    async def test_a_voice_note_is_downloaded_and_heard(
        self, tg: FakeTelegram, wired: tuple[VoiceCoder, FakePorts], client: TelegramClient
    ) -> None:
        user = next(iter(tg.users))
        wired[1].transcriber.learn(OGG, "run the tests")

        await tg.send_voice(OGG, duration=2)

        await wait_text(tg, user, "Heard: run the tests")
        ((audio, _),) = wired[1].transcriber.calls
        assert audio.data == OGG
        assert audio.mime_type == "audio/ogg"
        assert audio.declared_duration_s == 2.0
        assert tg.calls_to("GetFileRequest")

    async def test_an_audio_file_sent_as_a_document_is_a_recording(
        self, tg: FakeTelegram, wired: tuple[VoiceCoder, FakePorts], client: TelegramClient
    ) -> None:
        user = next(iter(tg.users))
        wired[1].transcriber.learn(OGG, "list the files")

        await tg.send_document(OGG, "memo.ogg", mime_type="application/octet-stream")

        await wait_text(tg, user, "Heard: list the files")
        assert wired[1].transcriber.calls[0][0].filename == "memo.ogg"

    async def test_other_files_are_refused_without_download(
        self, tg: FakeTelegram, wired: tuple[VoiceCoder, FakePorts], client: TelegramClient
    ) -> None:
        user = next(iter(tg.users))

        await tg.send_document(b"%PDF-1.7 ...", "spec.pdf", mime_type="application/pdf")

        await wait_text(tg, user, "application/pdf")
        assert tg.calls_to("GetFileRequest") == []
        assert wired[1].transcriber.calls == []

    async def test_too_large_is_refused_before_download(
        self, tg: FakeTelegram, wired: tuple[VoiceCoder, FakePorts], client: TelegramClient
    ) -> None:
        user = next(iter(tg.users))

        await tg.send_voice(OGG * 20, duration=5)  # over the 10 000 byte limit of the fixture

        await wait_text(tg, user, "Send a shorter note")
        assert tg.calls_to("GetFileRequest") == []

    async def test_a_strangers_recording_is_never_downloaded(
        self, tg: FakeTelegram, wired: tuple[VoiceCoder, FakePorts], client: TelegramClient
    ) -> None:
        await tg.send_voice(OGG, duration=2, user=STRANGER)
        await tg.send_text("rm -rf /", user=STRANGER)

        await tg.wait_for(lambda: len([t for t in texts(tg, STRANGER.id) if "not authorized" in t]) == 2)
        assert tg.calls_to("GetFileRequest") == []
        assert wired[1].agent.requests == []


class TestHandlerRecords:
    async def test_a_file_telegram_no_longer_serves_asks_to_send_again(
        self, tg: FakeTelegram, client: TelegramClient
    ) -> None:
        """A stored recording whose file reference went stale: the user is asked to send it again (no retry)."""
        user = next(iter(tg.users))
        app, fakes = build_voicecoder(messenger=TelethonMessenger(client), allowed_users=[user])
        handler = TelethonUpdateHandler(app, client)
        sent = await tg.send_voice(OGG, duration=2)
        stale = types.MessageMediaDocument(
            document=types.Document(
                id=sent.document.id,
                access_hash=sent.document.access_hash + 1,
                file_reference=b"old",
                date=datetime.now(UTC),
                mime_type="audio/ogg",
                size=len(OGG),
                dc_id=2,
                attributes=[types.DocumentAttributeAudio(duration=2, voice=True)],
            )
        )
        record: dict[str, Any] = {
            "kind": "message",
            "chat": user,
            "user": user,
            "message_id": sent.id,
            "text": None,
            "media": base64.b64encode(bytes(stale)).decode(),
        }

        await handler(record)

        assert "could not download the recording" in texts(tg, user)[-1]
        assert fakes.transcriber.calls == []

    async def test_a_foreign_button_is_answered_as_stale(self, tg: FakeTelegram, client: TelegramClient) -> None:
        user = next(iter(tg.users))
        app, _ = build_voicecoder(messenger=TelethonMessenger(client), allowed_users=[user])
        handler = TelethonUpdateHandler(app, client)
        ref = await TelethonMessenger(client).send(ChatId(user), Working("think", (), 1.0))
        query = await tg.press(ref.message_id, tg.messages[ref.message_id].buttons()[0][1])

        await handler({"kind": "callback", "chat": user, "user": user, "query_id": query, "data": "zz:what"})

        assert tg.callbacks[query].answer == ("This button is no longer valid.", False)

    @pytest.mark.parametrize(
        "record",
        [{}, {"kind": "message"}, {"kind": "edit", "chat": 1, "user": 1}, {"kind": "message", "chat": "x", "user": 1}],
    )
    async def test_malformed_records_are_refused(self, client: TelegramClient, record: dict[str, Any]) -> None:
        app, _ = build_voicecoder()
        with pytest.raises(MalformedUpdateError):
            await TelethonUpdateHandler(app, client)(record)


class TestDurableIntake:
    async def test_a_message_delivered_twice_is_stored_and_run_once(self, tmp_path: Path) -> None:
        """Telegram redelivers after a restart (getDifference from an older saved state): one row, one run."""
        seen: list[dict[str, Any]] = []

        async def handle(update: dict[str, Any]) -> None:
            seen.append(update)

        inbox = SqliteInbox(tmp_path / "inbox.sqlite3")
        await inbox.open()
        dispatcher = UpdateDispatcher(inbox, handle)
        take = durable_intake(inbox, dispatcher)
        record = {"kind": "message", "chat": 5, "user": 5, "message_id": 10, "text": "hi", "media": None}
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(dispatcher.run)
                await take(TelethonUpdate(10, "5:message", record))
                await take(TelethonUpdate(10, "5:message", record))
                await dispatcher.join()
                await dispatcher.stop()
            counts = await inbox.counts()
        finally:
            await inbox.aclose()

        assert seen == [record]
        assert (counts.pending, counts.done, counts.failed) == (0, 1, 0)

    async def test_a_button_press_whose_id_is_taken_gets_the_next_one(self, tmp_path: Path) -> None:
        """Presses are never redelivered: an id taken by an old press (the clock went back) must not drop one."""
        inbox = SqliteInbox(tmp_path / "inbox.sqlite3")
        await inbox.open()
        dispatcher = UpdateDispatcher(inbox, _ignore)
        take = durable_intake(inbox, dispatcher)
        press = {"kind": "callback", "chat": 5, "user": 5, "query_id": 1, "message_id": 3, "data": "s::"}
        try:
            await take(TelethonUpdate(CALLBACK_IDS_FROM + 7, "5:callback", press))
            await take(TelethonUpdate(CALLBACK_IDS_FROM + 7, "5:callback", {**press, "query_id": 2}))
            stored = await inbox.pending()
        finally:
            await inbox.aclose()

        assert [(i.update_id, i.update()["query_id"]) for i in stored] == [
            (CALLBACK_IDS_FROM + 7, 1),
            (CALLBACK_IDS_FROM + 8, 2),
        ]

    def test_callback_update_of_an_event(self) -> None:
        class Query:
            query_id = 123
            msg_id = 9

        class Event:
            chat_id = 42
            sender_id = 42
            data = b"a:0123456789abcdef:fingerprint"
            query = Query()

        update = callback_update(Event(), CALLBACK_IDS_FROM + 1)

        assert update.lane == "42:callback"
        assert update.record["data"] == "a:0123456789abcdef:fingerprint"
        assert update.record["query_id"] == 123


async def _ignore(update: dict[str, Any]) -> None:
    del update
