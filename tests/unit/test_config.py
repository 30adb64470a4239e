from __future__ import annotations

from pathlib import Path

import pytest

from voicecoder.config import Config, read_dotenv
from voicecoder.domain.errors import ConfigurationError

TOKEN = "123456789:AAHfakefakefakefakefakefakefakefake12"


class TestConfig:
    def test_defaults_need_nothing(self) -> None:
        """
        With no variables at all the config is valid: local STT, webhook transport, a random secret path.
        """
        config = Config.from_mapping({})

        assert config.stt_backend == "local"
        assert config.webhook_path.startswith("/telegram/")
        assert config.telegram_token is None

    def test_full_environment(self, tmp_path: Path) -> None:
        """
        Every documented variable is read and converted.
        """
        config = Config.from_mapping(
            {
                "TELEGRAM_TOKEN": TOKEN,
                "ALLOWED_USER_IDS": "1, 2 3",
                "TRANSPORT": "polling",
                "WORKSPACE_DIR": str(tmp_path / "ws"),
                "STT_PROVIDER": "deepgram",
                "DEEPGRAM_API_KEY": "dg-key-123456",
                "LISTEN_PORT": "9000",
                "MAX_AUDIO_MB": "5",
                "AUTO_APPROVE_PATHS": "docs/*,*.md",
                "ANTHROPIC_API_KEY": "sk-ant-xyz",
            }
        )

        assert config.allowed_user_ids == frozenset({1, 2, 3})
        assert config.transport == "polling"
        assert config.workspace_dir == tmp_path / "ws"
        assert config.listen_port == 9000
        assert config.max_audio_bytes == 5_000_000
        assert config.auto_approve_paths == ("docs/*", "*.md")
        assert config.claude_env == {"ANTHROPIC_API_KEY": "sk-ant-xyz"}

    @pytest.mark.parametrize(
        ("env", "variable"),
        [
            ({"TELEGRAM_TOKEN": "nope"}, "TELEGRAM_TOKEN"),
            ({"ALLOWED_USER_IDS": "alice"}, "ALLOWED_USER_IDS"),
            ({"STT_PROVIDER": "whisperx"}, "STT_PROVIDER"),
            ({"STT_PROVIDER": "assemblyai"}, "ASSEMBLYAI_API_KEY"),
            ({"LISTEN_PORT": "99999"}, "LISTEN_PORT"),
            ({"PUBLIC_URL": "http://insecure.example"}, "PUBLIC_URL"),
            ({"WEBHOOK_SECRET": "has spaces"}, "WEBHOOK_SECRET"),
        ],
    )
    def test_errors_name_the_variable(self, env: dict[str, str], variable: str) -> None:
        """
        An invalid value stops start-up with the variable's name in the message.
        """
        with pytest.raises(ConfigurationError, match=variable):
            Config.from_mapping(env)

    def test_secrets_stay_out_of_repr_and_errors(self) -> None:
        """
        repr() never shows the token or keys; a bad token is not echoed back.
        """
        config = Config.from_mapping({"TELEGRAM_TOKEN": TOKEN, "WEBHOOK_SECRET": "s3cr3t-value"})

        assert TOKEN not in repr(config)
        assert "s3cr3t-value" not in repr(config)
        with pytest.raises(ConfigurationError) as info:
            Config.from_mapping({"TELEGRAM_TOKEN": "123:short-secret-value"})
        assert "short-secret-value" not in str(info.value)

    def test_dotenv_is_read_and_environment_wins(self, tmp_path: Path) -> None:
        """
        .env supplies defaults; real environment variables override them.
        """
        dotenv = tmp_path / ".env"
        dotenv.write_text("# comment\nexport LISTEN_PORT=7000\nLOG_LEVEL='DEBUG'\nLISTEN_HOST=0.0.0.0 # all\n")

        config = Config.from_env({"LISTEN_PORT": "7001"}, dotenv=dotenv)

        assert read_dotenv(dotenv)["LISTEN_HOST"] == "0.0.0.0"
        assert (config.listen_port, config.log_level) == (7001, "DEBUG")


class TestToolApprovalConfig:
    def test_defaults(self) -> None:
        """
        By default tools are approved in auto-edits mode with a 10 minute timeout and no extra rules.
        """
        config = Config.from_mapping({})

        assert (config.tool_approval, config.tool_approval_timeout_s, config.tool_allow) == ("auto-edits", 600.0, ())
        assert config.claude_permission_mode is None

    def test_tool_settings_are_read(self) -> None:
        """
        TOOL_APPROVAL, TOOL_APPROVAL_TIMEOUT, TOOL_ALLOW (commas inside a rule kept) and the passthrough names.
        """
        config = Config.from_mapping(
            {
                "TOOL_APPROVAL": "ask",
                "TOOL_APPROVAL_TIMEOUT": "90",
                "TOOL_ALLOW": "Bash(pytest *), Bash(git log, status), WebFetch(domain:docs.python.org)\nEdit",
                "AGENT_ENV_PASSTHROUGH": "AWS_REGION, GOOGLE_APPLICATION_CREDENTIALS",
                "AWS_REGION": "eu-west-1",
                "CLAUDE_KEEP_WARM": "0",
            }
        )

        assert config.tool_approval == "ask"
        assert config.tool_approval_timeout_s == 90
        assert config.tool_allow == (
            "Bash(pytest *)",
            "Bash(git log, status)",
            "WebFetch(domain:docs.python.org)",
            "Edit",
        )
        assert config.agent_env_passthrough == ("AWS_REGION", "GOOGLE_APPLICATION_CREDENTIALS")
        assert config.claude_env["AWS_REGION"] == "eu-west-1"
        assert config.claude_keep_warm_s == 0

    @pytest.mark.parametrize(
        ("env", "needle"),
        [
            ({"TOOL_APPROVAL": "sometimes"}, "TOOL_APPROVAL"),
            ({"TOOL_APPROVAL_TIMEOUT": "soon"}, "TOOL_APPROVAL_TIMEOUT"),
            ({"TOOL_ALLOW": "Bash(pytest *"}, "TOOL_ALLOW"),
            ({"AGENT_ENV_PASSTHROUGH": "TELEGRAM_TOKEN"}, "one of voicecoder's own settings"),
            ({"AGENT_ENV_PASSTHROUGH": "WEBHOOK_SECRET,PATH"}, "WEBHOOK_SECRET"),
            ({"AGENT_ENV_PASSTHROUGH": "not-a-name"}, "not an environment variable name"),
            ({"CLAUDE_PERMISSION_MODE": "yolo"}, "CLAUDE_PERMISSION_MODE"),
        ],
    )
    def test_errors_name_the_variable(self, env: dict[str, str], needle: str) -> None:
        """
        Each malformed tool setting is refused with a message naming it.
        """
        with pytest.raises(ConfigurationError, match=needle):
            Config.from_mapping(env)

    def test_bypass_is_refused_unless_understood(self) -> None:
        """
        bypassPermissions is refused at start with what it disables; I_UNDERSTAND_BYPASS=1 lets it through.
        """
        with pytest.raises(ConfigurationError) as info:
            Config.from_mapping({"CLAUDE_PERMISSION_MODE": "bypassPermissions"})
        allowed = Config.from_mapping({"CLAUDE_PERMISSION_MODE": "bypassPermissions", "I_UNDERSTAND_BYPASS": "1"})

        message = str(info.value)
        assert "destructive-command gate" in message
        assert "outside the workspace" in message
        assert "I_UNDERSTAND_BYPASS=1" in message
        assert allowed.claude_permission_mode == "bypassPermissions"

    def test_an_empty_config_dir_means_unset(self) -> None:
        """
        CLAUDE_CONFIG_DIR= (empty, as .env.example had it) is unset, not the current directory.
        """
        assert Config.from_mapping({"CLAUDE_CONFIG_DIR": ""}).claude_config_dir is None
        assert Config.from_mapping({"CLAUDE_CONFIG_DIR": "   "}).claude_config_dir is None

    @pytest.mark.parametrize("inside", ["ws/.claude", "ws"])
    def test_a_config_dir_inside_the_workspace_is_refused(self, tmp_path: Path, inside: str) -> None:
        """
        The CLI's login and transcripts must never land in the repository: such a config dir stops the start.
        """
        with pytest.raises(ConfigurationError, match="inside WORKSPACE_DIR"):
            Config.from_mapping({"WORKSPACE_DIR": str(tmp_path / "ws"), "CLAUDE_CONFIG_DIR": str(tmp_path / inside)})

    def test_home_as_workspace_without_a_config_dir_is_refused(self, tmp_path: Path) -> None:
        """
        With no CLAUDE_CONFIG_DIR the CLI uses $HOME/.claude: a workspace that contains it is refused too.
        """
        with pytest.raises(ConfigurationError, match=r"\$HOME/\.claude"):
            Config.from_mapping({"WORKSPACE_DIR": str(tmp_path), "HOME": str(tmp_path)})

    def test_cli_variables_from_the_env_file_reach_the_cli(self, tmp_path: Path) -> None:
        """
        ANTHROPIC_* and CLAUDE_CODE_* from .env are the CLI's own; voicecoder settings are not among them.
        """
        dotenv = tmp_path / ".env"
        dotenv.write_text("ANTHROPIC_BASE_URL=http://127.0.0.1:9\nCLAUDE_CODE_USE_BEDROCK=1\nCLAUDE_TIMEOUT=60\n")

        config = Config.from_env({}, dotenv=dotenv)

        assert config.claude_env == {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CLAUDE_CODE_USE_BEDROCK": "1"}
