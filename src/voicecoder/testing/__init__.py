"""
What a test of voicecoder, of your own adapter or of the bot you embed it in needs, by name.

* In-memory fakes of every port and `build_voicecoder` (``voicecoder.testing.fakes``).
* The contract suites a port implementation runs (``voicecoder.testing.contracts``): `MessengerContract`,
  `WorkspaceContract`, `StateStoreContract`, `TranscriberContract`, `AgentRunnerContract`, `InboxContract`; and the
  state machines a workspace or a store runs against the README's promises or the reference store
  (``voicecoder.testing.workspace_machine``, `StateStoreMachine`).
* Faithful local servers on 127.0.0.1 (from ``voicecoder.simulators``, re-exported): `FakeBotApi` (Telegram Bot
  API), `FakeAnthropicApi` (for the real Claude Code CLI), `FakeDeepgramServer`, `FakeAssemblyAIServer`,
  `FakeOpenAIServer` (OpenAI-compatible speech to text), and `FakeTelegram`, a fake MTProto Telegram for Telethon
  clients (it needs the ``telethon`` extra and cannot do the MTProto key exchange: a client connects with the
  session string `FakeTelegram.session_string` gives it).

Imports are lazy, like ``voicecoder.adapters``: a name's module (and pytest, aiohttp or telethon) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecoder.lazy import lazy_exports

if TYPE_CHECKING:
    from voicecoder.simulators import (
        FAKE_API_HASH,
        FAKE_API_ID,
        FAKE_BOT_TOKEN,
        FakeTelegram,
        FakeTelegramUser,
    )
    from voicecoder.simulators.anthropic import FakeAnthropicApi
    from voicecoder.simulators.bot_api import FakeBotApi, FakeUser
    from voicecoder.simulators.stt import FakeAssemblyAIServer, FakeDeepgramServer, FakeOpenAIServer
    from voicecoder.testing.contracts.agent_runner import AgentRunnerContract
    from voicecoder.testing.contracts.inbox import InboxContract
    from voicecoder.testing.contracts.messenger import MessengerContract
    from voicecoder.testing.contracts.state_store import StateStoreContract
    from voicecoder.testing.contracts.transcriber import TranscriberContract
    from voicecoder.testing.contracts.workspace import WorkspaceContract
    from voicecoder.testing.fakes import (
        AgentScript,
        FakeAgentRunner,
        FakeClock,
        FakePorts,
        FakeSecretScanner,
        FakeTranscriber,
        FakeVocabulary,
        FakeWorkspace,
        InMemoryStateStore,
        RecordingMessenger,
        build_voicecoder,
    )
    from voicecoder.testing.state_store_machine import StateStoreMachine

_MODULES = {
    "AgentRunnerContract": "voicecoder.testing.contracts.agent_runner",
    "AgentScript": "voicecoder.testing.fakes",
    "FAKE_API_HASH": "voicecoder.simulators",
    "FAKE_API_ID": "voicecoder.simulators",
    "FAKE_BOT_TOKEN": "voicecoder.simulators",
    "FakeAgentRunner": "voicecoder.testing.fakes",
    "FakeAnthropicApi": "voicecoder.simulators.anthropic",
    "FakeAssemblyAIServer": "voicecoder.simulators.stt",
    "FakeBotApi": "voicecoder.simulators.bot_api",
    "FakeClock": "voicecoder.testing.fakes",
    "FakeDeepgramServer": "voicecoder.simulators.stt",
    "FakeOpenAIServer": "voicecoder.simulators.stt",
    "FakePorts": "voicecoder.testing.fakes",
    "FakeSecretScanner": "voicecoder.testing.fakes",
    "FakeTelegram": "voicecoder.simulators",
    "FakeTelegramUser": "voicecoder.simulators",
    "FakeTranscriber": "voicecoder.testing.fakes",
    "FakeUser": "voicecoder.simulators.bot_api",
    "FakeVocabulary": "voicecoder.testing.fakes",
    "FakeWorkspace": "voicecoder.testing.fakes",
    "InboxContract": "voicecoder.testing.contracts.inbox",
    "InMemoryStateStore": "voicecoder.testing.fakes",
    "MessengerContract": "voicecoder.testing.contracts.messenger",
    "RecordingMessenger": "voicecoder.testing.fakes",
    "StateStoreContract": "voicecoder.testing.contracts.state_store",
    "StateStoreMachine": "voicecoder.testing.state_store_machine",
    "TranscriberContract": "voicecoder.testing.contracts.transcriber",
    "WorkspaceContract": "voicecoder.testing.contracts.workspace",
    "build_voicecoder": "voicecoder.testing.fakes",
}

__all__ = [
    "FAKE_API_HASH",
    "FAKE_API_ID",
    "FAKE_BOT_TOKEN",
    "AgentRunnerContract",
    "AgentScript",
    "FakeAgentRunner",
    "FakeAnthropicApi",
    "FakeAssemblyAIServer",
    "FakeBotApi",
    "FakeClock",
    "FakeDeepgramServer",
    "FakeOpenAIServer",
    "FakePorts",
    "FakeSecretScanner",
    "FakeTelegram",
    "FakeTelegramUser",
    "FakeTranscriber",
    "FakeUser",
    "FakeVocabulary",
    "FakeWorkspace",
    "InMemoryStateStore",
    "InboxContract",
    "MessengerContract",
    "RecordingMessenger",
    "StateStoreContract",
    "StateStoreMachine",
    "TranscriberContract",
    "WorkspaceContract",
    "build_voicecoder",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
