"""
`voicecoder` as the integration tests start it: a real process of the CLI with the environment a service manager
gives it (PATH and HOME, nothing else inherited from the test run) plus the variables the test names.

Every module that starts `serve` (or `doctor`, `webhook …`) builds that environment and that process here: the
interpreter running the tests, ``-m voicecoder.entrypoints.cli``, a working directory the test owns, the Whisper
hub offline. A variable given as ``""`` or None is left out, i.e. unset, as an operator who never wrote it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import aiohttp
import anyio
import attrs

CLI: Final = (sys.executable, "-m", "voicecoder.entrypoints.cli")
"""The argv prefix of `voicecoder` run by the interpreter (and the checkout) the tests run on."""


def cli_env(home: Path, /, **variables: str | None) -> dict[str, str]:
    """PATH, HOME=*home* and HF_HUB_OFFLINE=1, then *variables*; one given as "" or None is left out."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "HF_HUB_OFFLINE": "1", **variables}
    return {name: value for name, value in env.items() if value}


def serve_env(tmp_path: Path, /, *, token: str, bot_api_url: str, port: int, **variables: str | None) -> dict[str, str]:
    """
    `cli_env` plus a bot on the fake Bot API at *bot_api_url*: its token, LISTEN_PORT, DATA_DIR and WORKSPACE_DIR
    under *tmp_path* (HOME too), the local speech engine; *variables* add to or override them
    (``WORKSPACE_DIR=None`` leaves it out).
    """
    return cli_env(
        tmp_path,
        **{
            "TELEGRAM_TOKEN": token,
            "TELEGRAM_API_BASE_URL": bot_api_url,
            "LISTEN_PORT": str(port),
            "DATA_DIR": str(tmp_path / "data"),
            "WORKSPACE_DIR": str(tmp_path / "ws"),
            "STT_PROVIDER": "local",
            **variables,
        },
    )


def real_claude(claude: Path, anthropic_base_url: str, home: Path) -> dict[str, str]:
    """The variables that run the real Claude Code CLI *claude* against a local fake Anthropic API, HOME *home*."""
    return {
        "HOME": str(home),
        "CLAUDE_BINARY": str(claude),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": anthropic_base_url,
        "ANTHROPIC_API_KEY": "dummy",
    }


@attrs.frozen
class WebhookBot:
    """A bot served by webhook: its token, the path Telegram posts updates to, and the secret it sends."""

    token: str
    path: str
    secret: str

    def env(self, tmp_path: Path, bot_api_url: str, port: int, /, **variables: str | None) -> dict[str, str]:
        """`serve_env` of this bot, listening for the webhook on *port*, logging JSON; plus *variables*."""
        webhook = {"WEBHOOK_PATH": self.path, "WEBHOOK_SECRET": self.secret, "LOG_FORMAT": "json"}
        return serve_env(tmp_path, token=self.token, bot_api_url=bot_api_url, port=port, **{**webhook, **variables})

    async def set_webhook(self, bot_api_url: str, port: int) -> None:
        """Point the fake Bot API's webhook at `serve` on 127.0.0.1:*port*, as `voicecoder webhook set` would."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{bot_api_url}/bot{self.token}/setWebhook",
                json={"url": f"http://127.0.0.1:{port}{self.path}", "secret_token": self.secret},
            ) as response,
        ):
            assert response.status == 200, await response.text()


def start_cli(cwd: Path, env: Mapping[str, str], *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """
    `voicecoder ARGS` as a process in *cwd*; stdout and stderr appended to *log*, or piped (merged) without one.
    """
    if log is None:
        return subprocess.Popen([*CLI, *args], env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with log.open("ab") as sink:
        return subprocess.Popen([*CLI, *args], env=dict(env), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)


async def run_cli(cwd: Path, env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    """Run `voicecoder ARGS` in *cwd* to its end; (exit code, stdout, stderr)."""
    done = await anyio.run_process([*CLI, *args], env=dict(env), cwd=cwd, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()
