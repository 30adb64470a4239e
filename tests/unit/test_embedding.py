"""`import voicecoder` is enough to embed the domain in another bot."""

from __future__ import annotations

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
