"""
Error texts: the domain's name no environment variable (they mean nothing inside someone else's bot); the
`voicecoder` CLI adds its own hints through `Settings.error_hint` (`cli_error_hint`).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from dependency_injector import providers

from voicecoder.bootstrap import build_container, cli_error_hint, open_runtime
from voicecoder.config import Config
from voicecoder.domain import errors
from voicecoder.domain.errors import (
    AgentNotInstalledError,
    AgentTimeoutError,
    NoSpeechError,
    ProviderAuthError,
    ProviderUnavailableError,
    StaleChangeError,
    VoicecoderError,
    WorkspaceError,
)
from voicecoder.domain.model import ChatId, UserId
from voicecoder.domain.replies import ErrorReply
from voicecoder.testing.fakes import RecordingMessenger

SRC = Path(__file__).resolve().parents[2] / "src" / "voicecoder"


def environment_variables() -> set[str]:
    """Every variable name `Config.from_mapping` reads (the upper-case string constants of config.py)."""
    tree = ast.parse((SRC / "config.py").read_text(encoding="utf-8"))
    names = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", node.value)
    }
    assert {"TELEGRAM_TOKEN", "CLAUDE_TIMEOUT", "CLAUDE_BINARY", "STT_PROVIDER"} <= names
    return names


def all_error_classes() -> list[type[VoicecoderError]]:
    found: list[type[VoicecoderError]] = []
    pending: list[type[VoicecoderError]] = [VoicecoderError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [c for c in found if c.__module__ == errors.__name__]


def instance_of(cls: type[VoicecoderError]) -> VoicecoderError:
    """*cls* built with plausible arguments for each parameter of its constructor."""
    samples: dict[str, object] = {
        "int": 123456,
        "float": 600.0,
        "str": "deepgram",
        "list[str]": ["possible secret: a.py:3"],
    }
    args: list[object] = []
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind in {parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD}:
            args.append("detail")
            continue
        if parameter.default is not parameter.empty:
            continue
        annotation = str(parameter.annotation)
        args.append(samples.get(annotation, "detail"))
    return cls(*args)


class TestDomainTexts:
    def test_no_error_message_names_an_environment_variable(self) -> None:
        variables = environment_variables()
        classes = all_error_classes()
        assert len(classes) > 20

        for cls in classes:
            text = str(instance_of(cls))
            named = {v for v in variables if v in text}
            assert not named, f"{cls.__name__} names {named}: {text}"

    def test_no_domain_string_names_an_environment_variable(self) -> None:
        """Not in error messages, replies or anything else the domain renders."""
        variables = environment_variables()
        for module in sorted((SRC / "domain").glob("*.py")):
            tree = ast.parse(module.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    named = {v for v in variables if v in node.value}
                    assert not named, f"{module.name}:{node.lineno} names {named}"


class TestCliHints:
    @pytest.mark.parametrize(
        ("error", "hint"),
        [
            (AgentTimeoutError(600), "Raise CLAUDE_TIMEOUT (seconds) to give Claude more time."),
            (AgentNotInstalledError("claude"), "Set CLAUDE_BINARY to the path of the claude executable."),
            (ProviderAuthError("deepgram"), "Check DEEPGRAM_API_KEY, or set STT_PROVIDER=local."),
            (ProviderAuthError("assemblyai"), "Check ASSEMBLYAI_API_KEY, or set STT_PROVIDER=local."),
        ],
    )
    def test_the_cli_names_its_variables(self, error: VoicecoderError, hint: str) -> None:
        assert cli_error_hint(error) == hint

    @pytest.mark.parametrize(
        "error",
        [NoSpeechError(), StaleChangeError(), WorkspaceError("git failed"), ProviderUnavailableError("deepgram")],
    )
    def test_nothing_to_add_elsewhere(self, error: VoicecoderError) -> None:
        assert cli_error_hint(error) is None

    async def test_the_cli_container_shows_the_hint_under_the_error(self, tmp_path: Path) -> None:
        """The standalone bot's replies carry the CLI hint; the message itself is the domain's, without it."""
        config = Config(
            workspace_dir=tmp_path / "ws",
            data_dir=tmp_path / "data",
            allowed_user_ids=frozenset({42}),
            claude_binary=str(tmp_path / "no-such-claude"),
        )
        container = build_container(config)
        messenger = RecordingMessenger()
        container.telegram.messenger.override(providers.Object(messenger))
        async with open_runtime(container, inbox=False):
            await container.app.voicecoder().prompt(ChatId(42), UserId(42), "hello")

        (error,) = messenger.of_type(ErrorReply)
        assert error.hint == "Set CLAUDE_BINARY to the path of the claude executable."
        assert "CLAUDE_BINARY" not in error.message
        assert "no-such-claude" in error.message
