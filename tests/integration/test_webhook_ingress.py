from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
import anyio
import pytest

from tests.ingress_rig import UpdateLog
from tests.integration.webhook_rig import (
    PATH,
    SECRET,
    Bot,
    Processed,
    eventually,
    lane_of,
    post,
    running_bot,
    text_update,
)
from voicecoder.adapters.sqlite.inbox import ItemState, SqliteInbox
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.http_server import listen
from voicecoder.adapters.telegram.webhook import (
    SECRET_HEADER,
    TELEGRAM_NETWORKS,
    IngressStats,
    WebhookSettings,
    create_webhook_app,
)
from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.ports import Inbox


@pytest.fixture(name="session")
async def _session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class TestWebhookIngress:
    async def test_update_is_stored_acked_and_processed(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """A valid update gets 200 and is processed once; the inbox records it done."""
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed) as bot:
            status = await post(session, bot, text_update(100, chat=1, text="/help"))
            await eventually(lambda: processed.ids == [100])
            await bot.dispatcher.join()
            stored = await bot.inbox.get(100)

        assert status == 200
        assert stored is not None
        assert stored.state is ItemState.DONE

    @pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1]])
    async def test_wrong_or_missing_secret_is_401(
        self, tmp_path: Path, session: aiohttp.ClientSession, secret: str | None
    ) -> None:
        """Without the exact secret header the request is refused and nothing is stored."""
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed) as bot:
            status = await post(session, bot, text_update(1, chat=1, text="hi"), secret=secret)
            depth = await bot.inbox.depth()

        assert (status, depth, processed.ids) == (401, 0, [])

    async def test_oversize_body_is_413(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """A body over the limit is refused with 413 before it is parsed or stored."""
        settings = WebhookSettings(secret_token=SECRET, path=PATH, max_body_bytes=2048)
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed, settings=settings) as bot:
            status = await post(session, bot, text_update(1, chat=1, text="x" * 4000))
            depth = await bot.inbox.depth()

        assert (status, depth) == (413, 0)

    async def test_oversize_chunked_body_is_413(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """A body without Content-Length that grows over the limit is refused with 413 too."""
        settings = WebhookSettings(secret_token=SECRET, path=PATH, max_body_bytes=2048)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        async with (
            running_bot(tmp_path / "inbox.db", Processed(), settings=settings) as bot,
            session.post(
                bot.url + PATH, data=chunks(), headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"}
            ) as response,
        ):
            status = response.status

        assert status == 413

    @pytest.mark.parametrize(
        "raw",
        [
            b"not json at all",
            b"\xff\xfe\x00garbage",
            b"[1, 2, 3]",
            b'"a string"',
            b"{}",
            b"",
            b'{"update_id": "7", "message": {"chat": {"id": 1}}}',
            b'{"update_id": true, "message": {"chat": {"id": 1}}}',
            b'{"update_id": 7.0, "message": {"chat": {"id": 1}}}',
            b'{"update_id": null}',
            b'{"update_id": 7, "message": {"text": "caf\xe9"}}',  # Latin-1, not UTF-8
            b'{"update_id": 1' + b"0" * 5000 + b"}",  # more digits than Python parses into an int
        ],
    )
    async def test_not_an_update_is_400_never_500(
        self, tmp_path: Path, session: aiohttp.ClientSession, raw: bytes
    ) -> None:
        """Bodies that are not an Update at all (no JSON object with an integer update_id) get 400, not stored."""
        async with running_bot(tmp_path / "inbox.db", Processed()) as bot:
            status = await post(session, bot, None, raw=raw)
            depth = await bot.inbox.depth()

        assert (status, depth) == (400, 0)

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"update_id": -5, "message": {"chat": {"id": 1}}}',
            b'{"update_id": 99999999999999999999999, "message": {"chat": {"id": 1}}}',
            b'{"update_id": 7, "message": "hello"}',
            b'{"update_id": 7, "message": {"text": "no chat"}}',
            b'{"update_id": 7, "message": {"chat": {"id": "abc"}}}',
            b'{"update_id": 7, "callback_query": []}',
        ],
    )
    async def test_update_that_cannot_be_routed_is_acked_and_ignored(
        self, tmp_path: Path, session: aiohttp.ClientSession, raw: bytes
    ) -> None:
        """
        An Update voicecoder cannot route is acknowledged (Telegram would retry anything else for a day) and ignored.
        """
        log = UpdateLog()
        outcomes = log.outcomes
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed, stats=IngressStats(observer=log)) as bot:
            status = await post(session, bot, None, raw=raw)
            depth = await bot.inbox.depth()

        assert (status, depth, outcomes, processed.ids) == (200, 0, ["ignored"], [])

    @pytest.mark.parametrize(
        "update",
        [
            {"update_id": 5, "edited_message": {"message_id": 1, "chat": {"id": 1}, "date": 1, "text": "edit"}},
            {"update_id": 6, "my_chat_member": {"chat": {"id": 1}}},
            {"update_id": 7, "inline_query": {"id": "1", "query": "x"}},
            {"update_id": 8},
        ],
    )
    async def test_other_update_types_are_200_and_not_processed(
        self, tmp_path: Path, session: aiohttp.ClientSession, update: dict[str, Any]
    ) -> None:
        """Types voicecoder does not handle are acknowledged so Telegram stops resending, and not stored."""
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed) as bot:
            status = await post(session, bot, update)
            stored = await bot.inbox.get(update["update_id"])

        assert (status, stored, processed.ids) == (200, None, [])

    async def test_duplicate_delivery_processed_once(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """Telegram re-delivering an update (e.g. after a timeout) gets 200 again; the update is handled once."""
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed) as bot:
            statuses = [await post(session, bot, text_update(42, chat=3, text="hi")) for _ in range(3)]
            await eventually(lambda: processed.ids == [42])
            await bot.dispatcher.join()
            statuses.append(await post(session, bot, text_update(42, chat=3, text="hi")))
            # Had the late copy been queued, it was queued before its 200: join waits for it.
            await bot.dispatcher.join()

        assert statuses == [200, 200, 200, 200]
        assert processed.ids == [42]

    async def test_outcome_hook_sees_every_request(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """The observer (the metrics) gets one outcome per request: acked, duplicate, ignored, rejected."""
        log = UpdateLog()
        outcomes = log.outcomes
        stats = IngressStats(observer=log)
        async with running_bot(tmp_path / "inbox.db", Processed(), stats=stats) as bot:
            await post(session, bot, text_update(1, chat=1, text="a"))
            await post(session, bot, text_update(1, chat=1, text="a"))
            await post(session, bot, {"update_id": 2, "edited_message": {"chat": {"id": 1}}})
            await post(session, bot, text_update(3, chat=1, text="a"), secret="nope")

        assert outcomes == ["acked", "duplicate", "ignored", "rejected"]
        assert (stats.accepted, stats.duplicates, stats.ignored, stats.rejected) == (1, 1, 1, {401: 1})

    async def test_housekeeping_purges_old_finished_items(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """Finished items past the retention are purged; a pending one is kept whatever its age."""
        processed = Processed()
        processed.gates[2] = anyio.Event()
        async with running_bot(tmp_path / "inbox.db", processed, retention_s=0.0) as bot:
            await post(session, bot, text_update(2, chat=2, text="held"))
            await post(session, bot, text_update(1, chat=1, text="done"))
            await eventually(lambda: processed.ids == [1])
            with anyio.fail_after(5):
                while await bot.inbox.get(1) is not None:
                    await anyio.sleep(0.01)
            held = await bot.inbox.get(2)
            processed.gates[2].set()
            await eventually(lambda: processed.ids == [1, 2])

        assert held is not None
        assert held.state is ItemState.PENDING

    async def test_wrong_path_is_404(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """Only the configured secret path accepts updates."""
        async with running_bot(tmp_path / "inbox.db", Processed()) as bot:
            status = await post(session, bot, text_update(1, chat=1, text="hi"), path="/webhook")

        assert status == 404

    async def test_three_rapid_messages_processed_in_order(
        self, tmp_path: Path, session: aiohttp.ClientSession
    ) -> None:
        """Three messages sent back to back in one chat are all processed, in order."""
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed) as bot:
            statuses = [await post(session, bot, text_update(i, chat=7, text=f"m{i}")) for i in (1, 2, 3)]
            await eventually(lambda: len(processed.ids) == 3)

        assert statuses == [200, 200, 200]
        assert processed.ids == [1, 2, 3]

    async def test_many_chats_concurrently_keep_order(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """Fifty chats posting concurrently (each chat serial, like Telegram) lose nothing and keep order."""
        processed = Processed()
        chats, per_chat = 50, 8

        async def one_chat(bot: Bot, chat: int) -> None:
            for n in range(per_chat):
                update_id = n * chats + chat
                assert await post(session, bot, text_update(update_id, chat=chat, text="x")) == 200

        async with running_bot(tmp_path / "inbox.db", processed) as bot:
            async with anyio.create_task_group() as tg:
                for chat in range(chats):
                    tg.start_soon(one_chat, bot, chat)
            await eventually(lambda: len(processed.ids) == chats * per_chat)
            await bot.dispatcher.join()
            depth = await bot.inbox.depth()

        inversions = sum(1 for ids in processed.by_chat.values() for a, b in itertools.pairwise(ids) if a > b)
        assert (len(set(processed.ids)), inversions, depth) == (chats * per_chat, 0, 0)

    async def test_handler_failure_is_retried_and_processed_once(
        self, tmp_path: Path, session: aiohttp.ClientSession
    ) -> None:
        """A handler that fails twice is retried by the dispatcher; the update ends processed exactly once."""
        processed = Processed()
        processed.fail_times[9] = 2
        async with running_bot(tmp_path / "inbox.db", processed, max_attempts=5) as bot:
            status = await post(session, bot, text_update(9, chat=1, text="flaky"))
            await eventually(lambda: processed.ids == [9])
            await bot.dispatcher.join()
            stored = await bot.inbox.get(9)

        assert status == 200
        assert stored is not None
        assert (stored.state, stored.attempts) == (ItemState.DONE, 3)

    async def test_failing_update_recorded_failed_without_blocking_chat(
        self, tmp_path: Path, session: aiohttp.ClientSession
    ) -> None:
        """An update failing every time is recorded failed after N attempts; the chat's next message still runs."""
        processed = Processed()
        processed.fail_times[1] = 100
        async with running_bot(tmp_path / "inbox.db", processed, max_attempts=3) as bot:
            await post(session, bot, text_update(1, chat=4, text="poison"))
            await post(session, bot, text_update(2, chat=4, text="fine"))
            await eventually(lambda: processed.ids == [2])
            await bot.dispatcher.join()
            failed = await bot.inbox.failed()

        assert [(i.update_id, i.attempts, i.last_error) for i in failed] == [(1, 3, "RuntimeError: handler failed")]

    async def test_unwritable_inbox_is_503_then_redelivery_processed_once(
        self, tmp_path: Path, session: aiohttp.ClientSession
    ) -> None:
        """An unwritable inbox answers 503 with Retry-After; Telegram's retry is then handled once."""
        processed = Processed()
        async with running_bot(tmp_path / "inbox.db", processed) as bot:
            await bot.inbox.aclose()
            async with session.post(
                bot.url + PATH, json=text_update(11, chat=1, text="hi"), headers={SECRET_HEADER: SECRET}
            ) as response:
                first = (response.status, response.headers.get("Retry-After"))
            await bot.inbox.open()
            second = await post(session, bot, text_update(11, chat=1, text="hi"))
            await eventually(lambda: processed.ids == [11])

        assert first == (503, "5")
        assert second == 200

    async def test_restart_with_backlog_processes_everything_once(
        self, tmp_path: Path, session: aiohttp.ClientSession
    ) -> None:
        """Acked but unprocessed updates survive a stop and are processed by a new app on the same inbox file, once."""
        path = tmp_path / "inbox.db"
        first = Processed()
        first.gate = anyio.Event()  # the first instance never gets to finish anything
        async with running_bot(path, first, grace_s=0.05) as bot:
            statuses = [await post(session, bot, text_update(i, chat=i % 3, text="x")) for i in range(1, 31)]
        second = Processed()
        async with running_bot(path, second) as bot:
            await eventually(lambda: len(second.ids) == 30)
            await bot.dispatcher.join()
            counts = await bot.inbox.counts()

        assert set(statuses) == {200}
        assert first.ids == []
        assert sorted(second.ids) == list(range(1, 31))
        assert (counts.pending, counts.done) == (0, 30)

    async def test_healthz_and_readyz(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """healthz says alive; readyz is 200 with a writable inbox and a running dispatcher."""
        async with running_bot(tmp_path / "inbox.db", Processed()) as bot:
            async with session.get(bot.url + "/healthz") as health:
                health_status = health.status
            async with session.get(bot.url + "/readyz") as ready:
                ready_status, ready_body = ready.status, await ready.json()

        assert health_status == 200
        assert ready_status == 200
        assert ready_body["checks"] == {"inbox": "ok", "dispatcher": "ok"}

    async def test_readyz_503_when_dispatcher_not_running(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """Without a running dispatcher the app is alive but not ready."""
        async with SqliteInbox(tmp_path / "inbox.db") as inbox:
            dispatcher = UpdateDispatcher(inbox, Processed())
            app = create_webhook_app(
                WebhookSettings(secret_token=SECRET), inbox=inbox, dispatcher=dispatcher, lane_of=lane_of
            )
            runner = await listen(app.routes, "127.0.0.1", 0)
            port = runner.addresses[0][1]
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as ready:
                    status, body = ready.status, await ready.json()
                random_path = app.ingress.settings.path
            finally:
                await runner.cleanup()

        assert status == 503
        assert body["checks"]["dispatcher"] == "not running"
        assert random_path.startswith("/telegram/")
        assert len(random_path) > 20


class TestSourceAllowList:
    async def _status(
        self,
        tmp_path: Path,
        session: aiohttp.ClientSession,
        settings: WebhookSettings,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        async with running_bot(tmp_path / "inbox.db", Processed(), settings=settings) as bot:
            return await post(session, bot, text_update(1, chat=1, text="hi"), headers=headers)

    async def test_loopback_outside_telegram_ranges_is_403(
        self, tmp_path: Path, session: aiohttp.ClientSession
    ) -> None:
        """With Telegram's ranges enforced, a request from 127.0.0.1 is refused."""
        settings = WebhookSettings(secret_token=SECRET, path=PATH, allowed_networks=TELEGRAM_NETWORKS)

        assert await self._status(tmp_path, session, settings) == 403

    async def test_forwarded_for_ignored_without_trusted_proxy(
        self, tmp_path: Path, session: aiohttp.ClientSession
    ) -> None:
        """A client cannot claim a Telegram address with X-Forwarded-For unless its peer is a trusted proxy."""
        settings = WebhookSettings(secret_token=SECRET, path=PATH, allowed_networks=TELEGRAM_NETWORKS)

        status = await self._status(tmp_path, session, settings, {"X-Forwarded-For": "149.154.167.99"})

        assert status == 403

    @pytest.mark.parametrize(
        ("forwarded", "expected"),
        [
            ("149.154.167.99", 200),
            ("91.108.4.10", 200),
            ("8.8.8.8", 403),
            ("149.154.167.99, 8.8.8.8", 403),  # the right-most untrusted hop counts; the left is client-supplied
            ("8.8.8.8, 149.154.167.99", 200),
            ("not-an-ip", 403),
        ],
    )
    async def test_forwarded_for_from_trusted_proxy(
        self, tmp_path: Path, session: aiohttp.ClientSession, forwarded: str, expected: int
    ) -> None:
        """Behind a trusted proxy (127.0.0.1 here) the right-most untrusted X-Forwarded-For hop is checked."""
        settings = WebhookSettings(
            secret_token=SECRET, path=PATH, allowed_networks=TELEGRAM_NETWORKS, trusted_proxies=["127.0.0.1/32"]
        )

        status = await self._status(tmp_path, session, settings, {"X-Forwarded-For": forwarded})

        assert status == expected

    async def test_allowed_network_passes(self, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        """A source inside an allowed network is accepted."""
        settings = WebhookSettings(secret_token=SECRET, path=PATH, allowed_networks=["127.0.0.0/8"])

        assert await self._status(tmp_path, session, settings) == 200


class TestWebhookSettings:
    @pytest.mark.parametrize("secret", ["", "has space", "x" * 257, "ünïcode"])
    def test_secret_follows_telegram_rule(self, secret: str) -> None:
        """Secrets outside 1-256 characters of [A-Za-z0-9_-] are refused at configuration time."""
        with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
            WebhookSettings(secret_token=secret)

    def test_repr_hides_secret_and_path(self) -> None:
        """Neither the secret nor the (possibly token-bearing) path shows in the settings' repr."""
        settings = WebhookSettings(secret_token=SECRET, path=WebhookSettings.token_path("123:ABCsecret"))

        assert SECRET not in repr(settings)
        assert "ABCsecret" not in repr(settings)
        assert settings.path == "/123:ABCsecret"


class HeldInbox:
    """A SqliteInbox whose ``put`` waits for *release* once it has been entered (a commit that takes a while)."""

    def __init__(self, inner: SqliteInbox) -> None:
        self.inner = inner
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def put(self, update_id: int, lane: str, body: bytes, **options: Any) -> bool:
        self.entered.set()
        await self.release.wait()
        return await self.inner.put(update_id, lane, body, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TestClientGoesAway:
    async def test_an_update_whose_sender_hung_up_mid_commit_is_stored_and_counted(self, tmp_path: Path) -> None:
        """The commit that started is finished and counted even though nobody is left to receive the 200."""
        body = json.dumps(text_update(77, chat=1, text="hi")).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{SECRET_HEADER}: {SECRET}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        stats = IngressStats()
        async with SqliteInbox(tmp_path / "inbox.db") as real:
            held = HeldInbox(real)
            app = create_webhook_app(
                WebhookSettings(secret_token=SECRET, path=PATH),
                inbox=cast("Inbox", held),
                dispatcher=None,
                lane_of=lane_of,
                stats=stats,
            )
            runner = await listen(app.routes, "127.0.0.1", 0)
            try:
                with anyio.fail_after(10):
                    async with await anyio.connect_tcp("127.0.0.1", runner.addresses[0][1]) as client:
                        await client.send(head + body)
                        await held.entered.wait()
                    # the server has seen the connection go (its protocol dropped the transport) before the commit
                    assert runner.server is not None
                    while any(h.transport is not None for h in runner.server.connections):
                        await anyio.sleep(0.005)
                    held.release.set()
                    await eventually(lambda: stats.accepted == 1)
                stored = await real.get(77)
            finally:
                await runner.cleanup()
        assert stored is not None
        assert stored.state is ItemState.PENDING
