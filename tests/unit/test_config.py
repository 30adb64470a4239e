from __future__ import annotations

from pathlib import Path

import pytest

from voicecoder.config import Config, read_dotenv
from voicecoder.domain.errors import ConfigurationError

TOKEN = "123456789:AAHfakefakefakefakefakefakefakefake12"


class TestConfig:
    def test_defaults_need_nothing(self) -> None:
        """
        With no variables at all the config is valid: local STT, webhook transport, and no webhook path or secret
        until the CLI resolves them (never a silent random default that `serve` and `webhook set` disagree on).
        """
        config = Config.from_mapping({})

        assert config.stt_backend == "local"
        assert (config.webhook_path, config.webhook_secret) == (None, None)
        assert config.telegram_token is None
        with pytest.raises(ConfigurationError, match="WEBHOOK_PATH"):
            config.require_webhook_identity()

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
