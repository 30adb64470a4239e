from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from voicecoder.adapters.telegram.api import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    PacingPolicy,
    RetryPolicy,
    TelegramBotApi,
)
from voicecoder.adapters.telegram.api_types import ParsedUpdate, typed_update
from voicecoder.adapters.telegram.messenger import TelegramMessenger
from voicecoder.adapters.telegram.routing import lane_of
from voicecoder.adapters.telegram.updates import BOT_COMMANDS, TelegramUpdateHandler
from voicecoder.adapters.telegram.webhook import parse_update
from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.domain.model import ToolKind, ToolRequest, UserId
from voicecoder.domain.policy import ToolPolicy
from voicecoder.domain.services import Settings, VoiceCoder
from voicecoder.simulators.bot_api import DEFAULT_TOKEN, DEFAULT_USER, FakeBotApi, FakeUser
from voicecoder.testing.fakes import AgentScript, FakePorts, build_voicecoder

VOICE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "voice" / "01_create_file.ogg"
STRANGER = FakeUser(222222222, first_name="Eve", username="eve")
LIMIT = 1_000_000


@attrs.define
class Rig:
    api: FakeBotApi
    client: TelegramBotApi
    app: VoiceCoder
    fakes: FakePorts
    handler: TelegramUpdateHandler

    def texts(self, chat: int = DEFAULT_USER.id) -> list[str]:
        return [m.text or m.caption or "" for m in self.api.bot_messages(chat)]


@contextlib.asynccontextmanager
async def open_rig(settings: Settings | None = None) -> AsyncIterator[Rig]:
    """The handler on an app of fakes whose replies go through the real messenger to a FakeBotApi."""
    async with (
        FakeBotApi() as api,
        TelegramBotApi(
            DEFAULT_TOKEN,
            base_url=api.base_url,
            retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
            pacing=PacingPolicy(per_chat_rate=0, global_rate=0),
        ) as client,
    ):
        messenger = TelegramMessenger(client)
        app, fakes = build_voicecoder(messenger=messenger, allowed_users=(DEFAULT_USER.id,), settings=settings)
        handler = TelegramUpdateHandler(
            app, client, messenger=messenger, max_bytes=LIMIT, bot_username="voicecoder_bot"
        )
        yield Rig(api, client, app, fakes, handler)


@pytest.fixture(name="rig")
async def _rig() -> AsyncIterator[Rig]:
    async with open_rig() as rig:
        yield rig


class TestTelegramUpdateHandler:
    @pytest.mark.parametrize(
        ("command", "expected"),
        [
            ("/start", "👋 Hi Ada!"),
            ("/start@voicecoder_bot", "👋 Hi Ada!"),
            ("/help", "ℹ️ Commands"),
            ("/status", "📋 Status"),
            ("/clear", "🧹 Started a fresh Claude session."),
            ("/info", "🩺 Diagnostics"),
            ("/undo", "⚠️ Nothing to undo"),
            ("/unknown", "ℹ️ Commands"),
        ],
    )
    async def test_commands(self, rig: Rig, command: str, expected: str) -> None:
        """Each command reaches its use case; the reply arrives in the chat."""
        update = await rig.api.send_text(command)

        await rig.handler(update)

        assert rig.texts()[-1].startswith(expected)

    async def test_command_for_another_bot_is_ignored(self, rig: Rig) -> None:
        """/start@otherbot (in a group) is not ours."""
        await rig.handler(await rig.api.send_text("/start@other_bot"))

        assert rig.texts() == []

    async def test_text_prompt_runs_a_turn(self, rig: Rig) -> None:
        """A plain text is a prompt: the status message, Claude's answer and the change summary with buttons."""
        rig.fakes.agent.script(AgentScript(text="Created hello.py", writes={"hello.py": b"print('hi')\n"}))

        await rig.handler(await rig.api.send_text("create hello.py"))

        texts = rig.texts()
        assert texts[0].startswith("✔️ Claude finished")
        assert texts[1].startswith("🤖 Claude: Created hello.py")
        summary = rig.api.bot_messages()[-1]
        assert summary.text is not None
        assert summary.text.startswith("📝 Changes ready for review")
        assert summary.button_texts() == ["✅ Approve", "❌ Reject", "📝 Show Diff", "📊 Git Status"]

    async def test_approve_press_commits_and_answers_once(self, rig: Rig) -> None:
        """Pressing ✅ Approve commits through the facade; the query is answered exactly once."""
        rig.fakes.agent.script(AgentScript(writes={"hello.py": b"print('hi')\n"}))
        await rig.handler(await rig.api.send_text("create hello.py"))
        summary = rig.api.bot_messages()[-1]

        press = await rig.api.press(summary.message_id, summary.callback_datas()[0])
        await rig.handler(press)

        assert rig.texts()[-1].startswith("✅ Changes approved and committed!")
        answers = [e for e in rig.api.transcript() if e["kind"] == "callback_answer"]
        assert len(answers) == 1
        assert answers[0]["text"].startswith("✅ Committed")
        assert rig.fakes.workspace.head["hello.py"][0] == b"print('hi')\n"

    async def test_cancel_is_not_stuck_behind_the_running_turn(self, rig: Rig) -> None:
        """⏹ Cancel, handled while the prompt's turn is still running, stops it."""
        rig.fakes.agent.gate = anyio.Event()
        turn = asyncio.create_task(rig.handler(await rig.api.send_text("long job")))
        # The agent starts while the status message (with ⏹) is on its way: wait for both.
        while not (rig.fakes.agent.running and rig.api.bot_messages()):
            await asyncio.sleep(0.01)
        working = rig.api.bot_messages()[0]

        await rig.handler(await rig.api.press(working.message_id, working.callback_datas()[0]))
        await asyncio.wait_for(turn, 60)  # a guard against a hang, not a speed claim

        assert rig.fakes.agent.cancelled == 1
        assert "⏹ Cancelled." in rig.texts()
        assert rig.api.bot_messages()[0].reply_markup is None

    async def test_stale_button_is_answered_here(self, rig: Rig) -> None:
        """A press with callback_data this bot never made is answered by the handler, not the facade."""
        rig.api.add_chat()
        old = InlineKeyboardMarkup(((InlineKeyboardButton("Old", callback_data="approve:42"),),))
        ref = await rig.client.send_message(DEFAULT_USER.id, "old", reply_markup=old)

        press = await rig.api.press(ref.message_id, "approve:42")
        await rig.handler(press)

        answers = [e for e in rig.api.transcript() if e["kind"] == "callback_answer"]
        assert [a["text"] for a in answers] == ["This button is no longer valid."]

    async def test_voice_is_downloaded_and_transcribed(self, rig: Rig) -> None:
        """A voice note is fetched via getFile + download and handed over as Audio with its mime and duration."""
        clip = VOICE.read_bytes()
        rig.fakes.transcriber.learn(clip, "create a file called hello dot py")

        await rig.handler(await rig.api.send_voice(clip, duration=4))

        audio, _ = rig.fakes.transcriber.calls[0]
        assert audio.data == clip
        assert audio.mime_type == "audio/ogg"
        assert audio.declared_duration_s == 4.0
        assert len(rig.api.downloads) == 1
        assert "🎤 Heard: create a file called hello dot py" in rig.texts()

    async def test_audio_document_is_accepted_other_documents_refused(self, rig: Rig) -> None:
        """An .ogg sent as a file is transcribed; a PDF gets the unsupported-audio reply without a download."""
        clip = VOICE.read_bytes()
        rig.fakes.transcriber.learn(clip, "run the tests")

        await rig.handler(await rig.api.send_audio_file(clip, file_name="note.ogg", mime_type="audio/ogg"))
        await rig.handler(await rig.api.send_audio_file(b"%PDF-1.7", file_name="x.pdf", mime_type="application/pdf"))

        assert rig.fakes.transcriber.calls[0][0].filename == "note.ogg"
        assert len(rig.api.downloads) == 1
        assert rig.texts()[-1].startswith("⚠️ This file is not audio I can read.")

    async def test_webm_audio_file_is_transcribed(self, rig: Rig) -> None:
        """
        A WebM recording sent as a file (Telegram counts .webm as audio) reaches the transcriber: the intake's
        sniffer accepts what the Telegram intake calls audio, instead of answering "not audio I can read".
        """
        webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm" + b"\x00" * 64
        rig.fakes.transcriber.learn(webm, "run the tests")

        await rig.handler(await rig.api.send_audio_file(webm, file_name="memo.webm", mime_type="audio/webm"))

        assert rig.fakes.transcriber.refused == []
        assert rig.fakes.transcriber.calls[0][0].filename == "memo.webm"
        assert "🎤 Heard: run the tests" in rig.texts()

    async def test_oversize_refused_before_download(self, rig: Rig) -> None:
        """A recording whose declared file_size is over the limit is refused without getFile or download."""
        update = await rig.api.send_voice(b"OggS" + b"\0" * 100, duration=900, declared_size=LIMIT + 1)

        await rig.handler(update)

        assert rig.api.calls_to("getFile") == []
        assert rig.api.downloads == []
        assert "the limit is 1 MB" in rig.texts()[-1]
        assert rig.fakes.transcriber.calls == []

    async def test_unauthorized_never_downloads(self, rig: Rig) -> None:
        """A stranger's voice note is answered with ⛔ and never fetched."""
        update = await rig.api.send_voice(VOICE.read_bytes(), duration=4, user=STRANGER)

        await rig.handler(update)

        assert rig.api.calls_to("getFile") == []
        assert rig.api.downloads == []
        assert rig.texts(STRANGER.id) == ["⛔ You are not authorized to use this bot."]

    async def test_unauthorized_text_and_press(self, rig: Rig) -> None:
        """A stranger's prompt runs nothing."""
        await rig.handler(await rig.api.send_text("rm -rf /", user=STRANGER))

        assert rig.fakes.agent.requests == []
        assert rig.texts(STRANGER.id) == ["⛔ You are not authorized to use this bot."]

    @pytest.mark.parametrize(
        "raw",
        [
            {"update_id": 1},
            {"update_id": 2, "edited_message": {"message_id": 1, "chat": {"id": 1}, "date": 1}},
            {"message": {"message_id": 1, "chat": {"id": 1}, "date": 1, "text": "x"}},
            {"update_id": 3, "message": {"message_id": 1, "chat": {"id": 1}, "date": 1, "text": "no sender"}},
            {"update_id": 4, "message": {"message_id": "1", "chat": {"id": 1}, "from": {"id": 1}, "text": "x"}},
            {"update_id": 5, "callback_query": {"id": "9", "data": "c::"}},
        ],
    )
    async def test_malformed_raises(self, rig: Rig, raw: dict[str, Any]) -> None:
        """Shapes the handler cannot route raise MalformedUpdateError and send nothing."""
        with pytest.raises(MalformedUpdateError):
            await rig.handler(raw)

        assert rig.api.calls == []


@pytest.fixture(name="asking")
async def _asking() -> AsyncIterator[Rig]:
    """A rig whose app asks about tools (the default ToolPolicy)."""
    settings = Settings(
        allowed_users=frozenset({UserId(DEFAULT_USER.id)}),
        workspace_path="/fake/workspace",
        tools=ToolPolicy(workspace="/fake/workspace"),
    )
    async with open_rig(settings) as rig:
        yield rig


async def _question(rig: Rig, command: str = "pytest -q") -> tuple[asyncio.Task[None], Any]:
    """Start a turn whose agent asks to run *command*; return the turn and the question message once it is shown."""
    request = ToolRequest("r1", "Bash", ToolKind.SHELL, f"Bash: {command}", command=command, tool_use_id="toolu_1")
    rig.fakes.agent.script(AgentScript(asks=(request,)))
    turn = asyncio.create_task(rig.handler(await rig.api.send_text("run the tests")))
    while not any((m.text or "").startswith("💻") for m in rig.api.bot_messages()):
        await asyncio.sleep(0.01)
    return turn, next(m for m in rig.api.bot_messages() if (m.text or "").startswith("💻"))


class TestToolQuestionsOverTelegram:
    async def test_question_shows_the_command_and_three_buttons(self, asking: Rig) -> None:
        """The question shows the command; ✅ Allow runs it; the question then says who allowed it."""
        turn, question = await _question(asking)

        assert "pytest -q" in (question.text or "")
        assert question.button_texts() == ["✅ Allow", "🔓 Allow Bash(pytest *) for this session", "❌ Deny"]
        await asking.handler(await asking.api.press(question.message_id, question.callback_datas()[0]))
        await asyncio.wait_for(turn, 60)  # a guard against a hang, not a speed claim

        closed = next(m for m in asking.api.bot_messages() if m.message_id == question.message_id)
        assert (closed.text or "").startswith("✅ Allowed by Ada")
        assert closed.reply_markup is None
        assert [d.allow for _, d in asking.fakes.agent.decisions] == [True]

    async def test_a_reply_denies_with_its_text_and_has_its_own_lane(self, asking: Rig) -> None:
        """A reply to the question is routed past the busy message lane and denies with its text."""
        turn, question = await _question(asking)

        reply = await asking.api.send_text("not now, run the linter", reply_to=question.message_id)
        assert lane_of(reply) == (DEFAULT_USER.id, "answer")
        await asking.handler(reply)
        await asyncio.wait_for(turn, 60)  # a guard against a hang, not a speed claim

        ((_, decision),) = asking.fakes.agent.decisions
        assert "not now, run the linter" in decision.message
        closed = next(m for m in asking.api.bot_messages() if m.message_id == question.message_id)
        assert (closed.text or "").startswith("❌ Denied by Ada: “not now, run the linter”")
        after = await asking.api.send_text("thanks", reply_to=question.message_id)
        assert lane_of(after) == (DEFAULT_USER.id, "message")

    async def test_permissions_command(self, asking: Rig) -> None:
        """/permissions shows the mode; /permissions clear answers with what was forgotten."""
        await asking.handler(await asking.api.send_text("/permissions"))
        await asking.handler(await asking.api.send_text("/permissions clear"))

        texts = asking.texts()
        assert texts[0].startswith("🔐 Tool approval: auto-edits")
        assert "none yet" in texts[1]


ADA = {"id": 5, "is_bot": False, "first_name": "Ada"}
CHAT = {"id": 5, "type": "private", "first_name": "Ada"}
MESSAGE = {"message_id": 1, "from": ADA, "chat": CHAT, "date": 1764000000, "text": "x"}
PRESS = {"id": "1", "from": ADA, "chat_instance": "-1", "data": "status", "message": MESSAGE}


class TestLaneOf:
    async def test_lanes(self) -> None:
        """Messages and button presses of a chat have separate lanes; other update types have none."""
        inline = {"id": "1", "from": {**ADA, "id": 7}, "chat_instance": "-1", "inline_message_id": "x"}
        inaccessible = {**PRESS, "message": {"message_id": 9, "chat": CHAT, "date": 0}}

        assert lane_of({"update_id": 1, "message": MESSAGE}) == (5, "message")
        assert lane_of({"update_id": 2, "callback_query": PRESS}) == (5, "callback")
        assert lane_of({"update_id": 3, "callback_query": inline}) == (7, "callback")
        assert lane_of({"update_id": 4, "callback_query": inaccessible}) == (5, "callback")
        assert lane_of({"update_id": 5, "edited_message": MESSAGE}) is None
        assert lane_of({"update_id": 6}) is None

    @pytest.mark.parametrize(
        ("update", "detail"),
        [
            ({"message": {**MESSAGE, "from": None}}, "no sender"),
            ({"message": {key: v for key, v in MESSAGE.items() if key != "from"}}, "no sender"),
            ({"message": {**MESSAGE, "from": {**ADA, "is_bot": True}}}, "from a bot"),
            ({"message": {**MESSAGE, "chat": {"id": "5"}}}, "message.chat.id"),
            ({"message": {**MESSAGE, "chat": None}}, "message.chat"),
            ({"message": {**MESSAGE, "message_id": "1"}}, "message.message_id"),
            ({"message": {**MESSAGE, "from": {"first_name": "no id"}}}, "message.from.id"),
            ({"message": {**MESSAGE, "voice": {"duration": 3}}}, "message.voice.file_id"),
            ({"message": {**MESSAGE, "document": "x"}}, "message.document"),
            ({"message": {**MESSAGE, "reply_markup": {"inline_keyboard": [["x"]]}}}, "button"),
            ({"message": None}, "message"),
            ({"message": [MESSAGE]}, "message"),
            ({"callback_query": {**PRESS, "id": 1}}, "callback_query.id"),
            ({"callback_query": {**PRESS, "from": None}}, "callback_query.from"),
            ({"callback_query": {**PRESS, "message": {"chat": CHAT}}}, "callback_query.message.message_id"),
            ({"message": MESSAGE, "callback_query": PRESS}, "both"),
        ],
    )
    async def test_what_the_handler_cannot_process_is_refused_here(self, update: dict[str, Any], detail: str) -> None:
        """
        Shape checks reach every level the handler reads, so an update routed to a lane never fails for its shape.
        """
        with pytest.raises(MalformedUpdateError) as raised:
            lane_of({"update_id": 9, **update})

        assert detail in raised.value.detail


class TestParsedOnce:
    async def test_routing_and_the_handler_share_one_parse(self, rig: Rig) -> None:
        """A body decoded by the webhook is parsed by routing; the handler then uses that parse, not a new one."""
        body = json.dumps(await rig.api.send_text("/help")).encode()
        update = parse_update(body)
        lane = lane_of(update)
        parsed = update.typed if isinstance(update, ParsedUpdate) else None

        await rig.handler(update)

        assert lane == (DEFAULT_USER.id, "message")
        assert parsed is not None
        assert typed_update(update) is parsed
        assert parsed.message is not None
        assert parsed.message.text == "/help"
        assert rig.texts()[-1].startswith("ℹ️ Commands")

    async def test_a_kept_parse_makes_no_reference_cycle(self) -> None:
        """The kept parse does not point back at its dict: an update is freed by reference counting alone."""
        body = json.dumps({"update_id": 42, "message": MESSAGE}).encode()
        gc.collect()
        gc.disable()
        try:
            for _ in range(100):
                update = parse_update(body)
                lane_of(update)
                typed_update(update)
                del update
            unreachable = gc.collect()
        finally:
            gc.enable()

        assert unreachable == 0

    async def test_a_plain_dict_is_parsed_each_time(self) -> None:
        """Only a ParsedUpdate keeps its parse; a plain dict (e.g. a resumed inbox item) is parsed per call."""
        raw = {"update_id": 43, "message": MESSAGE}

        assert typed_update(raw) is not typed_update(raw)
        assert typed_update(raw) == typed_update(raw)


class TestBotCommands:
    async def test_fake_accepts_the_command_list(self) -> None:
        """BOT_COMMANDS is a valid setMyCommands payload (names, lengths) with the five commands."""
        async with FakeBotApi() as api, TelegramBotApi(DEFAULT_TOKEN, base_url=api.base_url) as client:
            await client.set_my_commands(BOT_COMMANDS)

        assert [c.command for c in BOT_COMMANDS] == ["start", "help", "status", "clear", "info", "undo", "permissions"]
        assert api.calls_to("setMyCommands")[0].status == 200
