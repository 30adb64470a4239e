"""
Shared by the tests that drive the REAL Claude Code CLI against the fake Messages API on 127.0.0.1.

Each agent gets an isolated HOME and CLAUDE_CONFIG_DIR, ANTHROPIC_BASE_URL pointing at `FakeAnthropicApi`
and a dummy key (the adapter adds the quiet env vars); its environment carries a marker so a test can find
every process it left. Tests are skipped only when the CLI is not installed (`python3 dev.py test`).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent_processes import alive_with
from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.simulators.anthropic import FakeAnthropicApi

REPO = Path(__file__).resolve().parents[1]
MARKER_VAR = "VOICECODER_TEST_RUN"


def find_claude() -> Path | None:
    candidates = [Path(p) for p in [os.environ.get("VOICECODER_CLAUDE_BIN")] if p]
    candidates.append(REPO / ".tools" / "claude" / "node_modules" / ".bin" / "claude")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CLAUDE = find_claude()
PINNED = (REPO / "requirements" / "claude-code-version.txt").read_text().strip()

needs_cli = [
    pytest.mark.real_cli,
    pytest.mark.skipif(
        CLAUDE is None,
        reason="Claude Code CLI not installed: run `python3 dev.py test` or set VOICECODER_CLAUDE_BIN",
    ),
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    (path / "README.md").write_text("# demo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "init")
    return path


AgentFactory = Callable[..., ClaudeCliAgent]


async def agent_factory(tmp_path: Path, repo: Path, api: FakeAnthropicApi, marker: str) -> AsyncIterator[AgentFactory]:
    """Yields ``make(env=None, **config)``; afterwards every agent is closed and none of their processes is left."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    assert CLAUDE is not None
    made: list[ClaudeCliAgent] = []

    def make(env: dict[str, str] | None = None, **config: Any) -> ClaudeCliAgent:
        options: dict[str, Any] = {
            "timeout_s": 90.0,
            "max_retries": 1,
            "grace_s": 1.0,
            "config_dir": home / ".claude",
            "binary": str(CLAUDE),
        }
        options.update(config)
        cfg = ClaudeCliConfig(
            workdir=repo,
            extra_env={
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_DATA_HOME": str(home / ".local" / "share"),
                "ANTHROPIC_BASE_URL": api.base_url,
                "ANTHROPIC_API_KEY": "dummy-key",
                MARKER_VAR: marker,
                **(env or {}),
            },
            **options,
        )
        agent = ClaudeCliAgent(cfg)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.aclose()
    assert alive_with(MARKER_VAR, marker) == []


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Path:
    """A git repository with one commit: the agent's workspace."""
    return make_repo(tmp_path / "repo")


@pytest.fixture(name="api")
async def api_fixture() -> AsyncIterator[FakeAnthropicApi]:
    """The fake Messages API the CLI talks to (it records every request)."""
    async with FakeAnthropicApi() as api:
        yield api


@pytest.fixture(name="marker")
def marker_fixture() -> str:
    """The value of the environment marker every process of the test's agents carries."""
    return uuid.uuid4().hex


@pytest.fixture(name="make_agent")
async def make_agent_fixture(
    tmp_path: Path, repo: Path, api: FakeAnthropicApi, marker: str
) -> AsyncIterator[AgentFactory]:
    """Agents on the real CLI, isolated from the user's ~/.claude; afterwards no process may be left."""
    async for make in agent_factory(tmp_path, repo, api, marker):
        yield make
