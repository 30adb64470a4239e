"""
The examples, end to end: examples/telethon_bot.py against the local fake MTProto Telegram, and
examples/aiogram_bot.py and examples/ptb_bot.py against the fake Bot API, each with a real dulwich workspace,
SQLite, and the real Claude Code CLI against the fake Anthropic API: prompt, progress, Show Diff, Approve, Reject,
voice, cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.cli_agent import real_cli_agent
from tests.real_cli import CLAUDE
from voicecoder.simulators.anthropic import FakeAnthropicApi, Reply, bash
from voicecoder.testing.fakes import FakeTranscriber

REPO = Path(__file__).resolve().parents[2]
VOICE = b"OggS" + bytes(range(256)) * 40

pytestmark = [
    pytest.mark.real_cli,
    pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed: run `python3 dev.py test`"),
]


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture(name="anthropic")
async def _anthropic() -> AsyncIterator[FakeAnthropicApi]:
    async with FakeAnthropicApi() as api:
        yield api


@pytest.fixture(name="ports")
async def _ports(tmp_path: Path, anthropic: FakeAnthropicApi) -> AsyncIterator[dict[str, Any]]:
    workspace = tmp_path / "ws"
    agent = real_cli_agent(tmp_path / "home", workspace, anthropic.base_url)
    transcriber = FakeTranscriber()
    transcriber.learn(VOICE, "create file voice.txt with spoken")
    async with agent:  # the embedder's agent is the embedder's to close (its warm CLI processes with it)
        yield {"workspace": workspace, "data_dir": tmp_path / "data", "agent": agent, "transcriber": transcriber}
    assert agent.warm_sessions == ()


async def scenario(
    workspace: Path,
    anthropic: FakeAnthropicApi,
    *,
    say: Callable[[str], Awaitable[object]],
    reply: Callable[[str, int], Awaitable[object]],
    voice: Callable[[bytes], Awaitable[object]],
    wait_text: Callable[[str, int], Awaitable[int]],
    press: Callable[[int, str], Awaitable[None]],
    edited: Callable[[int], bool],
) -> None:
    """
    The embedder's user: prompt → progress → Show Diff → Approve; prompt → Reject; voice; a command the agent asks
    to run, allowed with ✅ (the question then says who allowed it), then one denied by replying with a reason (the
    model reads it); cancel.
    """
    await say("create file notes.txt with hello")
    working = await wait_text("Claude is working", 0)
    summary = await wait_text("Changes ready for review", working)
    assert edited(working)
    await press(summary, "📝 Show Diff")
    await wait_text("+hello", summary)
    await press(summary, "✅ Approve")
    done = await wait_text("✅ Changes approved and committed!", summary)
    assert "notes.txt" in git(workspace, "show", "--stat", "HEAD")

    await say("create file reject.txt with no")
    summary = await wait_text("Changes ready for review", done)
    await press(summary, "❌ Reject")
    done = await wait_text("Changes discarded", summary)
    assert not (workspace / "reject.txt").exists()

    await voice(VOICE)
    heard = await wait_text("Heard: create file voice.txt", done)
    done = await wait_text("Changes ready for review", heard)
    assert (workspace / "voice.txt").read_text() == "spoken\n"

    anthropic.script(Reply.tool(bash("echo allowed > allowed.txt")), Reply.text("Ran it."))
    await say("write a marker with a command")
    question = await wait_text("Claude wants to run a command", done)  # the progress message shows the command too
    await press(question, "✅ Allow")
    assert await wait_text("✅ Allowed by Ada", question - 1) == question
    summary = await wait_text("Changes ready for review", question)
    await press(summary, "❌ Reject")
    done = await wait_text("Changes discarded", summary)

    anthropic.script(Reply.tool(bash("touch denied.txt")), Reply.text("Understood, I left it."))
    await say("touch a file with a command")
    question = await wait_text("Claude wants to run a command", done)
    await reply("use make instead", question)
    await wait_text("❌ Denied by Ada", question - 1)
    done = await wait_text("Understood, I left it.", question)
    assert any("use make instead" in content for r in anthropic.requests for _, content, _ in r.tool_results)
    assert not (workspace / "denied.txt").exists()

    anthropic.script(Reply.text("never mind", stall_s=60))
    await say("think for a long time")
    working = await wait_text("think for a long time", done)
    await press(working, "⏹ Cancel")
    await wait_text("⏹ Cancelled.", working)


@pytest.mark.timeout(240)
async def test_telethon_example(ports: dict[str, Any], anthropic: FakeAnthropicApi) -> None:
    """examples/telethon_bot.py serves a whole session against the local fake Telegram."""
    from telethon import TelegramClient  # noqa: PLC0415
    from telethon.sessions import StringSession  # noqa: PLC0415

    from voicecoder.simulators import FAKE_API_HASH, FAKE_API_ID, FAKE_BOT_TOKEN, FakeTelegram  # noqa: PLC0415

    example = load_example("telethon_bot")
    async with FakeTelegram() as tg:
        client = TelegramClient(StringSession(tg.session_string()), FAKE_API_ID, FAKE_API_HASH)
        await client.start(bot_token=FAKE_BOT_TOKEN)
        stop = asyncio.Event()
        user = 111111111
        task = asyncio.create_task(example.run_bot(client, allowed=[user], stop=stop, **ports))

        async def wait_text(fragment: str, after: int = 0) -> int:
            found = await tg.wait_for(
                lambda: [m.id for m in tg.bot_messages(user) if m.id > after and fragment in m.text], within=60
            )
            return int(found[0])

        async def press(message_id: int, label: str) -> None:
            data = dict(tg.messages[message_id].buttons())[label]
            await tg.press(message_id, data)

        async def voice(data: bytes) -> None:
            await tg.send_voice(data, duration=2)

        try:
            async with asyncio.timeout(30):  # the example registers its handlers once voicecoder is open
                while len(client.list_event_handlers()) < 2 and not task.done():
                    await asyncio.sleep(0.01)
            await tg.send_text("/start")
            await wait_text("👋 Hi")
            await scenario(
                ports["workspace"],
                anthropic,
                say=tg.send_text,
                reply=lambda text, to: tg.send_text(text, reply_to=to),
                voice=voice,
                wait_text=wait_text,
                press=press,
                edited=lambda mid: tg.messages[mid].edits > 0 and not tg.messages[mid].buttons(),
            )
            assert all(cb.answer is not None for cb in tg.callbacks.values())
        finally:
            stop.set()
            await task
            await client.disconnect()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["aiogram_bot", "ptb_bot"])
async def test_bot_api_example(name: str, ports: dict[str, Any], anthropic: FakeAnthropicApi) -> None:
    """
    examples/aiogram_bot.py (aiogram 3) and examples/ptb_bot.py (python-telegram-bot) each serve a whole session
    against the fake Bot API on loopback (their framework's long polling, voicecoder's messenger).
    """
    from voicecoder.simulators.bot_api import DEFAULT_USER, FakeBotApi  # noqa: PLC0415

    example = load_example(name)
    async with FakeBotApi() as api:
        user = DEFAULT_USER.id
        task = asyncio.create_task(example.run_bot(api.token, api_base=api.base_url, allowed=[user], **ports))

        async def wait_text(fragment: str, after: int = 0) -> int:
            async with asyncio.timeout(60):
                while True:
                    mark = len(api.transcript())
                    found = [
                        m.message_id
                        for m in api.bot_messages(user)
                        if m.message_id > after and fragment in (m.text or m.caption or "")
                    ]
                    if found:
                        return int(found[0])
                    await api.wait_transcript(since=mark, within=60)

        async def press(message_id: int, label: str) -> None:
            msg = api.messages[(user, message_id)]
            data = dict(zip(msg.button_texts(), msg.callback_datas(), strict=True))[label]
            await api.press(message_id, data)

        async def voice(data: bytes) -> None:
            await api.send_voice(data, duration=2)

        try:
            await api.send_text("/start")
            await wait_text("👋 Hi")
            await scenario(
                ports["workspace"],
                anthropic,
                say=api.send_text,
                reply=lambda text, to: api.send_text(text, reply_to=to),
                voice=voice,
                wait_text=wait_text,
                press=press,
                edited=lambda mid: api.messages[(user, mid)].edits > 0 and not api.messages[(user, mid)].reply_markup,
            )
            answers = api.calls_to("answerCallbackQuery")
            assert answers
            assert all(c.status == 200 for c in answers)  # answered once each, by the framework
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
