"""
`voicecoder serve` stopped while a tool question waits: the whole server as the container wires it (webhook,
inbox, dispatcher with its on_stop hook, use cases, the real CLI on the fake Anthropic API), Telegram played by
the fake Bot API that delivers to the webhook.
"""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import pytest

from tests.agent_processes import alive_with
from tests.real_cli import CLAUDE, make_repo, needs_cli
from voicecoder.bootstrap import build_container, open_runtime
from voicecoder.config import Config
from voicecoder.entrypoints.server import serve
from voicecoder.simulators.anthropic import FakeAnthropicApi, Reply, bash
from voicecoder.simulators.bot_api import DEFAULT_USER, FakeBotApi

pytestmark = needs_cli

TOKEN = "7000000003:AAFakeTokenForTheRestartTest_0123456789"
SECRET = "restart-test-secret"
HOOK = "/telegram/restart-test-hook"


async def test_a_restart_ends_the_turn_that_waits_on_a_question(tmp_path: Path) -> None:
    """
    Stopping the server while a question is open denies it, ends the turn, tells the user, and leaves no process.
    """
    assert CLAUDE is not None
    repo = make_repo(tmp_path / "ws")
    marker = "restart-test-" + tmp_path.name
    async with FakeBotApi(TOKEN) as bot, FakeAnthropicApi() as anthropic:
        bot.add_chat(DEFAULT_USER)
        anthropic.script(Reply.tool(bash("touch never.txt")), Reply.text("unreachable"))
        config = Config(
            telegram_token=TOKEN,
            telegram_api_base=bot.base_url,
            allowed_user_ids=frozenset({DEFAULT_USER.id}),
            webhook_path=HOOK,
            webhook_secret=SECRET,
            listen_port=0,
            workspace_dir=repo,
            data_dir=tmp_path / "data",
            claude_binary=str(CLAUDE),
            claude_env={
                "ANTHROPIC_BASE_URL": anthropic.base_url,
                "ANTHROPIC_API_KEY": "dummy",
                "HOME": str(tmp_path / "home"),
                "VOICECODER_TEST_RUN": marker,
            },
            claude_config_dir=tmp_path / "home" / ".claude",
        )
        container = build_container(config)
        stop = anyio.Event()
        async with open_runtime(container), anyio.create_task_group() as tg:
            port = await tg.start(functools.partial(serve, container, stop=stop, handle_signals=False))
            await container.telegram.bot_api().set_webhook(
                f"http://127.0.0.1:{port}{HOOK}", secret_token=SECRET, allowed_updates=["message", "callback_query"]
            )
            await bot.send_text("make a file")
            with anyio.fail_after(60):
                while not any("Claude wants to run a command" in (m.text or "") for m in bot.bot_messages()):
                    await anyio.sleep(0.05)

            stop.set()

        texts = [m.text or "" for m in bot.bot_messages()]
        assert any(t.startswith("🔄 voicecoder is restarting while a question was waiting") for t in texts), texts
        assert any(t.startswith("🔄 Not answered: voicecoder restarted") for t in texts), texts
        assert not (repo / "never.txt").exists()
    assert alive_with("VOICECODER_TEST_RUN", marker) == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
