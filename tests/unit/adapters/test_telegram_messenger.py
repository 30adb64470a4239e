"""TelegramMessenger against a real FakeBotApi over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.adapters.telegram_samples import (
    CHANGE,
    CHAT,
    NASTY,
    SAMPLES,
    make_diff,
)
from voicecoder.adapters.telegram.api import PacingPolicy, RetryPolicy, TelegramApiError, TelegramBotApi
from voicecoder.adapters.telegram.messenger import (
    TelegramMessenger,
    html_to_text,
    parse_callback_data,
)
from voicecoder.domain.errors import DeliveryError
from voicecoder.domain.model import (
    ChatId,
)
from voicecoder.domain.replies import (
    Action,
    AgentAnswer,
    Button,
    ChangeSummary,
    DiffView,
    ErrorReply,
    MessageRef,
    NoChanges,
    Reply,
    Working,
)
from voicecoder.simulators.bot_api import (
    DEFAULT_TOKEN,
    FakeBotApi,
)


@pytest.fixture(name="api")
async def _api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        api.add_chat()
        yield api


@pytest.fixture(name="messenger")
async def _messenger(api: FakeBotApi) -> AsyncIterator[TelegramMessenger]:
    async with TelegramBotApi(
        DEFAULT_TOKEN,
        base_url=api.base_url,
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
        pacing=PacingPolicy(per_chat_rate=0, global_rate=0),
    ) as client:
        yield TelegramMessenger(client)


def plain_of(api: FakeBotApi) -> str:
    return "".join(m.text or "" for m in api.bot_messages())


class TestTelegramMessenger:
    @pytest.mark.parametrize("reply", SAMPLES, ids=lambda r: type(r).__name__)
    async def test_every_reply_is_accepted_by_the_fake(
        self, api: FakeBotApi, messenger: TelegramMessenger, reply: Reply
    ) -> None:
        """Telegram (the fake) accepts every rendered reply; the returned ref is the stored message."""
        ref = await messenger.send(CHAT, reply)

        stored = api.messages[(CHAT.value, ref.message_id)]
        assert stored.from_bot
        assert all(c.status == 200 for c in api.calls)

    async def test_long_answer_is_split_and_ref_is_last(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A 10 000-character answer becomes several valid messages; the ref points at the last one."""
        text = "".join(f"line {i}: {NASTY}\n" for i in range(200))

        ref = await messenger.send(CHAT, AgentAnswer(text=text, success=True))

        messages = api.bot_messages()
        assert len(messages) >= 3
        assert all(len(m.text or "") <= 4096 for m in messages)
        assert ref == MessageRef(CHAT, messages[-1].message_id)
        assert "".join((m.text or "") for m in messages).replace("\n", "") == f"🤖 Claude: {text}".replace("\n", "")

    async def test_long_code_block_keeps_pre_in_every_part(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A code block longer than a message is a pre entity in each part."""
        code = "".join(f"x_{i} = a < b and c > d  # &\n" for i in range(300))

        await messenger.send(CHAT, AgentAnswer(text=f"```python\n{code}```", success=True))

        messages = api.bot_messages()
        assert len(messages) >= 2
        for m in messages[1:]:
            assert m.entities[0]["type"] == "pre"
            assert m.entities[0]["offset"] == 0

    async def test_parse_error_falls_back_to_plain_text(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """When Telegram cannot parse the entities, the same text goes out without parse_mode."""
        api.fail_next(
            "sendMessage",
            code=400,
            description='Bad Request: can\'t parse entities: Unsupported start tag "foo" at byte offset 3',
        )

        await messenger.send(CHAT, ErrorReply(NASTY))

        calls = api.calls_to("sendMessage")
        assert [c.status for c in calls] == [400, 200]
        assert "parse_mode" not in calls[1].params
        assert api.bot_messages()[-1].text == f"⚠️ {NASTY}"

    async def test_too_long_by_telegram_is_resplit(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """If Telegram still finds a part too long, it is sent again in smaller parts; nothing is lost."""
        text = "".join(f"row {i}\n" for i in range(400))
        api.fail_next("sendMessage", code=400, description="Bad Request: message is too long")

        ref = await messenger.send(CHAT, AgentAnswer(text=text, success=True))

        messages = api.bot_messages()
        assert len(messages) >= 2
        assert ref.message_id == messages[-1].message_id
        assert "".join(m.text or "" for m in messages) == f"🤖 Claude: {text}"

    async def test_long_diff_goes_out_as_document(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A long diff is sent with sendDocument; the file holds the exact diff text."""
        unified = "".join(f"+added line {i} with <html> & stuff\n" for i in range(300))

        ref = await messenger.send(CHAT, DiffView(make_diff(unified), CHANGE))

        stored = api.messages[(CHAT.value, ref.message_id)]
        assert stored.document is not None
        assert stored.document.data == unified.encode()
        assert stored.document.file_name == f"change-{CHANGE.value}.diff"
        assert stored.caption is not None
        assert "attached" in stored.caption
        assert stored.button_texts() == ["✅ Approve", "❌ Reject"]

    async def test_working_edit_lifecycle(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """The status message gets progress edits with ⏹ Cancel, tolerates identical edits, loses Cancel when done."""
        ref = await messenger.send(CHAT, Working(prompt="fix it", steps=(), elapsed_s=0))
        first = api.messages[(CHAT.value, ref.message_id)]
        assert first.button_texts() == ["⏹ Cancel"]
        assert parse_callback_data(first.callback_datas()[0]) == Button(Action.CANCEL)

        progress = Working(prompt="fix it", steps=("🔧 Edit: app.py",), elapsed_s=4)
        await messenger.edit(ref, progress)
        await messenger.edit(ref, progress)  # same content: "not modified" is success
        mid_text, mid_buttons = first.text, first.button_texts()
        await messenger.edit(ref, Working(prompt="fix it", steps=("🔧 Edit: app.py",), elapsed_s=9, finished=True))

        assert mid_text is not None
        assert "🔧 Edit: app.py" in mid_text
        assert mid_buttons == ["⏹ Cancel"]
        assert first.text is not None
        assert first.text.startswith("✔️ Claude finished after 9s")
        assert first.reply_markup is None
        assert first.edits == 2
        assert len(api.bot_messages()) == 1

    async def test_answer_callback_and_late_answer(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A press is answered; answering it again (too old) is logged, not raised."""
        ref = await messenger.send(CHAT, ChangeSummary(CHANGE, make_diff()))
        data = api.messages[(CHAT.value, ref.message_id)].callback_datas()[0]
        update = await api.press(ref.message_id, data)
        query_id = update["callback_query"]["id"]

        await messenger.answer_callback(query_id, "✅ Committed abc1234" + "!" * 300, alert=True)
        await messenger.answer_callback(query_id, "again")

        assert api.callback_answered(query_id)
        answers = [e for e in api.transcript() if e["kind"] == "callback_answer"]
        assert len(answers) == 1
        assert answers[0]["show_alert"] is True
        assert len(answers[0]["text"]) == 200

    async def test_typing_never_raises(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A failing chat action is swallowed: the indicator is cosmetic."""
        api.fail_next("sendChatAction", 5, code=500)

        await messenger.typing(CHAT)
        await messenger.typing(CHAT)

        assert [e["action"] for e in api.transcript() if e["kind"] == "chat_action"] == ["typing"]

    async def test_delivery_failure_raises_delivery_error(self, messenger: TelegramMessenger) -> None:
        """A message to a chat the bot cannot reach raises DeliveryError."""
        with pytest.raises(DeliveryError) as info:
            await messenger.send(ChatId(999), NoChanges())

        assert isinstance(info.value, TelegramApiError)
        assert info.value.description == "Bad Request: chat not found"

    def test_html_to_text(self) -> None:
        """html_to_text drops tags and decodes entities."""
        assert html_to_text("<b>a &lt; b</b> &amp; <i>c</i>") == "a < b & c"
