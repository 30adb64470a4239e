"""Agents on the fake ``claude`` executable, closed after each test with no process of theirs left."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.agent_processes import alive_with
from tests.unit.adapters.claude.fake_cli import (
    FAKE_CLAUDE,
    SID,
)
from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig


@pytest.fixture(name="workdir")
def _workdir(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture(name="marker")
def _marker() -> str:
    return uuid.uuid4().hex


@pytest.fixture(name="record")
def _record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


@pytest.fixture(name="make_agent")
async def _make_agent(workdir: Path, marker: str, record: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """Builds agents on the fake CLI; afterwards they are closed and no process of any of them may be left."""
    made: list[ClaudeCliAgent] = []

    def make(env: Mapping[str, str] | None = None, **config: Any) -> ClaudeCliAgent:
        extra = {"VOICECODER_TEST_RUN": marker, "FAKE_CLAUDE_RECORD": str(record), **(env or {})}
        options: dict[str, Any] = {
            "binary": str(FAKE_CLAUDE),
            "grace_s": 0.5,
            "timeout_s": 30.0,
            "interrupt_grace_s": 5.0,
            "max_line_bytes": 1024 * 1024,
            "config_dir": tmp_path / "claude-config",
        }
        options.update(config)
        cfg = ClaudeCliConfig(workdir=workdir, extra_env=extra, **options)
        agent = ClaudeCliAgent(cfg, new_session_id=lambda: SID)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.aclose()
    assert alive_with("VOICECODER_TEST_RUN", marker) == []
