from __future__ import annotations

import os
from pathlib import Path

import pytest

from voicecoder.testing.profiles import load_profile

REPO = Path(__file__).resolve().parent.parent
# Loaded before any test module builds its settings: derandomized (``ci``) unless VOICECODER_HYPOTHESIS_PROFILE
# asks for the ``deep`` hunt.
HYPOTHESIS_PROFILE = load_profile()


@pytest.fixture
def anyio_backend() -> str:
    """Adapters are asyncio-only (aiohttp); domain tests widen this to trio in tests/unit/domain."""
    return "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach a model hub or telemetry endpoint.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DISABLE_TELEMETRY", "1")
