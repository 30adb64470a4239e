"""
`voicecoder serve` killed mid-turn, then started again: the prompt Telegram delivered is in the durable inbox and
comes back, but it is not run a second time. The cut-off turn's edits become a change to review and the chat is
asked whether to run the prompt again; 🔁 runs it, once. A real `serve` process, the real Claude CLI on the fake
Anthropic API, Telegram played by the fake Bot API delivering to the webhook.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.agent_processes import alive_with, describe
from tests.loopback import free_port, wait_http
from tests.real_cli import CLAUDE, make_repo, needs_cli
from tests.serve_rig import WebhookBot, real_claude, start_cli
from voicecoder.testing.fake_anthropic import FakeAnthropicApi, Reply, write_file
from voicecoder.testing.fake_bot_api import BotMessage, FakeBotApi, FakeUser

pytestmark = needs_cli

TOKEN = "7000000004:AAFakeTokenForTheInterruptedTurnTest_01234"
HOOK = "/telegram/interrupted-turn-hook"
SECRET = "interrupted-turn-secret"
DEV = FakeUser(id=1001, first_name="Dev")
MARKER_VAR = "VOICECODER_TEST_RUN"
BOT = WebhookBot(TOKEN, HOOK, SECRET)


def serve(
    tmp_path: Path, port: int, bot: FakeBotApi, anthropic: FakeAnthropicApi, marker: str
) -> subprocess.Popen[bytes]:
    assert CLAUDE is not None
    env = BOT.env(
        tmp_path,
        bot.base_url,
        port,
        ALLOWED_USER_IDS=str(DEV.id),
        AGENT_ENV_PASSTHROUGH=MARKER_VAR,
        **{MARKER_VAR: marker},
        **real_claude(CLAUDE, anthropic.base_url, tmp_path / "home"),
    )
    return start_cli(tmp_path, env, "serve", log=tmp_path / "serve.log")


async def until(what: str, predicate: Callable[[], object], within: float = 120.0) -> None:
    """Wait for *predicate()*; the servers here are other processes, so look again every 50 ms."""
    try:
        with anyio.fail_after(within):
            while not predicate():
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def bot_says(bot: FakeBotApi, start: str) -> BotMessage | None:
    return next((m for m in bot.bot_messages(DEV.id) if (m.text or "").startswith(start)), None)


def kill_all(marker: str) -> None:
    for pid in alive_with(MARKER_VAR, marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_a_prompt_cut_off_by_a_kill_is_settled_and_offered_not_run_again(tmp_path: Path) -> None:
    """
    SIGKILL while the agent is mid-turn (it wrote a file and waits on the model): after the restart the redelivered
    prompt settles the turn (its file is a change to review) and asks; no model request is made until 🔁.
    """
    repo = make_repo(tmp_path / "ws")
    marker = "interrupted-turn-" + tmp_path.name
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot, FakeAnthropicApi() as anthropic:
        # chosen once the fakes hold their ports: serve's port must not be one of theirs (a fake bound
        # to it after free_port() made serve fail to start and the fake deliver updates to itself)
        port = free_port()
        bot.add_chat(DEV)
        # The model has the agent write a file, then takes its time over the next answer: the turn is mid-way.
        anthropic.script(Reply.tool(write_file("notes.txt", "half done\n")), Reply.text("too late", delay_s=60))
        first = serve(tmp_path, port, bot, anthropic, marker)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            await BOT.set_webhook(bot.base_url, port)
            await bot.send_text("write the notes", user=DEV)
            await until(
                "the agent wrote notes.txt and asked the model again",
                lambda: (repo / "notes.txt").exists() and len(anthropic.requests) >= 2,
            )
        finally:
            first.kill()  # SIGKILL: nothing settles, nothing is marked done
            first.wait()
            kill_all(marker)  # the machine went down: its agent too
        asked_before = len(anthropic.requests)
        await until("the cut-off agent is gone", lambda: not alive_with(MARKER_VAR, marker), within=30)

        second = serve(tmp_path, port, bot, anthropic, marker)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            await until("the offer to run it again", lambda: bot_says(bot, "↩️ Not run again"))
            await until(
                "the cut-off turn's change to review",
                lambda: any(
                    "notes.txt" in (m.text or "") and any(d.startswith("a:") for d in m.callback_datas())
                    for m in bot.bot_messages(DEV.id)
                ),
            )
            offer = bot_says(bot, "↩️ Not run again")
            assert offer is not None
            settled_without_a_run = len(anthropic.requests) == asked_before

            anthropic.script(Reply.text("Ran it again."))
            await bot.press(offer.message_id, "g::", user=DEV)
            await until(
                "the answer of the run 🔁 started",
                lambda: any("Ran it again." in (m.text or "") for m in bot.bot_messages(DEV.id)),
            )
            asked_after = len(anthropic.requests)
        finally:
            second.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(second.wait, 60)
            kill_all(marker)

    texts = [m.text or "" for m in bot.bot_messages(DEV.id)]
    assert settled_without_a_run, texts
    assert asked_after > asked_before
    assert "write the notes" in (offer.text or "")
    assert (repo / "notes.txt").read_text() == "half done\n"
    assert sum(t.startswith("↩️ Not run again") for t in texts) == 1
    assert alive_with(MARKER_VAR, marker) == [], describe(alive_with(MARKER_VAR, marker))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
