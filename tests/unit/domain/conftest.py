from __future__ import annotations

import pytest

from tests.unit.domain.scenario import ALICE
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing.fakes import FakePorts, build_voicecoder


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The domain is backend-neutral: run its tests on asyncio and trio."""
    return str(request.param)


@pytest.fixture(name="wired")
def _wired() -> tuple[VoiceCoder, FakePorts]:
    return build_voicecoder(allowed_users=[ALICE.value])


@pytest.fixture(name="app")
def _app(wired: tuple[VoiceCoder, FakePorts]) -> VoiceCoder:
    return wired[0]


@pytest.fixture(name="fakes")
def _fakes(wired: tuple[VoiceCoder, FakePorts]) -> FakePorts:
    return wired[1]
