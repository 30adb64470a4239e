from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    """Adapters are asyncio-only (aiohttp); domain tests widen this to trio in tests/unit/domain."""
    return "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach a model hub or telemetry endpoint.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DISABLE_TELEMETRY", "1")
