"""The AgentRunner contract, run on FakeAgentRunner and on ClaudeCliAgent driving the fake CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.agent_processes import alive_with
from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.domain.errors import AgentNotInstalledError, AgentTimeoutError
from voicecoder.domain.model import ToolKind, ToolRequest
from voicecoder.domain.ports import AgentRunner
from voicecoder.testing.contracts.agent_runner import AgentRunnerContract
from voicecoder.testing.fakes import AgentScript, FakeAgentRunner

FAKE_CLAUDE = Path(__file__).resolve().parents[1] / "fakes" / "fake_claude.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TestFakeAgentRunner(AgentRunnerContract):
    """The in-memory fake: 'nothing left' means no run and no tool question in progress."""

    fakes: list[FakeAgentRunner]

    @pytest.fixture(autouse=True)
    def _track(self) -> None:
        self.fakes = []

    def fake(self, *scripts: AgentScript, **options: Any) -> FakeAgentRunner:
        runner = FakeAgentRunner(**options)
        runner.script(*scripts)
        self.fakes.append(runner)
        return runner

    @pytest.fixture
    def runner(self) -> AgentRunner:
        return self.fake()

    @pytest.fixture
    def hanging_runner(self) -> AgentRunner:
        return self.fake(gate=anyio.Event())

    @pytest.fixture
    def asking_runner(self) -> AgentRunner:
        return self.fake(AgentScript(asks=(ToolRequest("q1", "Bash", ToolKind.SHELL, "Bash: ls", command="ls"),)))

    @pytest.fixture
    def missing_runner(self) -> AgentRunner:
        return self.fake(AgentScript(raises=AgentNotInstalledError("fake-claude")))

    @pytest.fixture
    def slow_runner(self) -> AgentRunner:
        return self.fake(AgentScript(raises=AgentTimeoutError(1)))

    @pytest.fixture
    def crashing_runner(self) -> AgentRunner:
        return self.fake(AgentScript(error="crashed"), compact_error="crashed")

    def assert_nothing_left(self, *, idle_agent_may_remain: bool = False) -> None:
        assert [(f.running, f.waiting_on_tool) for f in self.fakes] == [(0, 0)] * len(self.fakes)


class TestClaudeCliAgentOnFakeCli(AgentRunnerContract):
    """The real adapter on the fake CLI: 'nothing left' is checked on /proc by the run's environment marker."""

    marker = ""
    agents: list[ClaudeCliAgent]

    @pytest.fixture(autouse=True)
    async def _lifecycle(self) -> AsyncIterator[None]:
        self.marker = uuid.uuid4().hex
        self.agents = []
        yield
        for agent in self.agents:
            await agent.aclose()
        assert alive_with("VOICECODER_TEST_RUN", self.marker) == []

    def agent(
        self, tmp_path: Path, binary: Path | str = FAKE_CLAUDE, *, timeout_s: float = 30.0, **env: str
    ) -> ClaudeCliAgent:
        workdir = tmp_path / "ws"
        workdir.mkdir(exist_ok=True)
        extra = {"VOICECODER_TEST_RUN": self.marker, "FAKE_CLAUDE_SESSIONS": str(tmp_path / "sessions"), **env}
        agent = ClaudeCliAgent(
            ClaudeCliConfig(
                workdir=workdir,
                binary=str(binary),
                extra_env=extra,
                grace_s=0.5,
                timeout_s=timeout_s,
                config_dir=tmp_path / "claude-config",
            )
        )
        self.agents.append(agent)
        return agent

    def script(self, tmp_path: Path, *lines: dict[str, Any]) -> str:
        path = tmp_path / f"script-{len(list(tmp_path.glob('script-*')))}.jsonl"
        init = {"type": "system", "subtype": "init", "session_id": "@SESSION_ID@"}
        path.write_text("".join(json.dumps(o) + "\n" for o in (init, *lines)))
        return str(path)

    @pytest.fixture
    def runner(self, tmp_path: Path) -> AgentRunner:
        return self.agent(tmp_path)

    @pytest.fixture
    def hanging_runner(self, tmp_path: Path) -> AgentRunner:
        return self.agent(
            tmp_path,
            FAKE_CLAUDE_SCRIPT=self.script(tmp_path, {"@hang": True}),
            FAKE_CLAUDE_GRANDCHILD=str(tmp_path / "pids"),
        )

    @pytest.fixture
    def asking_runner(self, tmp_path: Path) -> AgentRunner:
        result = {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": "ok",
            "session_id": "@SESSION_ID@",
        }
        ask = {"@ask": {"tool_name": "Bash", "input": {"command": "ls"}, "tool_use_id": "toolu_c1"}}
        return self.agent(tmp_path, FAKE_CLAUDE_SCRIPT=self.script(tmp_path, ask, result))

    @pytest.fixture
    def missing_runner(self, tmp_path: Path) -> AgentRunner:
        return self.agent(tmp_path, binary=tmp_path / "not-installed" / "claude")

    @pytest.fixture
    def slow_runner(self, tmp_path: Path) -> AgentRunner:
        return self.agent(tmp_path, FAKE_CLAUDE_SCRIPT=self.script(tmp_path, {"@hang": True}), timeout_s=0.5)

    @pytest.fixture
    def crashing_runner(self, tmp_path: Path) -> AgentRunner:
        # No session bookkeeping: the compaction request must reach the crash, not an unknown-session answer.
        return self.agent(
            tmp_path, FAKE_CLAUDE_SCRIPT=self.script(tmp_path), FAKE_CLAUDE_EXIT="3", FAKE_CLAUDE_SESSIONS=""
        )

    def assert_nothing_left(self, *, idle_agent_may_remain: bool = False) -> None:
        alive = alive_with("VOICECODER_TEST_RUN", self.marker)
        warm = sum(len(a.warm_sessions) for a in self.agents)
        assert len(alive) <= (warm if idle_agent_may_remain else 0), alive
