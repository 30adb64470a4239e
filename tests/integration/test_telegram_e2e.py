"""
Full flows: the fake Bot API delivers to the real webhook like Telegram; the bot answers through TelegramMessenger.

Webhook → SqliteInbox → UpdateDispatcher → TelegramUpdateHandler → VoiceCoder (fake ports) → TelegramMessenger →
TelegramBotApi → fake Bot API, all on 127.0.0.1.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from tests.ingress_rig import start_webhook
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.telegram.api import PacingPolicy, RetryPolicy, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.messenger import TelegramMessenger
from voicecoder.adapters.telegram.updates import TelegramUpdateHandler
from voicecoder.adapters.telegram.webhook import WebhookSettings
from voicecoder.domain.services import VoiceCoder
from voicecoder.simulators.bot_api import DEFAULT_TOKEN, DEFAULT_USER, BotMessage, FakeBotApi, FakeUser
from voicecoder.testing.fakes import AgentScript, FakePorts, build_voicecoder

VOICE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "voice" / "01_create_file.ogg"
SECRET = "e2e-Secret_token-0123456789"
PATH = "/tg-e2e-hook"
STRANGER = FakeUser(222222222, first_name="Eve", username="eve")
Handler = Callable[[dict[str, Any]], Awaitable[None]]


@attrs.define
class Bot:
    api: FakeBotApi
    client: TelegramBotApi
    app: VoiceCoder
    fakes: FakePorts
    inbox: SqliteInbox
    dispatcher: UpdateDispatcher
    handled: list[int]

    def texts(self, chat: int = DEFAULT_USER.id) -> list[str]:
        return [m.text or m.caption or "" for m in self.api.bot_messages(chat)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                await anyio.sleep(0.01)

    async def wait_text(self, prefix: str, chat: int = DEFAULT_USER.id) -> BotMessage:
        await self.wait_for(lambda: any(t.startswith(prefix) for t in self.texts(chat)))
        return next(m for m in self.api.bot_messages(chat) if (m.text or m.caption or "").startswith(prefix))


@pytest.fixture(name="fake")
async def _fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(time_scale=0.01, webhook_timeout=5) as fake:
        yield fake


@pytest.fixture(name="client")
async def _client(fake: FakeBotApi) -> AsyncIterator[TelegramBotApi]:
    async with TelegramBotApi(
        DEFAULT_TOKEN,
        base_url=fake.base_url,
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
        pacing=PacingPolicy(per_chat_rate=0, global_rate=0),
    ) as client:
        yield client


@asynccontextmanager
async def running_bot(
    fake: FakeBotApi,
    client: TelegramBotApi,
    inbox_path: Path,
    *,
    wrap: Callable[[Handler], Handler] | None = None,
    grace_s: float = 5.0,
) -> AsyncIterator[Bot]:
    """The whole bot on an ephemeral port, registered with the fake Bot API as its webhook."""
    messenger = TelegramMessenger(client)
    app, fakes = build_voicecoder(messenger=messenger, allowed_users=(DEFAULT_USER.id,))
    handler: Handler = TelegramUpdateHandler(app, client, messenger=messenger, bot_username="voicecoder_bot")
    handled: list[int] = []
    inner = handler

    async def recording(update: dict[str, Any]) -> None:
        await inner(update)
        handled.append(update["update_id"])

    handler = recording if wrap is None else wrap(recording)
    stop = anyio.Event()
    async with SqliteInbox(inbox_path) as inbox:
        dispatcher = UpdateDispatcher(inbox, handler, retry_delays=(0.01,), max_attempts=4, grace_s=grace_s)
        async with anyio.create_task_group() as tg:
            port = await start_webhook(
                tg, WebhookSettings(secret_token=SECRET, path=PATH), inbox=inbox, dispatcher=dispatcher, stop=stop
            )
            await client.set_webhook(
                f"http://127.0.0.1:{port}{PATH}", secret_token=SECRET, allowed_updates=["message", "callback_query"]
            )
            try:
                yield Bot(fake, client, app, fakes, inbox, dispatcher, handled)
            finally:
                await client.delete_webhook()
                stop.set()


@pytest.fixture(name="bot")
async def _bot(fake: FakeBotApi, client: TelegramBotApi, tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(fake, client, tmp_path / "inbox.db") as bot:
        yield bot


async def turn_with_change(bot: Bot) -> BotMessage:
    bot.fakes.agent.script(AgentScript(text="Created hello.py", writes={"hello.py": b"print('hi')\n"}))
    await bot.api.send_text("create hello.py")
    return await bot.wait_text("📝 Changes ready for review")


class TestTelegramEndToEnd:
    async def test_start_welcomes(self, bot: Bot) -> None:
        """/start through the webhook gets the welcome message."""
        await bot.api.send_text("/start")

        welcome = await bot.wait_text("👋 Hi Ada!")

        assert "nothing is committed until you tap ✅ Approve" in (welcome.text or "")
        assert "/status — " in (welcome.text or "")
        assert bot.api.html_errors == []

    async def test_unauthorized_user_is_refused_and_nothing_runs(self, bot: Bot) -> None:
        """A stranger's prompt is answered ⛔ and the agent never runs."""
        await bot.api.send_text("rm -rf everything", user=STRANGER)

        await bot.wait_text("⛔ You are not authorized to use this bot.", chat=STRANGER.id)

        assert bot.fakes.agent.requests == []

    @pytest.mark.skipif(not VOICE.exists(), reason="voice fixtures missing from tests/fixtures/voice")
    async def test_voice_note_is_heard_and_answered(self, bot: Bot) -> None:
        """A voice note is downloaded through getFile, transcribed, echoed as 🎤 Heard and run as a prompt."""
        clip = VOICE.read_bytes()
        bot.fakes.transcriber.learn(clip, "create a file called hello dot py")

        await bot.api.send_voice(clip, duration=4)
        await bot.wait_text("🤖 Claude: Echo: create a file called hello dot py")

        assert any(t.startswith("🎤 Heard: create a file called hello dot py") for t in bot.texts())
        assert len(bot.api.calls_to("getFile")) == 1

    @pytest.mark.skipif(not VOICE.exists(), reason="voice fixtures missing from tests/fixtures/voice")
    async def test_unauthorized_voice_is_never_downloaded(self, bot: Bot) -> None:
        """A stranger's voice note is refused before getFile: nothing is downloaded or transcribed."""
        await bot.api.send_voice(VOICE.read_bytes(), duration=4, user=STRANGER)

        await bot.wait_text("⛔ You are not authorized to use this bot.", chat=STRANGER.id)

        assert bot.api.calls_to("getFile") == []
        assert bot.fakes.transcriber.calls == []

    async def test_text_prompt_answer_and_buttons(self, bot: Bot) -> None:
        """A typed prompt gets Claude's answer and a change summary with the four buttons."""
        summary = await turn_with_change(bot)

        assert any(t.startswith("🤖 Claude: Created hello.py") for t in bot.texts())
        assert summary.button_texts() == ["✅ Approve", "❌ Reject", "📝 Show Diff", "📊 Git Status"]
        assert bot.fakes.agent.requests[0].prompt == "create hello.py"

    async def test_approve_commits(self, bot: Bot) -> None:
        """✅ Approve commits the change; the button press is answered."""
        summary = await turn_with_change(bot)
        await bot.api.press(summary.message_id, summary.callback_datas()[2])
        diff = await bot.wait_text("📝 Diff")
        assert diff.button_texts() == ["✅ Approve", "❌ Reject"]

        press = await bot.api.press(summary.message_id, summary.callback_datas()[0])
        reply = await bot.wait_text("✅ Changes approved and committed!")

        assert bot.fakes.workspace.head["hello.py"][0] == b"print('hi')\n"
        await bot.wait_for(lambda: bot.api.callback_answered(press["callback_query"]["id"]))
        sha = bot.fakes.workspace.commits[-1].sha[:7]
        assert f"📝 Commit: {sha} Apply changes from Claude" in (reply.text or "")
        assert "💬 Prompt: create hello.py" in (reply.text or "")
        assert "🕐 " in (reply.text or "")
        edited = bot.api.message(summary.message_id)
        assert edited.button_texts() == ["📝 Show Diff"]
        assert bot.api.message(diff.message_id).button_texts() == []
        assert f"✅ Approved and committed {sha}" in (edited.text or "")
        assert bot.api.html_errors == []

    async def test_reject_edits_the_summary_and_its_diff_stays_viewable(self, bot: Bot) -> None:
        """After ❌ Reject the summary says so; its 📝 Show Diff still shows the diff, marked rejected."""
        summary = await turn_with_change(bot)
        show_diff = summary.callback_datas()[2]

        await bot.api.press(summary.message_id, summary.callback_datas()[1])
        await bot.wait_text("❌ Changes discarded")
        press = await bot.api.press(summary.message_id, show_diff)
        diff = await bot.wait_text("📝 Diff")

        assert "❌ Rejected" in (diff.text or "")
        assert "print('hi')" in (diff.text or "")
        assert diff.reply_markup is None
        await bot.wait_for(lambda: bot.api.callback_answered(press["callback_query"]["id"]))
        assert bot.api.message(summary.message_id).button_texts() == ["📝 Show Diff"]

    async def test_replaced_summary_loses_its_buttons(self, bot: Bot) -> None:
        """A prompt on top of a pending change replaces it: the old summary says so and keeps only Show Diff."""
        first = await turn_with_change(bot)
        bot.fakes.agent.script(AgentScript(text="More", writes={"more.py": b"x = 1\n"}))
        await bot.api.send_text("and more.py")
        await bot.wait_for(lambda: any("↪️ Replaced by a newer change" in t for t in bot.texts()))

        old = bot.api.message(first.message_id)
        assert any("This includes and replaces the previous pending change" in t for t in bot.texts())
        assert "↪️ Replaced by a newer change" in (old.text or "")
        assert old.button_texts() == ["📝 Show Diff"]

    async def test_clear_after_approve_does_not_claim_a_pending_change(self, bot: Bot) -> None:
        """/clear after Approve says only that a fresh session started."""
        summary = await turn_with_change(bot)
        await bot.api.press(summary.message_id, summary.callback_datas()[0])
        await bot.wait_text("✅ Changes approved and committed!")

        await bot.api.send_text("/clear")
        cleared = await bot.wait_text("🧹")

        assert cleared.text == "🧹 Started a fresh Claude session."

    async def test_status_names_the_user_and_counts(self, bot: Bot) -> None:
        """/status shows the user's name and @username, total decisions and the workspace's file count."""
        summary = await turn_with_change(bot)
        await bot.api.press(summary.message_id, summary.callback_datas()[0])
        await bot.wait_text("✅ Changes approved and committed!")

        await bot.api.send_text("/status")
        status = await bot.wait_text("📋 Status")

        text = status.text or ""
        assert f"👤 User: {DEFAULT_USER.first_name} @{DEFAULT_USER.username} {DEFAULT_USER.id}" in text
        assert "🗳 Decisions: 1 (✅ 1 approved · ❌ 0 rejected)" in text
        files = len(bot.fakes.workspace.head)
        assert f"· {files} file{'s' if files != 1 else ''}" in text
        assert bot.api.html_errors == []

    async def test_reject_discards(self, bot: Bot) -> None:
        """❌ Reject restores the workspace."""
        summary = await turn_with_change(bot)

        await bot.api.press(summary.message_id, summary.callback_datas()[1])
        await bot.wait_text("❌ Changes discarded")

        assert "hello.py" not in bot.fakes.workspace.files

    async def test_show_diff_and_git_status(self, bot: Bot) -> None:
        """📝 Show Diff shows the diff inline; 📊 Git Status shows the branch and the untracked file."""
        summary = await turn_with_change(bot)

        await bot.api.press(summary.message_id, summary.callback_datas()[2])
        diff = await bot.wait_text("📝 Diff")
        await bot.api.press(summary.message_id, summary.callback_datas()[3])
        status = await bot.wait_text("📊 Git status")

        assert "print('hi')" in (diff.text or "")
        assert "hello.py" in (status.text or "")

    async def test_overlapping_edits_are_approved_by_an_explicit_choice(self, bot: Bot) -> None:
        """
        Claude edits the line the developer changed: the summary marks the file and offers the choice.

        The choice travels as callback data through Telegram; "Leave this file out" commits the rest only.
        """
        bot.fakes.workspace.write("README.md", b"# my title\n")
        bot.fakes.agent.script(
            AgentScript(text="Retitled", writes={"README.md": b"# agent title\n", "hello.py": b"print('hi')\n"})
        )
        await bot.api.send_text("retitle and add hello.py")
        summary = await bot.wait_text("📝 Changes ready for review")
        # The fake Bot API's message is live: read it before the decision edits it.
        text, labels, datas = summary.text or "", summary.button_texts(), summary.callback_datas()

        await bot.api.press(summary.message_id, datas[1])
        committed = await bot.wait_text("✅ Changes approved and committed!")

        assert "README.md +1 −1 ⚠️ also has your uncommitted edits" in text
        assert labels[:2] == ["✅ Commit with my edits", "✅ Leave this file out"]
        assert datas[1].startswith("o:")
        assert summary.button_texts() == ["📝 Show Diff"]
        assert "Left out (as they are, uncommitted): README.md" in (committed.text or "")
        assert bot.fakes.workspace.head["hello.py"][0] == b"print('hi')\n"
        assert bot.fakes.workspace.head["README.md"][0] == b"# demo\n"
        assert bot.fakes.workspace.files["README.md"][0] == b"# agent title\n"

    async def test_three_rapid_messages_answered_in_order(self, bot: Bot) -> None:
        """Three prompts sent back to back are all answered, in order, none lost."""
        for n in (1, 2, 3):
            await bot.api.send_text(f"task {n}")

        await bot.wait_for(lambda: sum(t.startswith("🤖 Claude: Echo") for t in bot.texts()) == 3)

        answers = [t for t in bot.texts() if t.startswith("🤖 Claude: Echo")]
        assert [a.splitlines()[0] for a in answers] == [f"🤖 Claude: Echo: task {n}" for n in (1, 2, 3)]

    async def test_cancel_is_not_stuck_behind_running_turn(self, bot: Bot) -> None:
        """⏹ Cancel, delivered while the chat's prompt is still running, stops the turn."""
        bot.fakes.agent.gate = anyio.Event()
        await bot.api.send_text("long job")
        await bot.wait_for(lambda: bot.fakes.agent.running == 1)
        working = await bot.wait_text("⏳")

        await bot.api.press(working.message_id, working.callback_datas()[0])
        await bot.wait_text("⏹ Cancelled.")

        assert bot.fakes.agent.cancelled == 1
        status = bot.api.message(working.message_id)
        assert (status.text or "").startswith("⏹ Cancelled after ")
        assert status.reply_markup is None
        assert not any("finished" in t for t in bot.texts())

    async def test_status_message_of_a_quick_turn_is_html(self, bot: Bot) -> None:
        """A turn under a second ends with its status as HTML ("<1s" escaped), never re-sent as plain text."""
        summary = await turn_with_change(bot)

        status = next(
            m for m in bot.api.bot_messages() if m.message_id < summary.message_id and "Claude" in (m.text or "")
        )

        assert (status.text or "").startswith("✔️ Claude finished after")
        assert status.parse_mode == "HTML"
        assert bot.api.html_errors == []

    async def test_send_429_and_5xx_are_retried_and_delivered(self, bot: Bot) -> None:
        """Flood control (429 retry_after) and a 502 on sendMessage are waited out; the reply arrives once."""
        bot.api.fail_next("sendMessage", 1, code=429, retry_after=1)
        bot.api.fail_next("sendMessage", 1, code=502)

        await bot.api.send_text("/help")
        await bot.wait_text("ℹ️ Commands")
        await bot.dispatcher.join()

        assert sum(t.startswith("ℹ️ Commands") for t in bot.texts()) == 1
        statuses = [c.status for c in bot.api.calls_to("sendMessage")]
        assert statuses[:3] == [429, 502, 200]

    async def test_handler_failure_retried_processed_once(self, bot: Bot) -> None:
        """sendMessage failing past the client's retries fails the update; the dispatcher retries it; one reply."""
        bot.api.fail_next("sendMessage", 4, code=500)

        sent = await bot.api.send_text("/help")
        await bot.wait_text("ℹ️ Commands")
        await bot.dispatcher.join()

        stored = await bot.inbox.get(sent["update_id"])
        assert stored is not None
        assert stored.attempts == 2
        assert sum(t.startswith("ℹ️ Commands") for t in bot.texts()) == 1
        assert bot.handled == [sent["update_id"]]

    async def test_bot_500_is_redelivered_and_processed_once(self, bot: Bot) -> None:
        """While the inbox cannot be written the webhook answers 503; Telegram retries; the update runs once."""
        await bot.inbox.aclose()
        sent = await bot.api.send_text("/help")
        await bot.wait_for(lambda: any(s == 503 for _, s in bot.api.webhook_deliveries))
        await bot.inbox.open()

        await bot.wait_text("ℹ️ Commands")
        await bot.dispatcher.join()

        assert bot.handled == [sent["update_id"]]
        info = await bot.client.get_webhook_info()
        assert "503" in (info.last_error_message or "")

    async def test_restart_processes_backlog_once(
        self, fake: FakeBotApi, client: TelegramBotApi, tmp_path: Path
    ) -> None:
        """Updates acked by a bot that stopped before handling them are handled by the next instance, once each."""
        path = tmp_path / "inbox.db"

        def never(_inner: Handler) -> Handler:
            async def blocked(_update: dict[str, Any]) -> None:
                await anyio.sleep_forever()

            return blocked

        users = [FakeUser(111111111), STRANGER]
        async with running_bot(fake, client, path, wrap=never, grace_s=0.05):
            for n in range(3):
                for user in users:
                    await fake.send_text(f"/help {n}", user=user)
            await fake.drain()
        assert fake.dropped_updates == []

        async with running_bot(fake, client, path) as bot:
            await bot.wait_for(lambda: len(bot.handled) >= 6)
            await fake.drain()  # Telegram has delivered all it holds…
            await bot.dispatcher.join()  # …and all of it is handled: nothing else can come now

            assert sorted(bot.handled) == sorted(set(bot.handled))
            assert sum(t.startswith("ℹ️ Commands") for t in bot.texts(DEFAULT_USER.id)) == 3
            assert bot.texts(STRANGER.id).count("⛔ You are not authorized to use this bot.") == 3

    async def test_many_chats_keep_order_through_telegram_delivery(
        self, fake: FakeBotApi, client: TelegramBotApi, tmp_path: Path
    ) -> None:
        """Twenty chats × five prompts delivered like Telegram: every answer arrives, per-chat order kept."""
        users = [FakeUser(300_000 + n) for n in range(20)]
        async with running_bot(fake, client, tmp_path / "inbox.db") as bot:
            for n in range(5):
                for user in users:
                    await fake.send_text(f"/start {n}", user=user)
            await bot.wait_for(lambda: len(bot.handled) == 100, timeout=30)
            await bot.dispatcher.join()

            per_chat: dict[int, list[int]] = {}
            sent_order = [e for e in fake.transcript() if e["side"] == "user"]
            for entry in sent_order:
                per_chat.setdefault(entry["chat_id"], []).append(entry["update_id"])
            rank = {u: i for i, u in enumerate(bot.handled)}
            inversions = sum(1 for ids in per_chat.values() for a, b in itertools.pairwise(ids) if rank[a] > rank[b])

            assert sorted(bot.handled) == sorted(e["update_id"] for e in sent_order)
            assert inversions == 0
            assert all(len(bot.texts(u.id)) == 5 for u in users)
