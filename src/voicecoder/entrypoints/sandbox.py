"""
`voicecoder sandbox`: voicecoder on its embedded defaults, no Telegram token and no cloud keys.

It runs the real webhook server against the loopback Bot API (`voicecoder.simulators.bot_api`), serves
the web chat page on 127.0.0.1, creates a git workspace and a data dir, transcribes with the local model, and
runs the real `claude` CLI when it is installed and logged in. Otherwise every prompt is answered with what to
install or set. With `demo_agent=True` the real CLI talks to the local fake Anthropic API instead, so the whole
approve/reject flow works offline. With `projects=True` (``--projects``) the bot serves two demo projects, shop and
blog: /project and the question a first message gets switch between them.
"""

from __future__ import annotations

import functools
import getpass
import logging
import re
from pathlib import Path

import anyio
import anyio.abc
import attrs
from aiohttp import web

from voicecoder.bootstrap import Container, open_runtime
from voicecoder.bootstrap.sandbox import SANDBOX_TOKEN, SANDBOX_USER, find_claude, point_webhook_at, sandbox_container
from voicecoder.entrypoints.server import serve
from voicecoder.signals import stop_on_signal
from voicecoder.simulators.anthropic import FakeAnthropicApi, demo_responder
from voicecoder.simulators.bot_api import FakeBotApi
from voicecoder.simulators.web_chat import create_sandbox_web_app

log = logging.getLogger(__name__)


@attrs.frozen
class SandboxInfo:
    url: str
    workspace: Path
    agent: str
    speech: str


async def run_sandbox(
    root: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    demo_agent: bool = False,
    projects: bool = False,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    task_status: anyio.abc.TaskStatus[SandboxInfo] = anyio.TASK_STATUS_IGNORED,
) -> None:
    root = Path(await anyio.Path(root).absolute())
    await anyio.Path(root).mkdir(parents=True, exist_ok=True)
    stop = stop or anyio.Event()
    async with (
        FakeBotApi(SANDBOX_TOKEN, time_scale=0.05) as bot_api,
        FakeAnthropicApi(default=demo_responder) as anthropic,
    ):
        sandbox = await sandbox_container(
            root,
            bot_api_url=bot_api.base_url,
            anthropic_url=anthropic.base_url if demo_agent else None,
            projects=projects,
        )
        container = sandbox.container
        async with open_runtime(container), anyio.create_task_group() as tg:
            bound = await tg.start(_serve, container, stop)
            await point_webhook_at(container, bound)
            web_app = create_sandbox_web_app(
                bot_api, user_id=SANDBOX_USER, chat_id=SANDBOX_USER, user_name=sandbox_user_name()
            )
            runner = web.AppRunner(web_app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port).start()
                web_port = int(runner.addresses[0][1])
                config = container.settings()
                # With the demo projects, each project's tree for the sandbox user is a clone under the root.
                workspace = (config.workspaces_root if config.projects else config.workspace_dir).resolve()
                info = SandboxInfo(f"http://{host}:{web_port}/", workspace, sandbox.agent, sandbox.speech)
                log.info("sandbox ready at %s (agent: %s; speech: %s)", info.url, sandbox.agent, sandbox.speech)
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


__all__ = ["SandboxInfo", "find_claude", "run_sandbox", "sandbox_user_name"]
