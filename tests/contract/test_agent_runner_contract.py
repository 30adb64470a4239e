"""The AgentRunner contract, run on FakeAgentRunner and on ClaudeCliAgent driving the fake CLI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import anyio
import pytest

from tests.agent_processes import alive_with
from voicecoder.adapters.claude_cli_agent import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.domain.ports import AgentRunner
from voicecoder.testing.contracts.agent_runner import AgentRunnerContract
from voicecoder.testing.fakes import FakeAgentRunner

FAKE_CLAUDE = Path(__file__).resolve().parents[1] / "fakes" / "fake_claude.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TestFakeAgentRunner(AgentRunnerContract):
    @pytest.fixture
    def runner(self) -> AgentRunner:
        return FakeAgentRunner()

    @pytest.fixture
    def hanging_runner(self) -> AgentRunner:
        return FakeAgentRunner(gate=anyio.Event())


class TestClaudeCliAgentOnFakeCli(AgentRunnerContract):
    marker = ""

    @pytest.fixture(autouse=True)
    def _marker(self) -> None:
        self.marker = uuid.uuid4().hex

    def agent(self, tmp_path: Path, **env: str) -> ClaudeCliAgent:
        workdir = tmp_path / "ws"
        workdir.mkdir(exist_ok=True)
        extra = {"VOICECODER_TEST_RUN": self.marker, "FAKE_CLAUDE_SESSIONS": str(tmp_path / "sessions"), **env}
        return ClaudeCliAgent(
            ClaudeCliConfig(workdir=workdir, binary=str(FAKE_CLAUDE), extra_env=extra, grace_s=0.5, timeout_s=30)
        )

    @pytest.fixture
    def runner(self, tmp_path: Path) -> AgentRunner:
        return self.agent(tmp_path)

    @pytest.fixture
    def hanging_runner(self, tmp_path: Path) -> AgentRunner:
        script = tmp_path / "init_only.jsonl"
        script.write_text(json.dumps({"type": "system", "subtype": "init", "session_id": "@SESSION_ID@"}) + "\n")
        return self.agent(
            tmp_path,
            FAKE_CLAUDE_SCRIPT=str(script),
            FAKE_CLAUDE_HANG="1",
            FAKE_CLAUDE_GRANDCHILD=str(tmp_path / "pids"),
        )

    def assert_nothing_left(self) -> None:
        assert alive_with("VOICECODER_TEST_RUN", self.marker) == []
