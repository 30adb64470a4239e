from __future__ import annotations

import pytest

from voicecoder.domain.model import ChatId, UserId
from voicecoder.domain.replies import ChangeSummary
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing.fakes import AgentScript, FakePorts, build_voicecoder

CHAT = ChatId(100)
ALICE = UserId(1)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The domain is backend-neutral: run its tests on asyncio and trio."""
    return str(request.param)


@pytest.fixture(name="wired")
def _wired() -> tuple[VoiceCoder, FakePorts]:
    """The use cases on fakes, with ALICE allowed."""
    return build_voicecoder(allowed_users=[ALICE.value])


@pytest.fixture(name="app")
def _app(wired: tuple[VoiceCoder, FakePorts]) -> VoiceCoder:
    return wired[0]


@pytest.fixture(name="fakes")
def _fakes(wired: tuple[VoiceCoder, FakePorts]) -> FakePorts:
    return wired[1]


async def change(app: VoiceCoder, fakes: FakePorts, writes: dict[str, bytes | None]) -> ChangeSummary:
    """One prompt whose agent writes *writes* (None deletes); the change summary it ends with."""
    fakes.agent.script(AgentScript(text="Edited.", writes=writes))
    await app.prompt(CHAT, ALICE, "do it")
    return fakes.messenger.of_type(ChangeSummary)[-1]
