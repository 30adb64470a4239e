from __future__ import annotations

from pathlib import Path

import pytest

from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError
from voicecoder.dotenv import read_dotenv

TOKEN = "123456789:AAHfakefakefakefakefakefakefakefake12"
REPO = Path(__file__).resolve().parents[2]


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
            ({"WHISPER_WINDOW": "10s"}, "WHISPER_WINDOW"),
        ],
    )
    def test_errors_name_the_variable(self, env: dict[str, str], variable: str) -> None:
        """
        An invalid value stops start-up with the variable's name in the message.
        """
        with pytest.raises(ConfigurationError, match=variable):
            Config.from_mapping(env)

    def test_whisper_window(self) -> None:
        """WHISPER_WINDOW is the sized window unless the operator picks Whisper's full 30 s; case does not matter."""
        assert Config.from_mapping({}).whisper_window == "sized"
        assert Config.from_mapping({"WHISPER_WINDOW": "Full"}).whisper_window == "full"
        assert Config.from_mapping({"WHISPER_WINDOW": "Sized"}).whisper_window == "sized"
        with pytest.raises(ConfigurationError, match="use one of: full, sized"):
            Config.from_mapping({"WHISPER_WINDOW": "short"})

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


class TestOperatorRules:
    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("LISTEN_PORT", "abc", "LISTEN_PORT must be a whole number between 1 and 65535, got 'abc'."),
            ("LISTEN_PORT", "0", "LISTEN_PORT must be a whole number between 1 and 65535, got '0'."),
            ("LISTEN_PORT", "8080.5", "LISTEN_PORT must be a whole number between 1 and 65535, got '8080.5'."),
            ("CLAUDE_TIMEOUT", "soon", "CLAUDE_TIMEOUT must be a number between 5 and 86400, got 'soon'."),
            ("CLAUDE_TIMEOUT", "nan", "CLAUDE_TIMEOUT must be a number between 5 and 86400, got 'nan'."),
        ],
    )
    def test_numbers_say_the_rule_in_words(self, name: str, value: str, message: str) -> None:
        """Numbers are described as people say them ("a whole number between …"), never as a Python type."""
        with pytest.raises(ConfigurationError) as info:
            Config.from_mapping({name: value})

        assert str(info.value) == message

    def test_named_env_file_must_exist(self, tmp_path: Path) -> None:
        """A file the operator named is required; the default ./.env is optional."""
        missing = tmp_path / "nonexistent.env"

        with pytest.raises(ConfigurationError, match=f"The env file {missing} does not exist"):
            Config.from_env({}, dotenv=missing, required=True)
        assert Config.from_env({}, dotenv=missing).telegram_token is None

    def test_env_file_that_is_a_directory(self, tmp_path: Path) -> None:
        """Pointing at a directory is an error even for the default name."""
        (tmp_path / ".env").mkdir()

        with pytest.raises(ConfigurationError, match="is not a file"):
            Config.from_env({}, dotenv=tmp_path / ".env")

    def test_nobody_allowed_needs_saying_so(self) -> None:
        """require_users refuses an empty list (naming the variable and how to find an id) unless ALLOW_NOBODY."""
        with pytest.raises(ConfigurationError) as info:
            Config.from_mapping({"ALLOWED_USER_IDS": ""}).require_users()

        assert "ALLOWED_USER_IDS" in str(info.value)
        assert "@userinfobot" in str(info.value)
        assert "ALLOW_NOBODY=1" in str(info.value)
        assert Config.from_mapping({"ALLOW_NOBODY": "1"}).require_users() == frozenset()
        assert Config.from_mapping({"ALLOWED_USER_IDS": "7"}).require_users() == frozenset({7})

    @pytest.mark.parametrize(
        ("value", "seconds"), [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0)]
    )
    def test_max_prompt_age(self, value: str, seconds: float) -> None:
        """MAX_PROMPT_AGE takes seconds or a unit."""
        assert Config.from_mapping({"MAX_PROMPT_AGE": value}).max_prompt_age_s == seconds

    @pytest.mark.parametrize("value", ["0", "off"])
    def test_max_prompt_age_off(self, value: str) -> None:
        """0 or off (and unset) means every queued prompt runs, however old."""
        assert Config.from_mapping({"MAX_PROMPT_AGE": value}).max_prompt_age_s is None
        assert Config.from_mapping({}).max_prompt_age_s is None

    @pytest.mark.parametrize("value", ["soon", "10s", "-5m", "2 weeks"])
    def test_max_prompt_age_errors(self, value: str) -> None:
        """A duration that cannot be read, or under a minute, names the variable and the form."""
        with pytest.raises(ConfigurationError, match="MAX_PROMPT_AGE must be"):
            Config.from_mapping({"MAX_PROMPT_AGE": value})

    @pytest.mark.parametrize("value", ["2001:db8::1", "bot.example.org", "300.1.1.1"])
    def test_webhook_ip_address_is_ipv4(self, value: str) -> None:
        """Telegram delivers over IPv4 only."""
        with pytest.raises(ConfigurationError, match="WEBHOOK_IP_ADDRESS must be an IPv4 address"):
            Config.from_mapping({"WEBHOOK_IP_ADDRESS": value})

    @pytest.mark.parametrize("value", ["https://", "https:///path", "https://bot.example.org/?x=1"])
    def test_public_url_needs_a_host(self, value: str) -> None:
        """An empty domain (e.g. an unset VOICECODER_DOMAIN in compose) is caught at start."""
        with pytest.raises(ConfigurationError, match="PUBLIC_URL"):
            Config.from_mapping({"PUBLIC_URL": value})

    def test_webhook_url_joins_public_url_and_path(self) -> None:
        """PUBLIC_URL (with or without a trailing slash) + WEBHOOK_PATH is what `webhook set` registers."""
        config = Config.from_mapping({"PUBLIC_URL": "https://bot.example.org/", "WEBHOOK_PATH": "/telegram/abcdefgh"})

        assert config.webhook_url == "https://bot.example.org/telegram/abcdefgh"
        assert Config.from_mapping({"PUBLIC_URL": "https://bot.example.org"}).webhook_url is None


class TestEnvExample:
    def test_loads_with_the_documented_defaults(self) -> None:
        """.env.example, read by the production loader, is valid and matches the defaults the README documents."""
        config = Config.from_env({}, dotenv=REPO / ".env.example", required=True)

        assert config.transport == "webhook"
        assert config.stt_backend == "local"
        assert config.listen_port == 8080
        assert (config.webhook_path, config.webhook_secret) == (None, None)
        assert config.allowed_user_ids == frozenset()

    def test_every_parser_reads_it_the_same(self) -> None:
        """
        No quotes, inline comments, `export` or spaces around '=': systemd, `docker run --env-file`, compose and
        voicecoder would each read those differently.
        """
        for number, line in enumerate((REPO / ".env.example").read_text().splitlines(), start=1):
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            assert sep, f"line {number}: {line!r}"
            assert key.isidentifier(), f"line {number}: {line!r}"
            assert key == key.upper(), f"line {number}: {line!r}"
            assert value == value.strip(), f"line {number}: {line!r}"
            assert not value.startswith(("'", '"')), f"line {number}: {line!r}"
            assert " #" not in value, f"line {number}: {line!r}"


class TestUnreadableEnvFile:
    def test_not_utf8_is_a_configuration_error(self, tmp_path: Path) -> None:
        """An env file that is not UTF-8 text stops start-up with its name, not a traceback."""
        dotenv = tmp_path / "voicecoder.env"
        dotenv.write_bytes(b"TELEGRAM_TOKEN=\xff\xfe\n")

        with pytest.raises(ConfigurationError, match=r"voicecoder.env cannot be read \(not UTF-8 text\)"):
            Config.from_env({}, dotenv=dotenv, required=True)
