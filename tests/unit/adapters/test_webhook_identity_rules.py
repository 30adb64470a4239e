"""One rule for the webhook path, one for its secret, one generator for each: every place that checks agrees."""

from __future__ import annotations

import pytest

from voicecoder.adapters.telegram.admin import set_webhook
from voicecoder.adapters.telegram.api import TelegramBotApi
from voicecoder.adapters.telegram.identity import check_path, check_secret, new_path, new_secret
from voicecoder.adapters.telegram.webhook import WebhookSettings
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError

BAD_PATHS = ["telegram/no-leading-slash", "/short", "/tg/{name}/hook", "/tg/hook}here"]
BAD_SECRETS = ["has space", "x" * 257, "ünïcode", "semi;colon"]
# An empty variable counts as unset in the configuration (a random identity is generated); elsewhere it is refused.


class TestWebhookPathRule:
    @pytest.mark.parametrize("path", BAD_PATHS)
    def test_config_and_settings_refuse_the_same_paths(self, path: str) -> None:
        """WEBHOOK_PATH and the webhook's own settings refuse exactly the same paths, naming the variable."""
        with pytest.raises(ConfigurationError, match="WEBHOOK_PATH"):
            Config.from_mapping({"WEBHOOK_PATH": path})
        with pytest.raises(ConfigurationError, match="WEBHOOK_PATH"):
            WebhookSettings(secret_token="s3cret", path=path)

    @pytest.mark.parametrize("path", ["/telegram", "/telegram/abcdefgh", "/123456:ABC-token-shaped"])
    def test_accepts_hard_to_guess_paths(self, path: str) -> None:
        """A path from '/' plus seven more characters on is accepted by every check."""
        actual = (check_path(path), Config.from_mapping({"WEBHOOK_PATH": path}).webhook_path)

        assert actual == (path, path)

    def test_empty_values_are_refused_where_they_are_not_unset(self) -> None:
        """An empty path or secret given to the webhook itself is refused; in the configuration it means unset."""
        with pytest.raises(ConfigurationError, match="WEBHOOK_PATH"):
            WebhookSettings(secret_token="s3cret", path="")
        with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
            WebhookSettings(secret_token="")
        config = Config.from_mapping({"WEBHOOK_PATH": "", "WEBHOOK_SECRET": ""})

        assert (config.webhook_path, config.webhook_secret) == (None, None)

    def test_generated_paths_pass_and_differ(self) -> None:
        """The one generator makes paths the rule accepts, and never the same one twice."""
        paths = {new_path() for _ in range(50)}

        assert len(paths) == 50
        assert all(check_path(p) == p and p.startswith("/telegram/") for p in paths)

    def test_settings_default_to_a_generated_path(self) -> None:
        """WebhookSettings without a path get one from the same generator."""
        settings = WebhookSettings(secret_token="s3cret")

        assert settings.path.startswith("/telegram/")
        assert check_path(settings.path) == settings.path


class TestWebhookSecretRule:
    @pytest.mark.parametrize("secret", BAD_SECRETS)
    def test_config_settings_and_set_webhook_refuse_the_same_secrets(self, secret: str) -> None:
        """WEBHOOK_SECRET, the webhook settings and `webhook set` refuse the same secrets."""
        with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
            Config.from_mapping({"WEBHOOK_SECRET": secret})
        with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
            WebhookSettings(secret_token=secret)
        with pytest.raises(ConfigurationError):
            check_secret(secret, name="--secret-token")

    async def test_set_webhook_refuses_before_calling_telegram(self) -> None:
        """`webhook set` with a secret Telegram would refuse says so and sends nothing (no server is listening)."""
        async with TelegramBotApi(
            "123456789:AAHfakefakefakefakefakefakefakefake12", base_url="http://127.0.0.1:9"
        ) as api:
            with pytest.raises(ConfigurationError, match="secret token"):
                await set_webhook(api, url="https://bot.example.org/telegram/abcdefgh", secret_token="has space")

    def test_generated_secrets_pass_and_differ(self) -> None:
        """The one generator makes 43-character secrets the rule accepts, never the same one twice."""
        secrets = {new_secret() for _ in range(50)}

        assert len(secrets) == 50
        assert all(check_secret(s) == s and len(s) == 43 for s in secrets)
