"""
Speech-to-text providers by plug-in, through a real installed distribution: a package with a
``voicecoder.transcribers`` entry point, as a ``.dist-info`` beside its module on a path Python imports from.
Nothing is monkeypatched: importlib.metadata finds it the way it finds any installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voicecoder.bootstrap import build_container
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.model import TranscriptionHints
from voicecoder.testing.voice_clips import voice_clip

PLUGIN = """
from voicecoder.adapters.stt import check_audio
from voicecoder.domain.model import Transcript


class EchoTranscriber:
    def __init__(self, context):
        self.context = context

    async def transcribe(self, audio, hints=None, /):
        check_audio(audio, self.context.limits)
        greeting = self.context.env.get("ECHOSTT_GREETING", "no greeting")
        terms = ", ".join(hints.keyterms) if hints else ""
        return Transcript(text=f"{greeting}: {audio.size} bytes; hints {terms}")


def make(context):
    return EchoTranscriber(context)


def broken(context):
    raise RuntimeError("the plug-in cannot start")
"""


def install_plugin(site: Path) -> None:
    """A real distribution: the module plus its .dist-info with METADATA, entry_points.txt and RECORD."""
    (site / "echo_stt.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "echo_stt-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-stt\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[voicecoder.transcribers]\nechostt = echo_stt:make\nbrokenstt = echo_stt:broken\nlocal = echo_stt:make\n"
    )
    (info / "RECORD").write_text("echo_stt.py,,\necho_stt-1.0.dist-info/METADATA,,\n")


@pytest.fixture(name="site")
def _site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory holding the installed plug-in, on sys.path (as a virtualenv's site-packages is)."""
    site = tmp_path / "site-packages"
    site.mkdir()
    install_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    return site


class TestPluginSelection:
    async def test_selected_by_name(self, site: Path, tmp_path: Path) -> None:
        """STT_PROVIDER=<entry point name> builds the plug-in with its own variables, wrapped like every engine."""
        config = Config.from_mapping(
            {"STT_PROVIDER": "echostt", "ECHOSTT_GREETING": "hello", "DATA_DIR": str(tmp_path / "data")}
        )
        container = build_container(config)
        clip = voice_clip("03_run_tests.ogg")

        result = await container.speech.transcriber().transcribe(
            clip.audio(), TranscriptionHints(keyterms=("main.py",))
        )

        assert result.text.startswith(f"hello: {len(clip.read())} bytes; hints git, commit")
        assert result.text.endswith(", main")

    def test_validation_lists_installed_names(self, site: Path) -> None:
        """An unknown provider is refused at start, listing the built-in names and the installed plug-ins."""
        with pytest.raises(ConfigurationError) as info:
            Config.from_mapping({"STT_PROVIDER": "nope"})

        assert "local, deepgram, assemblyai, openai, brokenstt, echostt" in str(info.value)

    def test_fake_is_refused_at_validation(self) -> None:
        """`fake` is no provider: refused when the configuration is read, not at the first voice note."""
        with pytest.raises(ConfigurationError, match="STT_PROVIDER='fake' is not valid"):
            Config.from_mapping({"STT_PROVIDER": "fake"})

    def test_broken_plugin_is_a_startup_error(self, site: Path) -> None:
        """A plug-in whose factory fails stops the start with an error naming it and its package."""
        config = Config.from_mapping({"STT_PROVIDER": "brokenstt"})

        with pytest.raises(ConfigurationError) as info:
            build_container(config)

        assert "'brokenstt'" in str(info.value)
        assert "echo-stt 1.0" in str(info.value)
        assert "cannot start" in str(info.value)

    def test_builtin_name_cannot_be_taken(self, site: Path) -> None:
        """A plug-in named like a built-in provider is ignored: `local` stays the embedded engine."""
        config = Config.from_mapping({"STT_PROVIDER": "local"})

        assert type(build_container(config).speech.engine()).__name__ == "LocalWhisperTranscriber"


class TestLocalEngineSettings:
    @pytest.mark.parametrize(("window", "frames"), [(None, (2000, 3000)), ("full", (3000,)), ("sized", (2000, 3000))])
    def test_whisper_window_reaches_the_engine(self, window: str | None, frames: tuple[int, ...]) -> None:
        """WHISPER_WINDOW picks the local engine's encoder windows (mel frames); unset is the sized window."""
        config = Config.from_mapping({} if window is None else {"WHISPER_WINDOW": window})

        engine = build_container(config).speech.engine()

        assert engine.encoder_windows == frames


class TestPluginInAnotherProcess:
    def test_doctor_lists_plugin_names(self, tmp_path: Path) -> None:
        """`voicecoder doctor` in a fresh process sees the installed plug-in through PYTHONPATH alone."""
        site = tmp_path / "site-packages"
        site.mkdir()
        install_plugin(site)
        env = {**os.environ, "PYTHONPATH": str(site), "STT_PROVIDER": "unknown-one", "DATA_DIR": str(tmp_path)}

        done = subprocess.run(
            [sys.executable, "-m", "voicecoder.entrypoints.cli", "doctor"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=120,
        )

        assert done.returncode == 2
        assert "brokenstt, echostt" in done.stdout + done.stderr


class TestGpuPath:
    def test_cuda_without_gpu_is_refused_at_start(self, tmp_path: Path) -> None:
        """WHISPER_DEVICE=cuda on a machine without a usable GPU stops `voicecoder doctor` with the fix."""
        pytest.importorskip("ctranslate2", reason="faster-whisper (the local-stt extra) is not installed")
        env = {
            **os.environ,
            "WHISPER_DEVICE": "cuda",
            "WHISPER_COMPUTE_TYPE": "int8_float16",
            "DATA_DIR": str(tmp_path),
        }

        done = subprocess.run(
            [sys.executable, "-m", "voicecoder.entrypoints.cli", "doctor"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=120,
        )

        output = done.stdout + done.stderr
        assert done.returncode == 2
        assert "WHISPER_DEVICE=cuda" in output
        assert "WHISPER_DEVICE=cpu" in output

    def test_cpu_compute_type_on_gpu_refused(self) -> None:
        """A compute type the device has no kernels for is refused when the configuration is read."""
        with pytest.raises(ConfigurationError, match="float16, int8_float16"):
            Config.from_mapping({"WHISPER_DEVICE": "cuda", "WHISPER_COMPUTE_TYPE": "int8_float32"})
