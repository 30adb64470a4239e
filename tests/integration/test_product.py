"""The product as a user meets it: the sandbox, `voicecoder doctor`, and `voicecoder serve` surviving SIGTERM."""

from __future__ import annotations

import functools
import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.loopback import free_port, wait_http
from tests.serve_rig import CLI, WebhookBot, cli_env, start_cli
from voicecoder.bootstrap import sandbox as sandbox_module
from voicecoder.entrypoints.sandbox import SandboxInfo, find_claude, run_sandbox
from voicecoder.simulators.bot_api import FakeBotApi, FakeUser

REPO = Path(__file__).resolve().parents[2]
FAKE_CLAUDE = REPO / "tests" / "fakes" / "fake_claude.py"
VOICE = REPO / "tests" / "fixtures" / "voice"
HEADERS = {"X-Voicecoder-Sandbox": "1"}
TOKEN = "5555555:integration-test-token-not-real-abcdefgh"
BOT = WebhookBot(TOKEN, "/telegram/integration-path", "integration-secret")


def git(workspace: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=workspace, check=True, capture_output=True, text=True).stdout


async def wait_for(
    http: aiohttp.ClientSession, url: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
) -> list[dict[str, Any]]:
    with anyio.fail_after(timeout):
        while True:
            async with http.get(url + "api/conversation") as response:
                messages: list[dict[str, Any]] = (await response.json())["messages"]
            if done(messages):
                return messages
            await anyio.sleep(0.2)


def approve_button(message: dict[str, Any]) -> dict[str, str] | None:
    return next((b for row in message["buttons"] for b in row if b["text"].startswith("✅")), None)


def bot_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["html"] for m in messages if m["from"] == "bot"]


@pytest.fixture
async def sandbox(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[SandboxInfo, aiohttp.ClientSession]]:
    demo = bool(getattr(request, "param", False))
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        info = await tg.start(
            functools.partial(run_sandbox, tmp_path / "sbx", port=0, demo_agent=demo, stop=stop, handle_signals=False)
        )
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            yield info, http
        stop.set()


class TestSandbox:
    @pytest.mark.parametrize("sandbox", [True], indirect=True)
    async def test_prompt_to_approved_commit(self, sandbox: tuple[SandboxInfo, aiohttp.ClientSession]) -> None:
        """
        In the sandbox with the real CLI on the fake Anthropic API: a prompt creates a file, Approve commits it.
        """
        if find_claude() is None:
            pytest.skip(reason="Claude Code CLI not installed (python3 dev.py test installs it with npm)")
        info, http = sandbox
        await http.post(info.url + "api/send", json={"text": "create file hello.txt with hi there"})

        messages = await wait_for(http, info.url, lambda ms: any(approve_button(m) for m in ms))
        change = next(m for m in messages if approve_button(m))
        approve = approve_button(change)
        assert approve is not None
        await http.post(info.url + "api/press", json={"message_id": change["id"], "data": approve["callback_data"]})
        await wait_for(http, info.url, lambda ms: any("approved and committed" in t for t in bot_texts(ms)))

        assert (info.workspace / "hello.txt").read_text() == "hi there\n"
        log = git(info.workspace, "log", "--format=%s%n%b", "-1")
        assert log.startswith("Apply changes from Claude")
        assert "Prompt: create file hello.txt with hi there" in log
        assert git(info.workspace, "status", "--porcelain") == ""
        assert "hello.txt" in git(info.workspace, "show", "--stat", "HEAD")

    @pytest.mark.parametrize("sandbox", [True], indirect=True)
    async def test_overlap_with_my_edits_is_chosen_on_the_page(
        self, sandbox: tuple[SandboxInfo, aiohttp.ClientSession]
    ) -> None:
        """
        The developer's own uncommitted hello.txt, overwritten by Claude: the page shows the file marked and the
        two choice buttons instead of Approve; "Commit with my edits" commits Claude's file.
        """
        if find_claude() is None:
            pytest.skip(reason="Claude Code CLI not installed (python3 dev.py test installs it with npm)")
        info, http = sandbox
        (info.workspace / "hello.txt").write_text("my draft\n")
        await http.post(info.url + "api/send", json={"text": "create file hello.txt with hi there"})

        messages = await wait_for(http, info.url, lambda ms: any(approve_button(m) for m in ms))
        change = next(m for m in messages if approve_button(m))
        labels = [b["text"] for row in change["buttons"] for b in row]
        mine = next(b for row in change["buttons"] for b in row if b["text"] == "✅ Commit with my edits")
        await http.post(info.url + "api/press", json={"message_id": change["id"], "data": mine["callback_data"]})
        await wait_for(http, info.url, lambda ms: any("approved and committed" in t for t in bot_texts(ms)))

        assert "also has your uncommitted edits" in change["html"]
        assert labels[:2] == ["✅ Commit with my edits", "✅ Leave this file out"]
        assert "✅ Approve" not in labels
        assert git(info.workspace, "show", "HEAD:hello.txt") == "hi there\n"
        assert git(info.workspace, "status", "--porcelain") == ""

    async def test_without_claude_every_prompt_says_what_to_do(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        With no usable CLI the sandbox still answers: the reply says what to install or set, and nothing changes.
        """
        monkeypatch.setattr(sandbox_module, "find_claude", lambda: None)
        monkeypatch.setenv("PATH", "/nonexistent")
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            info = await tg.start(
                functools.partial(run_sandbox, tmp_path / "sbx", port=0, stop=stop, handle_signals=False)
            )
            async with aiohttp.ClientSession(headers=HEADERS) as http:
                await http.post(info.url + "api/send", json={"text": "refactor everything"})
                await wait_for(http, info.url, lambda ms: any("can't run Claude Code" in t for t in bot_texts(ms)))
                # The chat's next message is handled after the turn has fully settled: anything the turn still
                # had to say is in the chat by the time /help is answered.
                await http.post(info.url + "api/send", json={"text": "/help"})
                messages = await wait_for(http, info.url, lambda ms: any("Commands" in t for t in bot_texts(ms)))
            stop.set()

        texts = bot_texts(messages)
        (answer,) = [t for t in texts if "can't run Claude Code" in t]
        assert "To fix it" in answer
        assert "install" in answer.lower()
        assert answer.count("⚠️") == 1  # the reason is said once, not again as a separate error line
        assert any(t.startswith("⚠️ Claude stopped after") for t in texts)
        assert not any("No git changes" in t or "Claude finished" in t for t in texts)

    @pytest.mark.slow
    async def test_voice_note_is_heard(self, sandbox: tuple[SandboxInfo, aiohttp.ClientSession]) -> None:
        """
        A real voice note goes through the local model and comes back as "🎤 Heard: …".
        """
        info, http = sandbox
        clip = (VOICE / "04_list_python.ogg").read_bytes()
        async with http.post(
            info.url + "api/voice", data=clip, headers={"Content-Type": "audio/ogg", "X-Recorded": "1"}
        ) as response:
            assert response.status == 200, await response.text()

        messages = await wait_for(http, info.url, lambda ms: any("Heard" in t for t in bot_texts(ms)), timeout=120)

        heard = next(t for t in bot_texts(messages) if "Heard" in t)
        assert "python files" in heard.lower()


class TestDoctor:
    def test_doctor_explains_every_missing_piece(self, tmp_path: Path) -> None:
        """
        `voicecoder doctor` lists every check, and each failing line carries its fix; the exit code says it failed.
        """
        env = cli_env(
            tmp_path,
            WORKSPACE_DIR=str(tmp_path / "ws"),
            DATA_DIR=str(tmp_path / "data"),
            CLAUDE_BINARY=str(tmp_path / "no-claude-here"),
        )
        done = subprocess.run(
            [*CLI, "doctor"],
            check=False,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert done.returncode == 1, done.stderr
        out = done.stdout
        assert "❌ telegram token" in out
        assert "→ create a bot with @BotFather" in out
        assert "❌ allowed users" in out
        assert "❌ Claude Code CLI" in out
        assert "✅ data dir" in out
        assert "python" in out


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(TOKEN, time_scale=0.02) as api:
        yield api


def start_serve(tmp_path: Path, bot_api: FakeBotApi, port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = BOT.env(tmp_path, bot_api.base_url, port, ALLOWED_USER_IDS="1001", CLAUDE_BINARY=str(FAKE_CLAUDE), **extra)
    return start_cli(tmp_path, env, "serve")


class TestServe:
    async def test_sigterm_mid_turn_loses_nothing(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """
        SIGTERM while the agent works: the server stops cleanly, and after a restart the prompt is answered once.
        """
        port = free_port()
        dev = FakeUser(id=1001, first_name="Dev")
        bot_api.add_chat(dev)
        # The agent's environment is an allow-list: the fake CLI's knob must be passed through by name.
        slow = {"FAKE_CLAUDE_LINE_DELAY": "1.5", "AGENT_ENV_PASSTHROUGH": "FAKE_CLAUDE_LINE_DELAY"}
        proc = start_serve(tmp_path, bot_api, port, slow)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz")
            await BOT.set_webhook(bot_api.base_url, port)
            await bot_api.send_text("explain the code", user=dev)
            with anyio.fail_after(30):
                while not any("working" in (m.text or "").lower() for m in bot_api.messages.values()):
                    await anyio.sleep(0.1)

            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            code = await anyio.to_thread.run_sync(proc.wait, 60)
            assert code == 0
            assert time.monotonic() - started < 30
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            first_log = proc.stdout.read().decode()
            proc.stdout.close()

        restarted = start_serve(tmp_path, bot_api, port, {})
        try:
            await wait_http(f"http://127.0.0.1:{port}/readyz")
            with anyio.fail_after(60):
                while not any("Echo: explain the code" in (m.text or "") for m in bot_api.messages.values()):
                    await anyio.sleep(0.2)
            await bot_api.send_text("/help", user=dev)
            with anyio.fail_after(30):
                while not any((m.text or "").startswith("ℹ️ Commands") for m in bot_api.messages.values()):
                    await anyio.sleep(0.1)
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as metrics:
                text = await metrics.text()
        finally:
            restarted.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(restarted.wait, 60)
            assert restarted.stdout is not None
            restarted.stdout.close()

        answers = [m for m in bot_api.messages.values() if "Echo: explain the code" in (m.text or "")]
        assert len(answers) == 1, first_log
        assert 'voicecoder_updates_total{outcome="acked"} 1.0' in text
        assert re.search(r'voicecoder_updates_total\{outcome="processed"\} [1-9]', text)
        assert TOKEN not in first_log
        assert all(json.loads(line) for line in first_log.splitlines() if line.startswith("{"))
