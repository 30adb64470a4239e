from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

REPO = Path(__file__).resolve().parent.parent

# CI runs every property test the same way on every run: derandomized, no example database, no explain
# phase (it can take minutes on a stateful failure), and no health check that trips on a loaded machine.
# A failure then prints its minimal failing steps at once. `VOICECODER_HYPOTHESIS=deep` hunts with random
# seeds instead (tests that set their own budget scale it with `voicecoder.testing.budget`).
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    parent=settings.get_profile("ci"),
    derandomize=False,
    max_examples=2000,
)
settings.load_profile("deep" if os.environ.get("VOICECODER_HYPOTHESIS") == "deep" else "ci")


@pytest.fixture
def anyio_backend() -> str:
    """Adapters are asyncio-only (aiohttp); domain tests widen this to trio in tests/unit/domain."""
    return "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach a model hub or telemetry endpoint.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DISABLE_TELEMETRY", "1")
