"""The composition root wires tool approval, the agent's allow-listed environment and the shared redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicecoder.bootstrap import build_container
from voicecoder.config import Config
from voicecoder.domain.policy import ToolApprovalMode

TOKEN = "123456789:AAHfakefakefakefakefakefakefakefake12"
SECRET = "webhook-secret-for-the-bootstrap-test"


def config(tmp_path: Path, **env: str) -> Config:
    return Config.from_mapping(
        {
            "TELEGRAM_TOKEN": TOKEN,
            "WEBHOOK_SECRET": SECRET,
            "WORKSPACE_DIR": str(tmp_path / "ws"),
            "DATA_DIR": str(tmp_path / "data"),
            **env,
        }
    )


class TestToolApprovalWiring:
    def test_default_wiring(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """auto-edits policy on the resolved workspace, the prompt tool on, secrets redacted and kept from the agent."""
        for name, value in {"TELEGRAM_TOKEN": TOKEN, "WEBHOOK_SECRET": SECRET, "DATA_DIR": "/srv/data"}.items():
            monkeypatch.setenv(name, value)
        container = build_container(config(tmp_path, TOOL_ALLOW="Bash(pytest *)", TOOL_APPROVAL_TIMEOUT="120"))

        settings = container.app.domain_settings()
        claude = container.core.claude()

        assert settings.tools is not None
        assert (settings.tools.mode, settings.tools.allow) == (ToolApprovalMode.AUTO_EDITS, ("Bash(pytest *)",))
        assert settings.tools.workspace == str((tmp_path / "ws").resolve())
        assert settings.tool_timeout_s == 120
        assert settings.redact(f"token {TOKEN} and {SECRET}") == "token [redacted] and [redacted]"
        assert (claude.config.ask_tools, claude.config.effective_permission_mode) == (True, "default")
        env = claude.environment()
        assert not {"TELEGRAM_TOKEN", "WEBHOOK_SECRET", "DATA_DIR"} & set(env)
        assert SECRET not in "".join(env.values())

    def test_the_agent_is_kept_from_voicecoders_own_files(self, tmp_path: Path) -> None:
        """The env file read, the data dir and the CLI's config dir are private to the policy; a parent of the
        workspace (DATA_DIR=.) cannot be, so it is left out rather than refusing every edit."""
        dotenv = tmp_path / "voicecoder.env"
        dotenv.write_text(f"TELEGRAM_TOKEN={TOKEN}\n")
        env = {"WORKSPACE_DIR": str(tmp_path / "ws"), "DATA_DIR": str(tmp_path / "data")}
        env["CLAUDE_CONFIG_DIR"] = str(tmp_path / "login")

        tools = build_container(Config.from_env(env, dotenv=dotenv)).app.domain_settings().tools
        parent = build_container(Config.from_mapping({**env, "DATA_DIR": str(tmp_path)})).app.domain_settings().tools

        assert tools is not None
        assert parent is not None
        assert tools.private == (str(tmp_path / "data"), str(dotenv), str(tmp_path / "login"))
        assert parent.private == (str(tmp_path / "login"),)

    def test_off_keeps_the_old_behaviour(self, tmp_path: Path) -> None:
        """TOOL_APPROVAL=off: no policy, no prompt tool, the CLI in acceptEdits."""
        container = build_container(config(tmp_path, TOOL_APPROVAL="off"))

        assert container.app.domain_settings().tools is None
        claude = container.core.claude()
        assert (claude.config.ask_tools, claude.config.effective_permission_mode) == (False, "acceptEdits")
