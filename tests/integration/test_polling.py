from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.ingress_rig import running_polling
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.telegram.api import RetryPolicy, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.polling import Backoff, UpdatePoller, run_polling
from voicecoder.adapters.telegram.routing import ALLOWED_UPDATES
from voicecoder.domain.errors import StartupError
from voicecoder.simulators.bot_api import DEFAULT_USER, FakeBotApi, FakeUser

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
FAST_BACKOFF = Backoff(first=0.01, cap=0.05)


def lane_of(update: dict[str, Any]) -> tuple[int, str] | None:
    if "message" in update:
        return int(update["message"]["chat"]["id"]), "message"
    if "callback_query" in update:
        return int(update["callback_query"]["from"]["id"]), "callback"
    return None


class Seen:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.ids: list[int] = []

    async def __call__(self, update: dict[str, Any]) -> None:
        self.ids.append(update["update_id"])
        self.texts.append(update["message"].get("text", ""))


@pytest.fixture(name="fake")
async def _fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(time_scale=0.01, webhook_timeout=2) as fake:
        yield fake


@pytest.fixture(name="api")
async def _api(fake: FakeBotApi) -> AsyncIterator[TelegramBotApi]:
    async with TelegramBotApi(fake.token, base_url=fake.base_url, retry=FAST_RETRY) as api:
        yield api


@pytest.fixture(name="inbox")
async def _inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    async with SqliteInbox(tmp_path / "inbox.db") as inbox:
        yield inbox


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def poll_while(
    api: TelegramBotApi,
    inbox: SqliteInbox,
    handler: Seen,
    until: Callable[[], bool],
    **kwargs: Any,
) -> UpdatePoller:
    async with running_polling(
        api, inbox, handler, lane_of=lane_of, poll_timeout_s=1, backoff=FAST_BACKOFF, **kwargs
    ) as poller:
        await eventually(until)
    return poller


class TestPolling:
    async def test_messages_processed_in_order_and_offset_persisted(
        self, fake: FakeBotApi, api: TelegramBotApi, inbox: SqliteInbox
    ) -> None:
        """Three messages polled from the fake Bot API are processed in order; the next offset is on disk."""
        sent = [await fake.send_text(f"m{i}") for i in range(3)]
        seen = Seen()

        await poll_while(api, inbox, seen, lambda: len(seen.ids) == 3)

        assert seen.texts == ["m0", "m1", "m2"]
        assert await inbox.offset() == sent[-1]["update_id"] + 1
        requested = fake.calls_to("getUpdates")[0].params
        assert requested["allowed_updates"] == list(ALLOWED_UPDATES)

    async def test_restart_resumes_from_stored_offset(
        self, fake: FakeBotApi, api: TelegramBotApi, inbox: SqliteInbox
    ) -> None:
        """A second polling run continues after the stored offset and processes nothing twice."""
        await fake.send_text("first")
        seen = Seen()
        await poll_while(api, inbox, seen, lambda: len(seen.ids) == 1)
        second = await fake.send_text("second")
        acked = second["update_id"] + 1

        # Until the second run has handled "second" and asked for what comes after it: had it started from a
        # wrong offset, "first" would have come again before that request.
        await poll_while(
            api,
            inbox,
            seen,
            lambda: len(seen.ids) >= 2 and any(c.params.get("offset") == acked for c in fake.calls_to("getUpdates")),
        )

        assert seen.texts == ["first", "second"]
        first_offset_sent = [c.params.get("offset") for c in fake.calls_to("getUpdates")]
        assert first_offset_sent[0] is None
        assert all(o is not None for o in first_offset_sent[1:])

    async def test_many_chats_keep_order(self, fake: FakeBotApi, api: TelegramBotApi, inbox: SqliteInbox) -> None:
        """Updates of several chats arriving in batches keep per-chat order, none lost."""
        users = [FakeUser(500 + n) for n in range(5)]
        for i in range(10):
            for user in users:
                await fake.send_text(f"{user.id}:{i}", user=user)
        seen = Seen()

        await poll_while(api, inbox, seen, lambda: len(seen.ids) == 50)

        for user in users:
            mine = [int(t.split(":")[1]) for t in seen.texts if t.startswith(f"{user.id}:")]
            assert mine == list(range(10))

    async def test_refuses_to_start_while_webhook_set(
        self, fake: FakeBotApi, api: TelegramBotApi, inbox: SqliteInbox
    ) -> None:
        """With a webhook set, polling refuses with a message saying how to fix it; the webhook stays."""
        await api.set_webhook("http://127.0.0.1:9/hook", secret_token="abc")
        dispatcher = UpdateDispatcher(inbox, Seen())

        with pytest.raises(StartupError, match="webhook delete"):
            await run_polling(api, inbox=inbox, dispatcher=dispatcher, lane_of=lane_of, handle_signals=False)

        assert (await api.get_webhook_info()).url == "http://127.0.0.1:9/hook"
        assert fake.calls_to("getUpdates") == []

    async def test_delete_webhook_keeps_pending_updates(
        self, fake: FakeBotApi, api: TelegramBotApi, inbox: SqliteInbox
    ) -> None:
        """Told to delete the webhook, polling does so and still receives what was pending."""
        await api.set_webhook("http://127.0.0.1:9/hook")
        await fake.send_text("while the webhook was down")
        seen = Seen()

        await poll_while(api, inbox, seen, lambda: len(seen.ids) == 1, delete_webhook=True)

        assert seen.texts == ["while the webhook was down"]
        assert (await api.get_webhook_info()).url == ""

    async def test_drop_pending_drops(self, fake: FakeBotApi, api: TelegramBotApi, inbox: SqliteInbox) -> None:
        """With drop_pending the backlog is dropped; only new messages arrive."""
        await api.set_webhook("http://127.0.0.1:9/hook")
        await fake.send_text("old")
        seen = Seen()
        stop = anyio.Event()
        dispatcher = UpdateDispatcher(inbox, seen)

        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: run_polling(
                    api,
                    inbox=inbox,
                    dispatcher=dispatcher,
                    lane_of=lane_of,
                    delete_webhook=True,
                    drop_pending=True,
                    poll_timeout_s=1,
                    stop=stop,
                    handle_signals=False,
                    task_status=task_status,
                )
            )
            await fake.send_text("new")
            await eventually(lambda: len(seen.ids) == 1)
            await anyio.sleep(0.1)
            stop.set()

        assert seen.texts == ["new"]

    async def test_server_errors_are_retried(self, fake: FakeBotApi, api: TelegramBotApi, inbox: SqliteInbox) -> None:
        """getUpdates failing with 500 and 429 is retried; the message still arrives once."""
        fake.fail_next("getUpdates", 2, code=500)
        fake.fail_next("getUpdates", 1, code=429, retry_after=0)
        await fake.send_text("survives")
        seen = Seen()

        await poll_while(api, inbox, seen, lambda: len(seen.ids) == 1)

        assert seen.texts == ["survives"]

    async def test_ignored_types_advance_offset_without_storing(self, inbox: SqliteInbox, fake: FakeBotApi) -> None:
        """Updates of other types (or malformed ones) are skipped but confirmed, so they never come back."""
        seen = Seen()
        dispatcher = UpdateDispatcher(inbox, seen)
        async with TelegramBotApi(fake.token, base_url=fake.base_url) as api:
            poller = UpdatePoller(api, inbox, dispatcher, lane_of)
            received = await poller._store(
                [
                    {"update_id": 10, "edited_message": {"chat": {"id": 1}}},
                    {"update_id": 11, "message": "garbage"},
                    {"update_id": 12, "message": {"message_id": 1, "chat": {"id": DEFAULT_USER.id}, "text": "ok"}},
                ],
                None,
            )

        assert received == 3
        assert (poller.skipped, poller.stored) == (2, 1)
        assert await inbox.offset() == 13
        assert [i.update_id for i in await inbox.pending()] == [12]
