"""
`voicecoder serve --transport telethon` as a real subprocess against the local fake MTProto Telegram on 127.0.0.1.

The fake cannot do MTProto's key exchange (it needs Telegram's private RSA key; see ADR 0011), so the process
gets its login as configuration: TELETHON_SESSION_STRING holds a session string with an auth key the fake made,
which seeds the session file in DATA_DIR. Everything else is the product: API_ID/API_HASH and the bot token
checked by the fake's ``auth.importBotAuthorization``, the durable inbox, the real dulwich workspace and SQLite,
the real Claude Code CLI against the fake Anthropic API, speech through the fake Deepgram server.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from tests.agent_processes import alive_with
from tests.integration.cli_agent import isolated_env
from tests.real_cli import CLAUDE
from tests.serve_rig import CLI, cli_env, start_cli
from voicecoder.domain.app import COMMANDS
from voicecoder.simulators.anthropic import Reply, bash
from voicecoder.simulators.stt import ScriptedRecognizer
from voicecoder.testing import (
    FAKE_API_HASH,
    FAKE_API_ID,
    FAKE_BOT_TOKEN,
    FakeAnthropicApi,
    FakeDeepgramServer,
    FakeTelegram,
)

REPO = Path(__file__).resolve().parents[2]
VOICE = (REPO / "tests" / "fixtures" / "voice" / "01_create_file.ogg").read_bytes()
USER = 111111111


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


class Serve:
    """`voicecoder serve` subprocesses sharing one environment; each run logs to its own file."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = cli_env(tmp_path, **{"LOG_FORMAT": "json", **env})
        self.logs: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"serve-{len(self.logs) + 1}.log"
        self.logs.append(log)
        proc = start_cli(self.tmp_path, self.env, "serve", *args, log=log)
        self.procs.append(proc)
        return proc

    async def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        return await anyio.to_thread.run_sync(proc.wait, 60)

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(name="tg")
async def _tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as tg:
        yield tg


def base_env(tmp_path: Path, tg: FakeTelegram) -> dict[str, str]:
    return {
        "TRANSPORT": "telethon",
        "TELEGRAM_TOKEN": FAKE_BOT_TOKEN,
        "API_ID": str(FAKE_API_ID),
        "API_HASH": FAKE_API_HASH,
        "TELETHON_SESSION_STRING": tg.session_string(),
        "ALLOWED_USER_IDS": str(USER),
        "WORKSPACE_DIR": str(tmp_path / "ws"),
        "DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture(name="serve")
def _serve(tmp_path: Path) -> Iterator[list[Serve]]:
    made: list[Serve] = []
    yield made
    for serve in made:
        serve.kill_all()


class TestConfiguration:
    async def test_api_id_and_hash_are_required_and_explained(self, tmp_path: Path, tg: FakeTelegram) -> None:
        """Without API_ID/API_HASH, serve refuses at once, naming both, what they are and where to get them."""
        env = base_env(tmp_path, tg)
        del env["API_ID"], env["API_HASH"], env["TRANSPORT"]
        proc = subprocess.run(
            [*CLI, "serve", "--transport", "telethon"],
            env=cli_env(tmp_path, **env),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert proc.returncode == 2
        assert "API_ID and API_HASH" in proc.stdout
        assert "https://my.telegram.org" in proc.stdout
        assert "not the bot" in proc.stdout
        assert tg.calls == []

    async def test_wrong_api_hash_is_refused_by_telegram(self, tmp_path: Path, tg: FakeTelegram) -> None:
        """A well-formed but wrong API_HASH: Telegram says API_ID_INVALID; serve says which settings to check."""
        env = {**base_env(tmp_path, tg), "API_HASH": "0" * 32}
        serve = Serve(tmp_path, env)
        proc = serve.start()

        code = await anyio.to_thread.run_sync(proc.wait, 60)

        assert code == 2
        assert "Telegram refused API_ID/API_HASH" in serve.output()
        assert tg.calls_to("ImportBotAuthorizationRequest")
        assert FAKE_BOT_TOKEN not in serve.output()


@pytest.mark.real_cli
@pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed: run `python3 dev.py test`")
@pytest.mark.timeout(300)
async def test_serve_on_mtproto_end_to_end(tmp_path: Path, tg: FakeTelegram, serve: list[Serve]) -> None:
    """
    A session over MTProto (prompt, progress, Show Diff, Approve, voice, a tool question denied by a reply), then
    SIGTERM mid-turn: a clean exit,
    and after a restart the interrupted prompt and a message sent while the bot was down are each handled once;
    then a crash mid-turn: after a restart that turn runs once more and nothing else runs twice.
    """
    workspace = tmp_path / "ws"
    async with (
        FakeAnthropicApi() as anthropic,
        FakeDeepgramServer(recognizer=ScriptedRecognizer("create file voice.txt with spoken"), api_key="dg-key") as dg,
    ):
        env = {
            **base_env(tmp_path, tg),
            **isolated_env(tmp_path / "home", anthropic.base_url),
            "CLAUDE_BINARY": str(CLAUDE),
            "CLAUDE_CONFIG_DIR": str(tmp_path / "home" / ".claude"),
            "STT_PROVIDER": "deepgram",
            "DEEPGRAM_API_KEY": "dg-key",
            "DEEPGRAM_BASE_URL": dg.base_url,
        }
        runs = Serve(tmp_path, env)
        serve.append(runs)

        def texts(fragment: str, after: int = 0) -> list[int]:
            return [m.id for m in tg.bot_messages(USER) if m.id > after and fragment in m.text]

        async def wait_text(fragment: str, after: int = 0) -> int:
            return int((await tg.wait_for(lambda: texts(fragment, after), within=90))[0])

        async def press(message_id: int, label: str) -> None:
            await tg.press(message_id, dict(tg.messages[message_id].buttons())[label])

        first = runs.start()
        # Logged in, handlers registered: the command menu is set last, after the login.
        await tg.wait_for(lambda: tg.commands, within=90)
        assert tg.commands == list(COMMANDS)

        await tg.send_text("/start")
        await wait_text("👋 Hi")
        await tg.send_text("create file notes.txt with hello")
        working = await wait_text("Claude is working")
        summary = await wait_text("Changes ready for review", working)
        await tg.wait_for(lambda: tg.messages[working].edits and not tg.messages[working].buttons())
        await press(summary, "📝 Show Diff")
        await wait_text("+hello", summary)
        await press(summary, "✅ Approve")
        done = await wait_text("✅ Changes approved and committed!", summary)
        assert git(workspace, "show", "HEAD:notes.txt") == "hello\n"
        assert all(cb.answer is not None for cb in tg.callbacks.values())

        await tg.send_voice(VOICE, duration=2)
        heard = await wait_text("Heard: create file voice.txt", done)
        await wait_text("Changes ready for review", heard)
        assert (workspace / "voice.txt").read_text() == "spoken\n"

        # A command the agent asks to run, denied by a reply to the question: through the durable inbox the reply
        # takes the chat's answer lane, past the turn that asked; the model reads the reason.
        anthropic.script(Reply.tool(bash("touch denied.txt")), Reply.text("Understood, I left it."))
        await tg.send_text("touch a file with a command")
        question = await wait_text("Claude wants to run a command", heard)
        await tg.send_text("use make instead", reply_to=question)
        assert await wait_text("❌ Denied by Ada", question - 1) == question
        await wait_text("Understood, I left it.", question)
        assert any("use make instead" in text for r in anthropic.requests for _, text, _ in r.tool_results)
        assert not (workspace / "denied.txt").exists()

        # SIGTERM while a turn runs: the process exits cleanly; the turn is left pending in the inbox, and its prompt
        # runs again only when the user taps 🔁 (a run repeats commands and costs money).
        anthropic.script(Reply.text("never mind", stall_s=60))
        asked = len(anthropic.requests)
        await tg.send_text("think for a long time")
        await anthropic.wait_for_requests(asked + 1, 90)
        assert await runs.stop(first) == 0, runs.output()

        await tg.send_text("/help")  # while nobody is connected: Telegram keeps it for getDifference
        second = runs.start()
        # The cut-off prompt comes back from the inbox: not run again by itself, but offered (🔁).
        offer = await wait_text("Not run again: think for a long time")
        await wait_text("ℹ️ Commands")
        await press(offer, "🔁 Run it again")
        await wait_text("fake-model: think for a long time", offer)

        # A crash (SIGKILL) mid-turn: Telethon saved no update state since the last start, so the restarted client
        # gets the earlier messages again through getDifference; the inbox hands over only what never finished, and
        # the cut-off prompt is offered again rather than run.
        anthropic.script(Reply.text("never mind", stall_s=60))
        asked = len(anthropic.requests)
        await tg.send_text("think about it again")
        await anthropic.wait_for_requests(asked + 1, 90)
        second.kill()
        await anyio.to_thread.run_sync(second.wait, 30)
        orphans = alive_with("ANTHROPIC_BASE_URL", anthropic.base_url)  # the killed server could not stop its CLI
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        third = runs.start()
        offer = await wait_text("Not run again: think about it again")
        await press(offer, "🔁 Run it again")
        await wait_text("fake-model: think about it again", offer)
        assert await runs.stop(third) == 0, runs.output()

    assert len(texts("Not run again: think for a long time")) == 1
    assert len(texts("Not run again: think about it again")) == 1
    assert len(texts("fake-model: think for a long time")) == 1
    assert len(texts("fake-model: think about it again")) == 1
    assert len(texts("ℹ️ Commands")) == 1
    assert len(texts("👋 Hi")) == 1
    assert len(texts("✅ Changes approved and committed!")) == 1
    assert len([r for r in anthropic.requests if r.prompt == "think for a long time"]) == 2
    assert len([r for r in anthropic.requests if r.prompt == "think about it again"]) == 2
    assert "arrived again" in runs.logs[2].read_text()
    session = tmp_path / "data" / "telethon.session"
    assert session.stat().st_mode & 0o777 == 0o600
    output = runs.output()
    for secret in (FAKE_BOT_TOKEN, FAKE_API_HASH, env["TELETHON_SESSION_STRING"], "dg-key"):
        assert secret not in output
