"""
Forum topics in a private chat (Bot API 9.3), one per project: a real `serve` with PROJECTS, the fake Bot API
with topics, the real Claude CLI on the fake Anthropic API. A long turn in one topic does not hold up the other.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import anyio

from tests.integration.test_projects_webhook import BOT, DEV, TOKEN, serve, until
from tests.loopback import free_port, wait_http
from tests.real_cli import make_repo, needs_cli
from voicecoder.testing.fake_anthropic import FakeAnthropicApi, MessagesRequest, Reply, write_file
from voicecoder.testing.fake_bot_api import BotMessage, FakeBotApi

pytestmark = needs_cli


def in_topic(bot: FakeBotApi, topic: int, start: str) -> BotMessage | None:
    found = [m for m in bot.bot_messages(DEV.id) if m.thread_id == topic and (m.text or "").startswith(start)]
    return found[-1] if found else None


def asks_in(tree: Path, *, answered: bool) -> Callable[[MessagesRequest], bool]:
    """A model request of the agent working in *tree*: its first step, or (*answered*) the one after a tool ran."""

    def match(request: MessagesRequest) -> bool:
        return request.cwd == str(tree) and bool(request.tool_results) == answered

    return match


async def test_a_topic_per_project_runs_two_turns_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    make_repo(tmp_path / "src" / "api")
    make_repo(tmp_path / "src" / "web")
    api_tree, web_tree = tmp_path / "trees" / "api" / "user-1001", tmp_path / "trees" / "web" / "user-1001"
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot, FakeAnthropicApi() as anthropic:
        # chosen once the fakes hold their ports: serve's port must not be one of theirs (a fake bound
        # to it after free_port() made serve fail to start and the fake deliver updates to itself)
        port = free_port()
        bot.add_chat(DEV)
        topic_api, topic_web = bot.create_topic(DEV.id, "API"), bot.create_topic(DEV.id, "Web")
        server = serve(tmp_path, port, bot, anthropic)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            await BOT.set_webhook(bot.base_url, port)
            await bot.send_text("/project api", user=DEV, thread=topic_api)
            await bot.send_text("/project web", user=DEV, thread=topic_web)
            await until("api bound to its topic", lambda: in_topic(bot, topic_api, "📁 Now working in api"))
            await until("web bound to its topic", lambda: in_topic(bot, topic_web, "📁 Now working in web"))

            # The api turn writes a file, then its model takes a minute to answer: that turn is still running...
            anthropic.rule(asks_in(api_tree, answered=False), Reply.tool(write_file("a.txt", "api\n")))
            anthropic.rule(asks_in(api_tree, answered=True), Reply.text("still thinking", delay_s=60))
            anthropic.rule(asks_in(web_tree, answered=False), Reply.tool(write_file("b.txt", "web\n")))
            anthropic.rule(asks_in(web_tree, answered=True), Reply.text("wrote b.txt"))
            await bot.send_text("write a.txt", user=DEV, thread=topic_api)
            await until("the api turn is mid-way", (api_tree / "a.txt").exists)
            # ...while the web topic's turn runs to its end beside it.
            await bot.send_text("write b.txt", user=DEV, thread=topic_web)
            await until("the web change", lambda: in_topic(bot, topic_web, "📝 Changes ready"))
            api_summary_meanwhile = in_topic(bot, topic_api, "📝 Changes ready")

            # ⏹ in the api topic stops its turn (its lane is not the one the turn holds).
            working = next(
                m
                for m in reversed(bot.bot_messages(DEV.id))
                if m.thread_id == topic_api and any(d.endswith("c::") for d in m.callback_datas())
            )
            await bot.press(working.message_id, "api/c::", user=DEV)
            await until(
                "the api turn stopped",
                lambda: in_topic(bot, topic_api, "📝 Changes ready") or in_topic(bot, topic_api, "⏹"),
            )
        finally:
            server.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(server.wait, 60)

    assert api_summary_meanwhile is None
    web_summary = in_topic(bot, topic_web, "📝 Changes ready")
    assert web_summary is not None
    assert "📁 web" in (web_summary.text or "")
    assert all(d.startswith("web/") for d in web_summary.callback_datas())
    assert (web_tree / "b.txt").read_text() == "web\n"
    assert not (web_tree / "a.txt").exists()
    assert not (api_tree / "b.txt").exists()
    # Everything voicecoder said after the binding went to one of the two topics, none to the chat itself.
    said = bot.bot_messages(DEV.id)
    assert said
    assert {m.thread_id for m in said} == {topic_api, topic_web}
    actions = [c for c in bot.transcript(chat_id=DEV.id) if c.get("kind") == "chat_action"]
    assert actions
    assert all(c.get("message_thread_id") in (topic_api, topic_web) for c in actions)
