"""The AgentRunner contract, run on FakeAgentRunner and on ClaudeCliAgent driving the fake CLI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import anyio
import pytest

from voicecoder.adapters.claude_cli_agent import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.domain.ports import AgentRunner
from voicecoder.testing.contracts.agent_runner import AgentRunnerContract
from voicecoder.testing.fakes import FakeAgentRunner

FAKE_CLAUDE = Path(__file__).resolve().parents[1] / "fakes" / "fake_claude.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def alive_with(var: str, value: str) -> list[int]:
    """Pids of live (non-zombie) processes whose environment has var=value."""
    needle = f"{var}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            pids.append(int(entry.name))
    return pids


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
