"""TRANSPORT=telethon: its settings (API_ID, API_HASH, the session), their errors, and how the container wires it."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from voicecoder.adapters import TelethonMessenger, TelethonUpdateHandler
from voicecoder.bootstrap import build_container
from voicecoder.bootstrap.doctor import RuntimeChecks
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError
from voicecoder.dotenv import read_dotenv
from voicecoder.testing import FAKE_API_HASH, FAKE_API_ID, FAKE_BOT_TOKEN, FakeTelegram

BASE = {"TELEGRAM_TOKEN": FAKE_BOT_TOKEN, "TRANSPORT": "telethon"}


class TestSettings:
    def test_api_id_and_hash_are_read(self, tmp_path: Path) -> None:
        config = Config.from_mapping(
            {**BASE, "API_ID": str(FAKE_API_ID), "API_HASH": FAKE_API_HASH, "DATA_DIR": str(tmp_path)}
        )

        assert config.transport == "telethon"
        assert (config.api_id, config.api_hash) == (FAKE_API_ID, FAKE_API_HASH)
        assert config.require_mtproto() == (FAKE_API_ID, FAKE_API_HASH)
        assert config.telethon_session_path == tmp_path / "telethon.session"

    @pytest.mark.parametrize(
        ("env", "missing"),
        [({}, "API_ID and API_HASH"), ({"API_ID": "12345"}, "API_HASH"), ({"API_HASH": FAKE_API_HASH}, "API_ID")],
    )
    def test_missing_credentials_are_named_and_explained(self, env: dict[str, str], missing: str) -> None:
        with pytest.raises(ConfigurationError) as raised:
            Config.from_mapping({**BASE, **env})

        message = str(raised.value)
        assert f"needs {missing}." in message
        assert "https://my.telegram.org" in message
        assert "API development tools" in message
        assert "not the bot" in message

    def test_other_transports_need_no_credentials(self) -> None:
        assert Config.from_mapping({"TRANSPORT": "polling"}).api_id is None

    @pytest.mark.parametrize(
        ("name", "value", "says"),
        [
            ("API_ID", "abc", "API_ID must be a positive number"),
            ("API_ID", "-5", "API_ID must be a positive number"),
            ("API_ID", "0", "API_ID must be a positive number"),
            ("API_HASH", "xyz", "API_HASH must be 32 hexadecimal characters"),
            ("API_HASH", "g" * 32, "API_HASH must be 32 hexadecimal characters"),
        ],
    )
    def test_malformed_values(self, name: str, value: str, says: str) -> None:
        env = {**BASE, "API_ID": "12345", "API_HASH": FAKE_API_HASH, name: value}
        with pytest.raises(ConfigurationError, match=says) as raised:
            Config.from_mapping(env)
        assert "my.telegram.org" in str(raised.value)
        if name == "API_HASH":
            assert value not in str(raised.value)

    def test_the_session_location_and_string(self, tmp_path: Path) -> None:
        config = Config.from_mapping(
            {
                **BASE,
                "API_ID": "12345",
                "API_HASH": FAKE_API_HASH,
                "TELETHON_SESSION": str(tmp_path / "bot.session"),
                "TELETHON_SESSION_STRING": "1AbCdEf",
            }
        )

        assert config.telethon_session_path == tmp_path / "bot.session"
        assert config.telethon_session_string == "1AbCdEf"

    def test_hash_and_session_string_are_secrets(self) -> None:
        config = Config.from_mapping(
            {**BASE, "API_ID": "12345", "API_HASH": FAKE_API_HASH, "TELETHON_SESSION_STRING": "1SessionSecret"}
        )

        assert FAKE_API_HASH in config.secrets()
        assert "1SessionSecret" in config.secrets()
        assert FAKE_API_HASH not in repr(config)
        assert "1SessionSecret" not in repr(config)


class TestContainer:
    async def test_the_container_wires_telethon(self, tmp_path: Path) -> None:
        """Messenger and update handler are Telethon's; the session file is made in DATA_DIR, private."""
        async with FakeTelegram() as tg:
            config = Config(
                telegram_token=FAKE_BOT_TOKEN,
                transport="telethon",
                api_id=FAKE_API_ID,
                api_hash=FAKE_API_HASH,
                telethon_session_string=tg.session_string(),
                data_dir=tmp_path / "data",
                workspace_dir=tmp_path / "ws",
            )
            container = build_container(config)

            assert isinstance(container.telegram.messenger(), TelethonMessenger)
            assert isinstance(container.update_handler(), TelethonUpdateHandler)
            assert (tmp_path / "data" / "telethon.session").stat().st_mode & 0o777 == 0o600
            container.telegram.telethon_client().session.close()

    def test_a_broken_session_string_names_its_variable(self, tmp_path: Path) -> None:
        config = Config(
            transport="telethon",
            api_id=FAKE_API_ID,
            api_hash=FAKE_API_HASH,
            telethon_session_string="garbage",
            data_dir=tmp_path,
        )

        with pytest.raises(ConfigurationError, match="TELETHON_SESSION_STRING is not usable"):
            build_container(config).telegram.telethon_client()

    async def test_diagnostics_check_mtproto_not_the_webhook(self, tmp_path: Path) -> None:
        """/info and doctor on MTProto: API_ID/API_HASH and the session; no Bot API webhook call at all."""
        unreachable = "http://127.0.0.1:9"  # a Bot API call would fail here and show up as a failed check
        config = Config(
            telegram_token=FAKE_BOT_TOKEN, transport="telethon", data_dir=tmp_path, telegram_api_base=unreachable
        )
        missing = {d.name: d for d in await RuntimeChecks(config).diagnose()}
        ready = {
            d.name: d
            for d in await RuntimeChecks(attrs.evolve(config, api_id=FAKE_API_ID, api_hash=FAKE_API_HASH)).diagnose()
        }

        assert "webhook" not in missing
        assert "telegram" not in missing
        assert not missing["mtproto"].ok
        assert missing["mtproto"].detail == "API_ID and API_HASH not set"
        assert "my.telegram.org" in (missing["mtproto"].fix or "")
        assert ready["mtproto"].ok
        assert str(tmp_path / "telethon.session") in ready["mtproto"].detail


class TestDocumented:
    @pytest.mark.parametrize("name", ["API_ID", "API_HASH", "TELETHON_SESSION", "TELETHON_SESSION_STRING"])
    def test_every_telethon_setting_is_documented(self, name: str) -> None:
        root = Path(__file__).resolve().parents[2]
        assert f"\n{name}=" in (root / ".env.example").read_text(encoding="utf-8")
        assert f"`{name}`" in (root / "README.md").read_text(encoding="utf-8")

    def test_the_example_env_file_is_a_valid_configuration(self) -> None:
        root = Path(__file__).resolve().parents[2]
        values = read_dotenv(root / ".env.example")

        assert Config.from_mapping(values).transport == "webhook"
        with pytest.raises(ConfigurationError, match="API_ID and API_HASH"):
            Config.from_mapping({**values, "TRANSPORT": "telethon"})
