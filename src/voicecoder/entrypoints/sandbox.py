"""
`voicecoder sandbox`: voicecoder on its embedded defaults, no Telegram token and no cloud keys.

It runs the real webhook server against the embedded local Bot API (`voicecoder.testing.fake_bot_api`), serves
the web chat page on 127.0.0.1, creates a git workspace and a data dir, transcribes with the local model, and
runs the real `claude` CLI when it is installed and logged in. Otherwise every prompt is answered with what to
install or set. With `demo_agent=True` the real CLI talks to the local fake Anthropic API instead, so the whole
approve/reject flow works offline.
"""

from __future__ import annotations

import functools
import getpass
import importlib.util
import logging
import os
import re
import secrets
import shutil
from pathlib import Path

import anyio
import anyio.abc
import attrs
from aiohttp import web
from dependency_injector import providers

from voicecoder.adapters.claude import UnavailableAgent
from voicecoder.bootstrap import Container, build_container, open_runtime
from voicecoder.config import Config
from voicecoder.entrypoints.polling import ALLOWED_UPDATES
from voicecoder.entrypoints.sandbox_web import create_sandbox_web_app
from voicecoder.entrypoints.server import serve
from voicecoder.entrypoints.signals import stop_on_signal
from voicecoder.testing.fake_anthropic import FakeAnthropicApi, demo_responder
from voicecoder.testing.fake_bot_api import FakeBotApi
from voicecoder.testing.fakes import FakeTranscriber

log = logging.getLogger(__name__)

SANDBOX_USER = 4242
SANDBOX_TOKEN = "4242424242:sandbox-token-not-a-real-telegram-bot-xx"  # noqa: S105 - the local fake's token
REPO_CLAUDE = Path(__file__).resolve().parents[3] / ".tools" / "claude" / "node_modules" / ".bin" / "claude"


@attrs.frozen
class SandboxInfo:
    url: str
    workspace: Path
    agent: str
    speech: str


def find_claude() -> str | None:
    """The CLI from $CLAUDE_BINARY, PATH, or the copy `python3 dev.py run` installs into .tools/."""
    for candidate in (os.environ.get("CLAUDE_BINARY"), os.environ.get("VOICECODER_CLAUDE_BIN")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("claude")
    if found:
        return found
    return str(REPO_CLAUDE) if REPO_CLAUDE.is_file() else None


def sandbox_config(root: Path, *, bot_api_url: str, claude: str | None, claude_env: dict[str, str]) -> Config:
    return Config(
        telegram_token=SANDBOX_TOKEN,
        telegram_api_base=bot_api_url,
        allowed_user_ids=frozenset({SANDBOX_USER}),
        webhook_path="/telegram/" + secrets.token_urlsafe(16),
        webhook_secret=secrets.token_urlsafe(32),
        listen_host="127.0.0.1",
        listen_port=0,
        workspace_dir=root / "workspace",
        data_dir=root / "data",
        stt_backend="local",
        claude_binary=claude or "claude",
        claude_env=claude_env,
        claude_timeout_s=300.0,
    )


async def _agent_status(container: Container) -> tuple[bool, str, str]:
    problems = [d for d in await container.claude().diagnose() if not d.ok]
    if not problems:
        return True, "", ""
    first = problems[0]
    return False, first.detail, first.fix or "install and log in to the Claude Code CLI"


async def run_sandbox(
    root: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    demo_agent: bool = False,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    task_status: anyio.abc.TaskStatus[SandboxInfo] = anyio.TASK_STATUS_IGNORED,
) -> None:
    root = Path(await anyio.Path(root).absolute())
    await anyio.Path(root).mkdir(parents=True, exist_ok=True)
    stop = stop or anyio.Event()
    claude = find_claude()
    async with (
        FakeBotApi(SANDBOX_TOKEN, time_scale=0.05) as bot_api,
        FakeAnthropicApi(default=demo_responder) as anthropic,
    ):
        claude_env: dict[str, str] = {}
        if demo_agent:
            # The fake API answers as a scripted model; an isolated config dir keeps the real login untouched.
            claude_env = {"ANTHROPIC_BASE_URL": anthropic.base_url, "ANTHROPIC_API_KEY": "sandbox-demo"}
        config = sandbox_config(root, bot_api_url=bot_api.base_url, claude=claude, claude_env=claude_env)
        if demo_agent:
            config = attrs.evolve(config, claude_config_dir=root / "claude-demo-config")
        container = build_container(config)
        agent_ok, reason, fix = await _agent_status(container)
        if not agent_ok:
            demo_hint = " Or restart with `python3 dev.py run --demo-agent` to try the whole flow offline."
            container.agent.override(providers.Object(UnavailableAgent(reason, fix + demo_hint)))
        speech = f"local whisper ({config.whisper_model})"
        if importlib.util.find_spec("faster_whisper") is None:
            container.speech_engine.override(providers.Object(FakeTranscriber()))
            speech = "unavailable: install the local-stt extra (python3 dev.py run does)"
        async with open_runtime(container), anyio.create_task_group() as tg:
            bound = await tg.start(_serve, container, stop)
            await container.bot_api().set_webhook(
                f"http://127.0.0.1:{bound}{config.webhook_path}",
                secret_token=config.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
            web_app = create_sandbox_web_app(
                bot_api, user_id=SANDBOX_USER, chat_id=SANDBOX_USER, user_name=sandbox_user_name()
            )
            runner = web.AppRunner(web_app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port).start()
                web_port = int(runner.addresses[0][1])
                agent = "Claude Code CLI" if agent_ok else f"unavailable ({reason})"
                if demo_agent and agent_ok:
                    agent = "Claude Code CLI against the local fake Anthropic API (demo)"
                info = SandboxInfo(f"http://{host}:{web_port}/", config.workspace_dir.resolve(), agent, speech)
                log.info("sandbox ready at %s (agent: %s; speech: %s)", info.url, agent, speech)
                task_status.started(info)
                if handle_signals:
                    tg.start_soon(functools.partial(stop_on_signal, stop, label="sandbox"))
                await stop.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    await runner.cleanup()
            tg.cancel_scope.cancel()


def sandbox_user_name() -> str:
    """The first name the sandbox's Telegram user has: the login name, as a person would write it."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        login = ""
    name = re.split(r"[^A-Za-z0-9]+", login)[0] if login else ""
    return name.capitalize() if name and name != "root" else "Developer"


async def _serve(
    container: Container, stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    await serve(container, stop=stop, handle_signals=False, task_status=task_status)
