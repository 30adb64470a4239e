"""The real Claude Code CLI, isolated in a test's own HOME and pointed at a fake Anthropic API."""

from __future__ import annotations

from pathlib import Path

from tests.real_cli import CLAUDE
from voicecoder.adapters import ClaudeCliAgent, ClaudeCliConfig


def isolated_env(home: Path, base_url: str) -> dict[str, str]:
    """HOME, XDG dirs and the API endpoint/key for a CLI that must not see the developer's own login."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "dummy-key",
    }


def real_cli_agent(home: Path, workspace: Path, base_url: str, **extra_env: str) -> ClaudeCliAgent:
    """`ClaudeCliAgent` on the installed CLI (skip the test first when `CLAUDE` is None)."""
    assert CLAUDE is not None
    return ClaudeCliAgent(
        ClaudeCliConfig(
            workdir=workspace,
            binary=str(CLAUDE),
            config_dir=home / ".claude",
            timeout_s=90.0,
            grace_s=1.0,
            extra_env={**isolated_env(home, base_url), **extra_env},
        )
    )
