"""`import voicecoder` is enough to embed the domain in another bot."""

from __future__ import annotations

import importlib

import pytest

import voicecoder
from voicecoder import ChatId, Ports, Settings, UserId, VoiceCoder
from voicecoder.domain.replies import AgentAnswer, ChangeSummary
from voicecoder.testing.fakes import (
    AgentScript,
    FakeAgentRunner,
    FakeClock,
    FakeSecretScanner,
    FakeTranscriber,
    FakeWorkspace,
    InMemoryStateStore,
    RecordingMessenger,
)


class TestEmbedding:
    async def test_embedder_wires_own_ports(self) -> None:
        """
        An embedder builds VoiceCoder from the public names and its own adapters, and gets structured replies.
        """
        workspace = FakeWorkspace()
        agent = FakeAgentRunner(workspace=workspace)
        agent.script(AgentScript(text="Added it.", writes={"hello.py": b"print('hi')\n"}))
        messenger = RecordingMessenger()
        app = VoiceCoder(
            Ports(
                workspace=workspace,
                agent=agent,
                transcriber=FakeTranscriber(),
                messenger=messenger,
                store=InMemoryStateStore(),
                clock=FakeClock(),
                scanner=FakeSecretScanner(),
            ),
            Settings(allowed_users=frozenset({UserId(42)})),
        )

        await app.prompt(ChatId(1), UserId(42), "add hello.py")

        assert messenger.of_type(AgentAnswer)[0].text == "Added it."
        assert messenger.of_type(ChangeSummary)[0].diff.paths == ("hello.py",)
        assert voicecoder.__version__


class TestPublicNames:
    @pytest.mark.parametrize(
        "module", ["voicecoder", "voicecoder.adapters", "voicecoder.bootstrap", "voicecoder.testing"]
    )
    def test_every_exported_name_resolves(self, module: str) -> None:
        """Each name in ``__all__`` imports (lazily where it is lazy) and ``dir()`` shows it."""
        package = importlib.import_module(module)
        for name in package.__all__:
            assert getattr(package, name) is not None, name
        assert set(package.__all__) <= set(dir(package))

    def test_the_simulators_are_in_voicecoder_testing(self) -> None:
        """The fake MTProto Telegram is a testing tool like the fake Bot API: both are in `voicecoder.testing`."""
        import voicecoder.simulators  # noqa: PLC0415
        import voicecoder.testing  # noqa: PLC0415

        for name in voicecoder.simulators.__all__:
            if name != "StoredMessage":
                assert getattr(voicecoder.testing, name) is getattr(voicecoder.simulators, name)
        assert voicecoder.testing.FakeBotApi.__module__ == "voicecoder.simulators.bot_api"

    def test_unknown_names_raise_attribute_error(self) -> None:
        import voicecoder.adapters  # noqa: PLC0415
        import voicecoder.testing  # noqa: PLC0415

        with pytest.raises(AttributeError, match="Nope"):
            _ = voicecoder.adapters.Nope
        with pytest.raises(AttributeError, match="Nope"):
            _ = voicecoder.testing.Nope
