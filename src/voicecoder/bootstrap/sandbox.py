"""
The sandbox's container: the production container with the agent, the speech engine and the Bot API URL overridden.

`voicecoder sandbox` runs the loopback simulators (`voicecoder.simulators`) and starts what this builds: the real
webhook server against the simulated Bot API, the real Claude Code CLI when it can run (else an agent that says
what to install), the local speech model when it is installed (else a transcriber that says what to install).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import attrs
from dependency_injector import providers

from voicecoder.adapters.claude import UnavailableAgent
from voicecoder.adapters.git.provision import seed_repository
from voicecoder.adapters.stt.unavailable import UnavailableTranscriber
from voicecoder.adapters.telegram.identity import new_path, new_secret
from voicecoder.adapters.telegram.routing import ALLOWED_UPDATES
from voicecoder.bootstrap.container import Container, build_container
from voicecoder.config import Config
from voicecoder.projects_config import ProjectSpec

SANDBOX_USER = 4242
SANDBOX_TOKEN = "4242424242:sandbox-token-not-a-real-telegram-bot-xx"  # noqa: S105 - the local fake's token
REPO_CLAUDE = Path(__file__).resolve().parents[3] / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
DEMO_HINT = " Or restart with `python3 dev.py run --demo-agent` to try the whole flow offline."
#: The two demo projects of `voicecoder sandbox --projects`: name → files of its first commit.
DEMO_PROJECTS: dict[str, dict[str, str]] = {
    "shop": {"README.md": "# shop\n\nA demo project: the online shop.\n", "cart.py": "ITEMS: list[str] = []\n"},
    "blog": {"README.md": "# blog\n\nA demo project: the team blog.\n", "posts.md": "# Posts\n"},
}


@attrs.frozen
class Sandbox:
    """The sandbox's container and what it runs with, as the banner and the page say it."""

    container: Container
    agent: str
    speech: str
    agent_ok: bool
    reason: str = ""


def find_claude() -> str | None:
    """The CLI from $CLAUDE_BINARY, PATH, or the copy `python3 dev.py run` installs into .tools/."""
    for candidate in (os.environ.get("CLAUDE_BINARY"), os.environ.get("VOICECODER_CLAUDE_BIN")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("claude")
    if found:
        return found
    return str(REPO_CLAUDE) if REPO_CLAUDE.is_file() else None


def demo_projects(root: Path) -> tuple[ProjectSpec, ...]:
    """The sandbox's two demo projects under *root*/projects, created (one commit each) if missing."""
    specs = []
    for name, files in DEMO_PROJECTS.items():
        path = seed_repository(root / "projects" / name, files, f"{name}: demo project")
        specs.append(ProjectSpec(name, path=path))
    return tuple(specs)


def sandbox_config(
    root: Path, *, bot_api_url: str, claude: str | None, claude_env: dict[str, str], projects: bool = False
) -> Config:
    """
    The sandbox's configuration: the simulated Bot API, a random webhook identity, everything under *root*.

    With *projects*, the bot serves the two demo projects (`DEMO_PROJECTS`) instead of one workspace.
    """
    return Config(
        projects=demo_projects(root) if projects else (),
        workspaces_root=root / "workspaces",
        telegram_token=SANDBOX_TOKEN,
        telegram_api_base=bot_api_url,
        allowed_user_ids=frozenset({SANDBOX_USER}),
        webhook_path=new_path(),
        webhook_secret=new_secret(),
        listen_host="127.0.0.1",
        listen_port=0,
        workspace_dir=root / "workspace",
        data_dir=root / "data",
        stt_backend="local",
        claude_binary=claude or "claude",
        claude_env=claude_env,
        claude_timeout_s=300.0,
    )


async def sandbox_container(
    root: Path, *, bot_api_url: str, anthropic_url: str | None = None, projects: bool = False
) -> Sandbox:
    """
    The sandbox's container for *root*, talking to the Bot API at *bot_api_url*.

    With *anthropic_url* (the demo agent) the real CLI talks to that API instead, with a config dir of its own so
    the real login stays untouched. An agent or speech engine that cannot run here is replaced by one that answers
    with what to install or set.
    """
    claude_env: dict[str, str] = {}
    if anthropic_url is not None:
        claude_env = {"ANTHROPIC_BASE_URL": anthropic_url, "ANTHROPIC_API_KEY": "sandbox-demo"}
    config = sandbox_config(
        root, bot_api_url=bot_api_url, claude=find_claude(), claude_env=claude_env, projects=projects
    )
    if anthropic_url is not None:
        config = attrs.evolve(config, claude_config_dir=root / "claude-demo-config")
    container = build_container(config)
    problems = [d for d in await container.core.claude().diagnose() if not d.ok]
    agent_ok = not problems
    reason = problems[0].detail if problems else ""
    if problems:
        fix = problems[0].fix or "install and log in to the Claude Code CLI"
        unavailable = UnavailableAgent(reason, fix + DEMO_HINT)
        container.core.agent.override(providers.Object(unavailable))
        container.project_workspaces.add_kwargs(agent_factory=lambda _config: unavailable)
        agent = f"unavailable ({reason})"
    elif anthropic_url is not None:
        agent = "Claude Code CLI against the local fake Anthropic API (demo)"
    else:
        agent = "Claude Code CLI"
    speech = f"local whisper ({config.whisper_model})"
    if importlib.util.find_spec("faster_whisper") is None:
        fix = "install voicecoder with the local-stt extra (python3 dev.py run does)"
        container.speech.engine.override(
            providers.Object(UnavailableTranscriber("faster-whisper is not installed", fix))
        )
        speech = "unavailable: install the local-stt extra (python3 dev.py run does)"
    return Sandbox(container=container, agent=agent, speech=speech, agent_ok=agent_ok, reason=reason)


async def point_webhook_at(container: Container, port: int) -> None:
    """Register the sandbox's webhook (on 127.0.0.1:*port*) with the simulated Bot API."""
    config = container.settings()
    await container.telegram.bot_api().set_webhook(
        f"http://127.0.0.1:{port}{config.webhook_path}",
        secret_token=config.webhook_secret,
        allowed_updates=ALLOWED_UPDATES,
    )


__all__ = [
    "DEMO_PROJECTS",
    "SANDBOX_TOKEN",
    "SANDBOX_USER",
    "Sandbox",
    "demo_projects",
    "find_claude",
    "point_webhook_at",
    "sandbox_config",
    "sandbox_container",
]
