"""
Configuration from environment variables and an optional `.env` file, validated at start.

Every error names the variable and the fix. Secrets are kept out of `repr()` and logs.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from voicecoder.adapters.stt.local_whisper import COMPUTE_TYPES
from voicecoder.adapters.stt.plugins import BUILTIN_PROVIDERS, installed_plugins, plugin_env_prefix, provider_names
from voicecoder.adapters.telegram.identity import check_path, check_secret
from voicecoder.config_values import (
    check_database_url,
    database_secrets,
    parse_bool,
    parse_choice,
    parse_duration,
    parse_ipv4,
    parse_number,
    parse_passthrough,
    parse_tool_rules,
    resolved_path,
)
from voicecoder.domain.errors import ConfigurationError
from voicecoder.dotenv import read_dotenv
from voicecoder.projects_config import ProjectSpec, load_projects_file, parse_projects

#: The hosted OpenAI-compatible APIs that need a key (a self-hosted server usually needs none).
_KEYED_HOSTS = ("api.openai.com", "api.groq.com")

Transport = Literal["webhook", "polling", "telethon"]
TRANSPORTS: tuple[Transport, ...] = ("webhook", "polling", "telethon")
ToolApproval = Literal["ask", "auto-edits", "off"]
#: The local engine's encoder-window policies (`WHISPER_WINDOW`).
WHISPER_WINDOWS = ("full", "sized")

#: Every variable voicecoder itself reads. None of them may be passed to the agent (AGENT_ENV_PASSTHROUGH).
VOICECODER_SETTINGS = frozenset(
    {
        "TELEGRAM_TOKEN", "TELEGRAM_API_BASE_URL", "ALLOWED_USER_IDS", "ALLOW_NOBODY", "TRANSPORT", "PUBLIC_URL",
        "WEBHOOK_PATH", "WEBHOOK_SECRET", "WEBHOOK_IP_ADDRESS", "WEBHOOK_IP_ALLOWLIST", "TRUSTED_PROXIES",
        "LISTEN_HOST", "LISTEN_PORT", "WORKSPACE_DIR", "DATA_DIR", "AUTO_APPROVE_PATHS", "MAX_PROMPT_AGE",
        "STT_PROVIDER", "WHISPER_MODEL", "WHISPER_DEVICE", "WHISPER_COMPUTE_TYPE", "WHISPER_WINDOW", "DEEPGRAM_API_KEY",
        "DEEPGRAM_BASE_URL", "ASSEMBLYAI_API_KEY", "ASSEMBLYAI_BASE_URL", "OPENAI_STT_API_KEY", "OPENAI_STT_BASE_URL",
        "OPENAI_STT_MODEL", "MAX_AUDIO_MB", "MAX_AUDIO_SECONDS", "API_ID", "API_HASH", "TELETHON_SESSION",
        "TELETHON_SESSION_STRING", "CLAUDE_BINARY", "CLAUDE_MODEL", "CLAUDE_PERMISSION_MODE", "CLAUDE_TIMEOUT",
        "CLAUDE_MAX_TURNS", "CLAUDE_KEEP_WARM", "COMPACTION_THRESHOLD", "LOG_FORMAT", "LOG_LEVEL", "TOOL_APPROVAL",
        "TOOL_APPROVAL_TIMEOUT", "TOOL_ALLOW", "AGENT_ENV_PASSTHROUGH", "I_UNDERSTAND_BYPASS", "PROJECTS",
        "PROJECTS_FILE", "WORKSPACES_ROOT", "DATABASE_URL", "TELEGRAM_LOCAL_FILES_DIR",
    }
)  # fmt: skip
#: The CLI's own variables, passed to it from the environment or the .env file.
CLI_ENV_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_")
PERMISSION_MODES = ("default", "manual", "acceptEdits", "plan", "dontAsk", "auto", "bypassPermissions")
BYPASS_REFUSED = (
    "CLAUDE_PERMISSION_MODE=bypassPermissions turns off every guard on the agent: no tool question reaches your "
    "phone, the destructive-command gate (rm -rf, git push, git reset --hard, sudo, curl | sh …) and the refusal "
    "of paths outside the workspace are gone, and Claude may run any command the server's user can. voicecoder "
    "refuses to start with it. Use TOOL_APPROVAL=auto-edits (the default) or TOOL_ALLOW rules instead; if this "
    "machine is a throwaway sandbox and you accept all of that, also set I_UNDERSTAND_BYPASS=1."
)

TELEGRAM_TOKEN_RE = re.compile(r"^\d{5,12}:[A-Za-z0-9_-]{30,}$")
API_HASH_RE = re.compile(r"^[0-9a-fA-F]{32}$")
MTPROTO_APP = (
    "API_ID and API_HASH identify a Telegram application (not the bot): log in at https://my.telegram.org, "
    "open 'API development tools' and create one; API_ID is its number, API_HASH its 32-character hash."
)


def _secret(value: str | None) -> str:
    return "<unset>" if not value else "<redacted>"


@attrs.frozen
class Config:
    """Everything the composition root needs; built by `Config.from_env()`."""

    telegram_token: str | None = attrs.field(default=None, repr=_secret)
    telegram_api_base: str = "https://api.telegram.org"
    #: A local Bot API server's --dir as this machine sees it: getFile's absolute paths are read from there only.
    telegram_local_files: Path | None = None
    allowed_user_ids: frozenset[int] = frozenset()
    allow_nobody: bool = False
    transport: Transport = "webhook"
    public_url: str | None = None
    # None until configured (WEBHOOK_PATH / WEBHOOK_SECRET) or resolved by the CLI from DATA_DIR/webhook.json:
    # a silent random default is how `webhook set` and `serve` once came to disagree.
    webhook_path: str | None = None
    webhook_secret: str | None = attrs.field(default=None, repr=_secret)
    webhook_ip_address: str | None = None
    webhook_ip_allowlist: bool = False
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    workspace_dir: Path = Path("workspace")
    data_dir: Path = Path("data")
    #: PROJECTS / PROJECTS_FILE; empty: the single WORKSPACE_DIR, as before projects existed.
    projects: tuple[ProjectSpec, ...] = ()
    #: Where each (user, project) workspace is cloned.
    workspaces_root: Path = Path("workspaces")
    #: A built-in provider (local, deepgram, assemblyai, openai) or an installed plug-in's name.
    stt_backend: str = "local"
    whisper_model: str = "base"
    whisper_device: str = "cpu"
    #: None: int8 on the CPU, float16 on a GPU.
    whisper_compute_type: str | None = None
    #: "sized": 20 s encoder window when the speech fits, else 30 s, about half the CPU of a short note and, with
    #: the lead of silence, fewer lost words on the tuning clips (ADR 0018, follow-up 4); "full": always 30 s.
    whisper_window: str = "sized"
    openai_stt_base_url: str = "https://api.openai.com/v1"
    openai_stt_model: str = "whisper-1"
    openai_stt_api_key: str | None = attrs.field(default=None, repr=_secret)
    #: The ``<PLUGIN>_*`` variables a plug-in provider is configured with.
    stt_plugin_env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    deepgram_api_key: str | None = attrs.field(default=None, repr=_secret)
    deepgram_base_url: str = "https://api.deepgram.com"
    assemblyai_api_key: str | None = attrs.field(default=None, repr=_secret)
    assemblyai_base_url: str = "https://api.assemblyai.com"
    max_audio_bytes: int = 20_000_000
    max_audio_seconds: float = 600.0
    claude_binary: str = "claude"
    claude_model: str | None = None
    claude_permission_mode: str | None = None
    claude_timeout_s: float = 600.0
    claude_max_turns: int | None = None
    claude_config_dir: Path | None = None
    claude_env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    claude_keep_warm_s: float = 900.0
    tool_approval: ToolApproval = "auto-edits"
    tool_approval_timeout_s: float = 600.0
    tool_allow: tuple[str, ...] = ()
    agent_env_passthrough: tuple[str, ...] = ()
    allow_bypass: bool = False
    env_file: Path | None = None
    """The env file the settings were read from (kept from the agent's commands), if one was read."""
    compaction_threshold: int = 20
    max_prompt_age_s: float | None = None
    auto_approve_paths: tuple[str, ...] = ()
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    api_id: int | None = None
    api_hash: str | None = attrs.field(default=None, repr=_secret)
    telethon_session: Path | None = None
    telethon_session_string: str | None = attrs.field(default=None, repr=_secret)
    #: The cluster's PostgreSQL (``postgresql://user:password@host:port/db``); None: the embedded SQLite mode.
    database_url: str | None = attrs.field(default=None, repr=_secret)

    @property
    def inbox_path(self) -> Path:
        return self.data_dir / "inbox.sqlite3"

    @property
    def telethon_session_path(self) -> Path:
        """The Telethon session file: TELETHON_SESSION, or ``telethon.session`` in DATA_DIR."""
        return self.telethon_session if self.telethon_session is not None else self.data_dir / "telethon.session"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def whisper_compute(self) -> str:
        """The compute type to run Whisper with: the configured one, or the device's sensible default."""
        return self.whisper_compute_type or ("float16" if self.whisper_device == "cuda" else "int8")

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed (used by the log redactor)."""
        values = (
            self.telegram_token,
            self.webhook_secret,
            self.webhook_path,
            self.deepgram_api_key,
            self.assemblyai_api_key,
            self.openai_stt_api_key,
            self.api_hash,
            self.telethon_session_string,
            *(spec.credential for spec in self.projects),
            *database_secrets(self.database_url),
        )
        return tuple(s for s in values if s)

    @property
    def webhook_url(self) -> str | None:
        """PUBLIC_URL + WEBHOOK_PATH: the URL `webhook set` registers and `webhook info` expects."""
        if not self.public_url or not self.webhook_path:
            return None
        return self.public_url.rstrip("/") + self.webhook_path

    def require_webhook_identity(self) -> tuple[str, str]:
        """
        The webhook path and secret, once configured or resolved (`voicecoder serve` resolves them).

        Raises:
            ConfigurationError: Neither configured nor resolved.
        """
        if self.webhook_path is None or self.webhook_secret is None:
            raise ConfigurationError(
                "The webhook path and secret are not known: set WEBHOOK_PATH and WEBHOOK_SECRET, or start with "
                "`voicecoder serve`, which keeps generated ones in DATA_DIR/webhook.json."
            )
        return self.webhook_path, self.webhook_secret

    def require_users(self) -> frozenset[int]:
        """
        The allowed users; an empty list stops `serve` unless ALLOW_NOBODY=1 says it is meant.

        Raises:
            ConfigurationError: ALLOWED_USER_IDS is empty and ALLOW_NOBODY is not set.
        """
        if not self.allowed_user_ids and not self.allow_nobody:
            raise ConfigurationError(
                "ALLOWED_USER_IDS is empty, so the bot would answer everyone with ⛔. Put your numeric Telegram "
                "user id in ALLOWED_USER_IDS (message @userinfobot to learn it, or send the bot a message and read "
                "the id from its log line 'unauthorized user <id>'). To start with nobody allowed on purpose, "
                "set ALLOW_NOBODY=1."
            )
        return self.allowed_user_ids

    def require_cluster(self, role: str) -> str:
        """
        DATABASE_URL, which every cluster role (``serve --role ingress|worker``) shares its state through.

        Raises:
            ConfigurationError: It is not set.
        """
        if self.database_url is None:
            raise ConfigurationError(
                f"`voicecoder serve --role {role}` runs one part of a cluster and needs DATABASE_URL "
                "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE, the same for every replica). Without it, run "
                "`voicecoder serve`: one process with its own SQLite files."
            )
        return self.database_url

    def require_telegram(self) -> str:
        if not self.telegram_token:
            raise ConfigurationError(
                "TELEGRAM_TOKEN is not set. Create a bot with @BotFather and put its token in .env "
                "(or run `voicecoder sandbox` to try voicecoder without Telegram)."
            )
        return self.telegram_token

    def require_mtproto(self) -> tuple[int, str]:
        """The api_id and api_hash the Telethon transport logs in with."""
        if self.api_id is None or self.api_hash is None:
            missing = " and ".join(n for n, v in (("API_ID", self.api_id), ("API_HASH", self.api_hash)) if v is None)
            raise ConfigurationError(f"TRANSPORT=telethon talks MTProto and needs {missing}. {MTPROTO_APP}")
        return self.api_id, self.api_hash

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env"), required: bool = False
    ) -> Config:
        """
        The environment over the *dotenv* file. A missing file is skipped unless *required* (named by the user).

        Raises:
            ConfigurationError: A value is invalid, or a required env file does not exist or cannot be read.
        """
        values: dict[str, str] = {}
        read_from = None
        if dotenv is not None:
            if dotenv.is_file():
                try:
                    values.update(read_dotenv(dotenv))
                    read_from = dotenv.resolve()
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    raise ConfigurationError(
                        f"The env file {dotenv} cannot be read ({reason}). Run as a user who may read it "
                        "(the service user: deploy/voicecoder-admin does), or fix its owner and mode."
                    ) from None
            elif required or dotenv.exists():
                what = "is not a file" if dotenv.exists() else "does not exist"
                raise ConfigurationError(
                    f"The env file {dotenv} {what}. Check the --env-file path (copy .env.example to create one)."
                )
        values.update(os.environ if env is None else env)
        return attrs.evolve(cls.from_mapping(values), env_file=read_from)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Config:
        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        kwargs: dict[str, object] = {}
        token = get("TELEGRAM_TOKEN")
        if token is not None:
            if not TELEGRAM_TOKEN_RE.match(token):
                raise ConfigurationError(
                    "TELEGRAM_TOKEN does not look like a bot token (expected <digits>:<35 characters> "
                    "as given by @BotFather). Copy it again without quotes or spaces."
                )
            kwargs["telegram_token"] = token
        if (v := get("ALLOWED_USER_IDS")) is not None:
            try:
                kwargs["allowed_user_ids"] = frozenset(int(x) for x in re.split(r"[,\s]+", v) if x)
            except ValueError:
                raise ConfigurationError(
                    f"ALLOWED_USER_IDS must be numeric Telegram user ids separated by commas, got {v!r}. "
                    "Ask @userinfobot for your id."
                ) from None
        if (v := get("ALLOW_NOBODY")) is not None:
            kwargs["allow_nobody"] = parse_bool(v, "ALLOW_NOBODY")
        parse_choice(get("TRANSPORT"), "TRANSPORT", TRANSPORTS, kwargs, "transport")
        if (v := get("STT_PROVIDER")) is not None:
            kwargs["stt_backend"] = v.lower()
            if v.lower() not in BUILTIN_PROVIDERS:
                prefix = plugin_env_prefix(v)
                kwargs["stt_plugin_env"] = {k: val for k, val in env.items() if k.startswith(prefix)}
        parse_choice(get("WHISPER_DEVICE"), "WHISPER_DEVICE", ("cpu", "cuda"), kwargs, "whisper_device")
        parse_choice(get("WHISPER_WINDOW"), "WHISPER_WINDOW", WHISPER_WINDOWS, kwargs, "whisper_window")
        parse_choice(get("LOG_FORMAT"), "LOG_FORMAT", ("json", "text"), kwargs, "log_format")
        strings = {
            "TELEGRAM_API_BASE_URL": "telegram_api_base",
            "PUBLIC_URL": "public_url",
            "LISTEN_HOST": "listen_host",
            "WHISPER_MODEL": "whisper_model",
            "WHISPER_COMPUTE_TYPE": "whisper_compute_type",
            "OPENAI_STT_BASE_URL": "openai_stt_base_url",
            "OPENAI_STT_MODEL": "openai_stt_model",
            "OPENAI_STT_API_KEY": "openai_stt_api_key",
            "DEEPGRAM_API_KEY": "deepgram_api_key",
            "DEEPGRAM_BASE_URL": "deepgram_base_url",
            "ASSEMBLYAI_API_KEY": "assemblyai_api_key",
            "ASSEMBLYAI_BASE_URL": "assemblyai_base_url",
            "CLAUDE_BINARY": "claude_binary",
            "CLAUDE_MODEL": "claude_model",
            "CLAUDE_PERMISSION_MODE": "claude_permission_mode",
            "LOG_LEVEL": "log_level",
        }
        for name, field in strings.items():
            if (v := get(name)) is not None:
                kwargs[field] = v
        if (v := get("WEBHOOK_PATH")) is not None:
            kwargs["webhook_path"] = check_path(v)
        if (v := get("WEBHOOK_SECRET")) is not None:
            kwargs["webhook_secret"] = check_secret(v)
        if (v := get("WEBHOOK_IP_ADDRESS")) is not None:
            kwargs["webhook_ip_address"] = parse_ipv4(v, "WEBHOOK_IP_ADDRESS")
        if (v := get("DATABASE_URL")) is not None:
            kwargs["database_url"] = check_database_url(v)
        if (v := get("MAX_PROMPT_AGE")) is not None:
            kwargs["max_prompt_age_s"] = parse_duration(v, "MAX_PROMPT_AGE")
        if get("PROJECTS") is not None and get("PROJECTS_FILE") is not None:
            raise ConfigurationError("Set PROJECTS or PROJECTS_FILE, not both: keep the one you maintain.")
        if (v := get("PROJECTS")) is not None:
            kwargs["projects"] = parse_projects(v)
        if (v := get("PROJECTS_FILE")) is not None:
            kwargs["projects"] = load_projects_file(Path(v).expanduser())
        dirs = {
            "WORKSPACE_DIR": "workspace_dir",
            "DATA_DIR": "data_dir",
            "WORKSPACES_ROOT": "workspaces_root",
            "TELEGRAM_LOCAL_FILES_DIR": "telegram_local_files",
        }
        for name, field in dirs.items():
            if (v := get(name)) is not None:
                kwargs[field] = Path(v).expanduser()
        if (v := get("CLAUDE_CONFIG_DIR")) is not None:
            kwargs["claude_config_dir"] = Path(v).expanduser()
        _mtproto(get, kwargs)
        parse_number(get("LISTEN_PORT"), "LISTEN_PORT", int, 1, 65535, kwargs, "listen_port")
        parse_number(get("CLAUDE_TIMEOUT"), "CLAUDE_TIMEOUT", float, 5, 24 * 3600, kwargs, "claude_timeout_s")
        parse_number(get("CLAUDE_MAX_TURNS"), "CLAUDE_MAX_TURNS", int, 1, 1000, kwargs, "claude_max_turns")
        parse_number(get("COMPACTION_THRESHOLD"), "COMPACTION_THRESHOLD", int, 2, 1000, kwargs, "compaction_threshold")
        parse_number(get("MAX_AUDIO_MB"), "MAX_AUDIO_MB", float, 0.01, 2000, kwargs, "max_audio_bytes")
        if "max_audio_bytes" in kwargs:
            kwargs["max_audio_bytes"] = int(float(str(kwargs["max_audio_bytes"])) * 1_000_000)
        parse_number(get("MAX_AUDIO_SECONDS"), "MAX_AUDIO_SECONDS", float, 1, 24 * 3600, kwargs, "max_audio_seconds")
        if (v := get("WEBHOOK_IP_ALLOWLIST")) is not None:
            kwargs["webhook_ip_allowlist"] = parse_bool(v, "WEBHOOK_IP_ALLOWLIST")
        if (v := get("TRUSTED_PROXIES")) is not None:
            kwargs["trusted_proxies"] = tuple(x for x in re.split(r"[,\s]+", v) if x)
        if (v := get("AUTO_APPROVE_PATHS")) is not None:
            kwargs["auto_approve_paths"] = tuple(x for x in re.split(r"[,\s]+", v) if x)
        parse_choice(get("TOOL_APPROVAL"), "TOOL_APPROVAL", ("ask", "auto-edits", "off"), kwargs, "tool_approval")
        parse_number(
            get("TOOL_APPROVAL_TIMEOUT"),
            "TOOL_APPROVAL_TIMEOUT",
            float,
            1,
            24 * 3600,
            kwargs,
            "tool_approval_timeout_s",
        )
        parse_number(get("CLAUDE_KEEP_WARM"), "CLAUDE_KEEP_WARM", float, 0, 7 * 24 * 3600, kwargs, "claude_keep_warm_s")
        if (v := get("TOOL_ALLOW")) is not None:
            kwargs["tool_allow"] = parse_tool_rules(v)
        if (v := get("AGENT_ENV_PASSTHROUGH")) is not None:
            plugin = kwargs.get("stt_backend")
            is_plugin = isinstance(plugin, str) and plugin not in BUILTIN_PROVIDERS
            reserved = (plugin_env_prefix(str(plugin)),) if is_plugin else ()
            kwargs["agent_env_passthrough"] = parse_passthrough(
                v, reserved_names=VOICECODER_SETTINGS, reserved_prefixes=reserved
            )
        if (v := get("I_UNDERSTAND_BYPASS")) is not None:
            kwargs["allow_bypass"] = parse_bool(v, "I_UNDERSTAND_BYPASS")
        if (v := get("CLAUDE_PERMISSION_MODE")) is not None:
            mode = next((m for m in PERMISSION_MODES if m.lower() == v.lower()), None)
            if mode is None:
                raise ConfigurationError(
                    f"CLAUDE_PERMISSION_MODE={v!r} is not a mode of the Claude CLI; use one of: "
                    f"{', '.join(PERMISSION_MODES)} (or leave it unset and let TOOL_APPROVAL decide)."
                )
            kwargs["claude_permission_mode"] = mode
        # The CLI's own variables and the passthrough names, also when they come from the .env file.
        passthrough = set(kwargs.get("agent_env_passthrough", ()))  # type: ignore[call-overload]
        claude_env = {
            k: v
            for k, raw in env.items()
            if (k.startswith(CLI_ENV_PREFIXES) or k in passthrough) and (v := raw.strip())
        }
        if claude_env:
            kwargs["claude_env"] = claude_env
        config = cls(**kwargs)  # type: ignore[arg-type]
        config.validate(home=get("HOME"))
        return config

    def validate(self, *, home: str | None = None) -> None:
        self._validate_stt()
        if self.transport == "telethon":
            self.require_mtproto()
            if self.projects:
                raise ConfigurationError(
                    "PROJECTS needs TRANSPORT=webhook or polling (the Bot API); the Telethon transport serves one "
                    "WORKSPACE_DIR. Unset PROJECTS/PROJECTS_FILE or change TRANSPORT."
                )
        if self.claude_permission_mode == "bypassPermissions" and not self.allow_bypass:
            raise ConfigurationError(BYPASS_REFUSED)
        config_dir = self.claude_config_dir or Path(home or Path.home()) / ".claude"
        workspace = self.workspace_dir.expanduser().absolute()
        if resolved_path(config_dir).is_relative_to(resolved_path(workspace)):
            which = "CLAUDE_CONFIG_DIR" if self.claude_config_dir else "The Claude CLI's config dir ($HOME/.claude)"
            raise ConfigurationError(
                f"{which} ({config_dir}) is inside WORKSPACE_DIR ({workspace}): the CLI's login, backups and "
                "transcripts would land in the repository and in the diffs you approve. Set CLAUDE_CONFIG_DIR to "
                "a directory outside the workspace (e.g. ~/.claude) or move WORKSPACE_DIR."
            )
        if self.public_url is not None:
            parts = urllib.parse.urlsplit(self.public_url)
            if parts.scheme != "https" or not parts.hostname:
                raise ConfigurationError(
                    "PUBLIC_URL must be an https:// URL with the bot's public host name, e.g. https://bot.example.org "
                    "(Telegram only delivers webhooks over HTTPS on ports 443, 80, 88 or 8443)."
                )
            if parts.query or parts.fragment:
                raise ConfigurationError(
                    "PUBLIC_URL is the base URL only (scheme, host, optional port): drop the query or fragment; "
                    "the webhook path comes from WEBHOOK_PATH."
                )

    def _validate_stt(self) -> None:
        if self.stt_backend not in BUILTIN_PROVIDERS and self.stt_backend not in installed_plugins():
            raise ConfigurationError(
                f"STT_PROVIDER={self.stt_backend!r} is not valid; use one of: {', '.join(provider_names())} "
                "(installed speech-to-text plug-ins are listed after the built-in providers)."
            )
        compute = COMPUTE_TYPES
        if self.whisper_compute not in compute[self.whisper_device]:
            raise ConfigurationError(
                f"WHISPER_COMPUTE_TYPE={self.whisper_compute!r} does not run on WHISPER_DEVICE={self.whisper_device}; "
                f"use one of: {', '.join(compute[self.whisper_device])}."
            )
        if self.stt_backend == "openai":
            url = urlsplit(self.openai_stt_base_url)
            if url.scheme not in {"http", "https"} or not url.hostname:
                raise ConfigurationError(
                    f"OPENAI_STT_BASE_URL={self.openai_stt_base_url!r} is not an http(s) URL. Set the server's API "
                    "base, e.g. https://api.openai.com/v1, https://api.groq.com/openai/v1 or http://gpu-box:8000/v1."
                )
            if url.hostname in _KEYED_HOSTS and not self.openai_stt_api_key:
                raise ConfigurationError(
                    f"STT_PROVIDER=openai with {url.hostname} needs OPENAI_STT_API_KEY (a self-hosted server "
                    "needs none)."
                )
        if self.stt_backend == "deepgram" and not self.deepgram_api_key:
            raise ConfigurationError("STT_PROVIDER=deepgram needs DEEPGRAM_API_KEY (or set STT_PROVIDER=local).")
        if self.stt_backend == "assemblyai" and not self.assemblyai_api_key:
            raise ConfigurationError("STT_PROVIDER=assemblyai needs ASSEMBLYAI_API_KEY (or set STT_PROVIDER=local).")


def _mtproto(get: Callable[[str], str | None], out: dict[str, object]) -> None:
    """API_ID, API_HASH, TELETHON_SESSION and TELETHON_SESSION_STRING (the Telethon transport's login)."""
    if (v := get("API_ID")) is not None:
        if not v.isdigit() or int(v) <= 0:
            raise ConfigurationError(f"API_ID must be a positive number, got {v!r}. {MTPROTO_APP}")
        out["api_id"] = int(v)
    if (v := get("API_HASH")) is not None:
        if not API_HASH_RE.match(v):
            raise ConfigurationError(f"API_HASH must be 32 hexadecimal characters. {MTPROTO_APP}")
        out["api_hash"] = v
    if (v := get("TELETHON_SESSION")) is not None:
        out["telethon_session"] = Path(v).expanduser()
    if (v := get("TELETHON_SESSION_STRING")) is not None:
        out["telethon_session_string"] = v
