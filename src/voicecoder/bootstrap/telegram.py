"""
The chat side of the container: the Bot API client or the Telethon client, and the `Messenger` on the chosen one.

A module of its own so that `voicecoder webhook set|info|delete` builds this container alone (`build_telegram`):
the configuration and the Bot API client, without the speech engines, git, the stores and the agent that
`voicecoder.bootstrap.container` imports (about 0.4 CPU-s per process, ADR 0038). The full container nests it.
"""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from voicecoder.adapters.prometheus_metrics import Metrics
from voicecoder.adapters.telegram.api import TelegramBotApi
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.ports import Messenger

# A token-shaped placeholder so the Bot API client can be built where Telegram is not configured
# (doctor, tests); any real call with it fails with 401 and says so.
_NO_TOKEN = "0000000:not-configured-set-TELEGRAM_TOKEN-in-env"  # noqa: S105 - a placeholder, not a secret


def _telethon_client(config: Config) -> Any:
    """The standalone bot's own ``TelegramClient`` (not connected yet; `voicecoder serve` logs it in)."""
    try:
        from voicecoder.adapters.telethon.session import bot_client, bot_session  # noqa: PLC0415 - optional extra
    except ImportError:
        raise ConfigurationError(
            "TRANSPORT=telethon needs Telethon: install voicecoder with its telethon extra "
            "(pip install 'voicecoder[telethon]')."
        ) from None
    api_id, api_hash = config.require_mtproto()
    path = config.telethon_session_path
    try:
        session = bot_session(path, config.telethon_session_string)
    except ValueError as exc:
        raise ConfigurationError(
            f"TELETHON_SESSION_STRING is not usable ({exc}). Export one with Telethon's StringSession, or unset it "
            "to log in with TELEGRAM_TOKEN."
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"The Telethon session file {path} cannot be created ({exc.strerror}): fix TELETHON_SESSION or DATA_DIR."
        ) from None
    return bot_client(session, api_id, api_hash)


def _telegram_messenger(api: TelegramBotApi) -> Messenger:
    # Imported when built: `webhook …` needs the client, never the rendering behind the messenger.
    from voicecoder.adapters.telegram.messenger import TelegramMessenger  # noqa: PLC0415

    return TelegramMessenger(api)


def _telethon_messenger(client: Any) -> Messenger:
    from voicecoder.adapters.telethon import TelethonMessenger  # noqa: PLC0415 - optional extra

    return TelethonMessenger(client)


def messaging_of(config: Config) -> str:
    """The `Telegram.messenger` branch TRANSPORT selects: the Bot API for webhook and polling."""
    return "telethon" if config.transport == "telethon" else "telegram"


class Telegram(containers.DeclarativeContainer):
    """The chat side: the Bot API client or the Telethon client, and the `Messenger` on the chosen one."""

    config = providers.Configuration()
    settings = providers.Dependency(instance_of=Config)
    metrics = providers.Dependency(instance_of=Metrics)

    bot_api = providers.Singleton(
        TelegramBotApi,
        providers.Callable(lambda c: c.telegram_token or _NO_TOKEN, settings),
        base_url=settings.provided.telegram_api_base,
        local_files=settings.provided.telegram_local_files,
        on_error=metrics.provided.count_telegram_error,
        secrets=providers.Callable(lambda c: c.secrets(), settings),
    )
    telethon_client = providers.Singleton(_telethon_client, settings)
    messenger = providers.Selector(
        config.transport,
        telegram=providers.Singleton(_telegram_messenger, bot_api),
        telethon=providers.Singleton(_telethon_messenger, telethon_client),
    )


def build_telegram(config: Config) -> Telegram:
    """The chat side alone, for *config*: what the operator commands talk to Telegram with (its own metrics)."""
    telegram = Telegram(settings=providers.Object(config), metrics=providers.Singleton(Metrics))
    telegram.config.from_dict({"transport": messaging_of(config)})
    telegram.check_dependencies()
    return telegram


__all__ = ["Telegram", "build_telegram", "messaging_of"]
