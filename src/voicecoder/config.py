"""
Configuration from environment variables and an optional `.env` file, validated at start.

Every error names the variable and the fix. Secrets are kept out of `repr()` and logs.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from voicecoder.adapters.stt.local_whisper import COMPUTE_TYPES
from voicecoder.adapters.stt.plugins import BUILTIN_PROVIDERS, installed_plugins, plugin_env_prefix, provider_names
from voicecoder.domain.errors import ConfigurationError

#: The hosted OpenAI-compatible APIs that need a key (a self-hosted server usually needs none).
_KEYED_HOSTS = ("api.openai.com", "api.groq.com")

Transport = Literal["webhook", "polling"]

TELEGRAM_TOKEN_RE = re.compile(r"^\d{5,12}:[A-Za-z0-9_-]{30,}$")


def _secret(value: str | None) -> str:
    return "<unset>" if not value else "<redacted>"


@attrs.frozen
class Config:
    """Everything the composition root needs; built by `Config.from_env()`."""

    telegram_token: str | None = attrs.field(default=None, repr=_secret)
    telegram_api_base: str = "https://api.telegram.org"
    allowed_user_ids: frozenset[int] = frozenset()
    transport: Transport = "webhook"
    public_url: str | None = None
    webhook_path: str = attrs.field(factory=lambda: "/telegram/" + secrets.token_urlsafe(16))
    webhook_secret: str = attrs.field(factory=lambda: secrets.token_urlsafe(32), repr=_secret)
    webhook_ip_allowlist: bool = False
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    workspace_dir: Path = Path("workspace")
    data_dir: Path = Path("data")
    #: A built-in provider (local, deepgram, assemblyai, openai) or an installed plug-in's name.
    stt_backend: str = "local"
    whisper_model: str = "base"
    whisper_device: str = "cpu"
    #: None: int8 on the CPU, float16 on a GPU.
    whisper_compute_type: str | None = None
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
    claude_permission_mode: str = "acceptEdits"
    claude_timeout_s: float = 600.0
    claude_max_turns: int | None = None
    claude_config_dir: Path | None = None
    claude_env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    compaction_threshold: int = 20
    auto_approve_paths: tuple[str, ...] = ()
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"

    @property
    def inbox_path(self) -> Path:
        return self.data_dir / "inbox.sqlite3"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def whisper_compute(self) -> str:
        """The compute type to run Whisper with: the configured one, or the device's sensible default."""
        return self.whisper_compute_type or ("float16" if self.whisper_device == "cuda" else "int8")

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed (used by the log redactor)."""
        return tuple(
            s
            for s in (
                self.telegram_token,
                self.webhook_secret,
                self.deepgram_api_key,
                self.assemblyai_api_key,
                self.openai_stt_api_key,
            )
            if s
        )

    def require_telegram(self) -> str:
        if not self.telegram_token:
            raise ConfigurationError(
                "TELEGRAM_TOKEN is not set. Create a bot with @BotFather and put its token in .env "
                "(or run `voicecoder sandbox` to try voicecoder without Telegram)."
            )
        return self.telegram_token

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")) -> Config:
        values: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            values.update(read_dotenv(dotenv))
        values.update(os.environ if env is None else env)
        return cls.from_mapping(values)

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
        _choice(get("TRANSPORT"), "TRANSPORT", ("webhook", "polling"), kwargs, "transport")
        if (v := get("STT_PROVIDER")) is not None:
            kwargs["stt_backend"] = v.lower()
            if v.lower() not in BUILTIN_PROVIDERS:
                prefix = plugin_env_prefix(v)
                kwargs["stt_plugin_env"] = {k: val for k, val in env.items() if k.startswith(prefix)}
        _choice(get("WHISPER_DEVICE"), "WHISPER_DEVICE", ("cpu", "cuda"), kwargs, "whisper_device")
        _choice(get("LOG_FORMAT"), "LOG_FORMAT", ("json", "text"), kwargs, "log_format")
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
            if not v.startswith("/") or len(v) < 8:
                raise ConfigurationError("WEBHOOK_PATH must start with '/' and be hard to guess (8+ characters).")
            kwargs["webhook_path"] = v
        if (v := get("WEBHOOK_SECRET")) is not None:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", v):
                raise ConfigurationError(
                    "WEBHOOK_SECRET may only contain A-Z, a-z, 0-9, _ and - (1-256 characters), as Telegram requires."
                )
            kwargs["webhook_secret"] = v
        for name, field in {"WORKSPACE_DIR": "workspace_dir", "DATA_DIR": "data_dir"}.items():
            if (v := get(name)) is not None:
                kwargs[field] = Path(v).expanduser()
        if (v := get("CLAUDE_CONFIG_DIR")) is not None:
            kwargs["claude_config_dir"] = Path(v).expanduser()
        _number(get("LISTEN_PORT"), "LISTEN_PORT", int, 1, 65535, kwargs, "listen_port")
        _number(get("CLAUDE_TIMEOUT"), "CLAUDE_TIMEOUT", float, 5, 24 * 3600, kwargs, "claude_timeout_s")
        _number(get("CLAUDE_MAX_TURNS"), "CLAUDE_MAX_TURNS", int, 1, 1000, kwargs, "claude_max_turns")
        _number(get("COMPACTION_THRESHOLD"), "COMPACTION_THRESHOLD", int, 2, 1000, kwargs, "compaction_threshold")
        _number(get("MAX_AUDIO_MB"), "MAX_AUDIO_MB", float, 0.01, 2000, kwargs, "max_audio_bytes")
        if "max_audio_bytes" in kwargs:
            kwargs["max_audio_bytes"] = int(float(str(kwargs["max_audio_bytes"])) * 1_000_000)
        _number(get("MAX_AUDIO_SECONDS"), "MAX_AUDIO_SECONDS", float, 1, 24 * 3600, kwargs, "max_audio_seconds")
        if (v := get("WEBHOOK_IP_ALLOWLIST")) is not None:
            kwargs["webhook_ip_allowlist"] = _bool(v, "WEBHOOK_IP_ALLOWLIST")
        if (v := get("TRUSTED_PROXIES")) is not None:
            kwargs["trusted_proxies"] = tuple(x for x in re.split(r"[,\s]+", v) if x)
        if (v := get("AUTO_APPROVE_PATHS")) is not None:
            kwargs["auto_approve_paths"] = tuple(x for x in re.split(r"[,\s]+", v) if x)
        claude_env = {k: v for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL") if (v := get(k) or "")}
        if claude_env:
            kwargs["claude_env"] = claude_env
        config = cls(**kwargs)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        self._validate_stt()
        if self.public_url is not None and not self.public_url.startswith("https://"):
            raise ConfigurationError(
                "PUBLIC_URL must be an https:// URL (Telegram only delivers webhooks over HTTPS on ports "
                "443, 80, 88 or 8443)."
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


def _choice(value: str | None, name: str, options: tuple[str, ...], out: dict[str, object], field: str) -> None:
    if value is None:
        return
    if value.lower() not in options:
        raise ConfigurationError(f"{name}={value!r} is not valid; use one of: {', '.join(options)}.")
    out[field] = value.lower()


def _number(
    value: str | None,
    name: str,
    kind: type[int | float],
    low: float,
    high: float,
    out: dict[str, object],
    field: str,
) -> None:
    if value is None:
        return
    try:
        number = kind(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a {kind.__name__}, got {value!r}.") from None
    if not low <= number <= high:
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g}, got {value}.")
    out[field] = number


def _bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}.")


def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=value` lines; `#` comments, optional `export`, single or double quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            raise ConfigurationError(f"{path}:{number}: expected KEY=value.")
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values
