"""
The embedded speech-to-text default: faster-whisper on the CPU, no API key, no network.

The weights come from pinned, hash-checked data packages (see `whisper_weights`); nothing is ever downloaded.

Audio is decoded with PyAV, a loudness gate finds the speech (`speech_spans`), and Whisper decodes it in
≤ 30 s windows, so memory stays nearly flat up to the 600 s duration limit. Each window is encoded once, for
both the language and the words (`whisper_window`). A cancelled call stops
at the next window boundary (the worker thread checks its host task's cancel scope), so no decoding goes
on for a caller that has gone.

``device="cuda"`` runs on an NVIDIA GPU with ``compute_type`` ``float16`` or ``int8_float16``;
`check_device` refuses it at start, with the fix, when CUDA is not usable.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import attrs

from voicecoder.adapters.stt.audio_intake import AudioLimits, check_audio
from voicecoder.adapters.stt.code_vocabulary import whisper_prompt
from voicecoder.adapters.stt.hypothesis_bias import HypothesisBias
from voicecoder.adapters.stt.speech_spans import RATE as _RATE
from voicecoder.adapters.stt.speech_spans import speech_windows as _speech_windows
from voicecoder.adapters.stt.whisper_weights import (
    BASE_INSTALL_FIX,
    BASE_MODEL_SHA256,
    TINY_INSTALL_FIX,
    WhisperWeights,
    base_weights_dir,
    default_cache_dir,
    resolve_model_dir,
)
from voicecoder.adapters.stt.whisper_window import (
    DEFAULT_WINDOWS,
    FULL_FRAMES,
    DecodeOptions,
    WindowDecode,
    decode_window,
    encoder_frames,
    implausible,
    is_silence,
    window_speech_s,
)
from voicecoder.adapters.thread_priority import background_priority
from voicecoder.domain.errors import (
    ConfigurationError,
    NoSpeechError,
    ProviderUnavailableError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, Diagnostic, Transcript, TranscriptionHints

log = logging.getLogger(__name__)

__all__ = [
    "BASE_MODEL_SHA256",
    "COMPUTE_TYPES",
    "DEVICES",
    "LocalWhisperTranscriber",
    "WhisperWeights",
    "base_weights_dir",
    "check_device",
    "default_cache_dir",
    "resolve_model_dir",
]

PROVIDER = "local whisper"

DEVICES = ("cpu", "cuda")
#: CTranslate2 compute types that make sense per device (float16 kernels exist on GPUs only).
COMPUTE_TYPES = {
    "cpu": ("int8", "int8_float32", "float32"),
    "cuda": ("float16", "int8_float16", "int8", "float32"),
}
_CUDA_FIX = (
    "Install the NVIDIA driver with the CUDA 12 and cuDNN 9 libraries CTranslate2 needs, or set WHISPER_DEVICE=cpu"
)


def check_device(device: str, compute_type: str) -> None:
    """
    Refuse a device or compute type this machine cannot run, with the fix (called at start).

    Raises:
        ConfigurationError: Unknown device, a compute type the device has no kernels for, or CUDA without a GPU.
    """
    if device not in DEVICES:
        raise ConfigurationError(f"WHISPER_DEVICE={device!r} is not valid; use one of: {', '.join(DEVICES)}.")
    if compute_type not in COMPUTE_TYPES[device]:
        raise ConfigurationError(
            f"WHISPER_COMPUTE_TYPE={compute_type!r} does not run on {device}; use one of: "
            f"{', '.join(COMPUTE_TYPES[device])}."
        )
    if device != "cuda":
        return
    try:
        import ctranslate2  # noqa: PLC0415 - comes with faster-whisper
    except ImportError as exc:
        raise ConfigurationError(f"WHISPER_DEVICE=cuda needs faster-whisper. Fix: {BASE_INSTALL_FIX}.") from exc
    try:
        count = ctranslate2.get_cuda_device_count()
        supported = set(ctranslate2.get_supported_compute_types("cuda")) if count else set()
    except RuntimeError as exc:
        raise ConfigurationError(f"WHISPER_DEVICE=cuda, but CUDA does not work here ({exc}). {_CUDA_FIX}.") from exc
    if count == 0:
        raise ConfigurationError(f"WHISPER_DEVICE=cuda, but no CUDA GPU is visible to CTranslate2. {_CUDA_FIX}.")
    if compute_type not in supported:
        raise ConfigurationError(
            f"WHISPER_COMPUTE_TYPE={compute_type!r} is not supported by this GPU; it supports: "
            f"{', '.join(sorted(supported))}."
        )


def _decode(data: bytes) -> Any:
    """
    16 kHz mono float32 samples of *data*, decoded by PyAV's bundled FFmpeg (no ffmpeg binary).

    Like ``faster_whisper.decode_audio`` (frames FFmpeg reports as invalid are skipped), but without its
    growing byte buffer and temporary float copy: about half the peak memory for long notes.

    Raises:
        UnsupportedAudioError: The container or its audio stream cannot be decoded.
    """
    import av  # noqa: PLC0415 - comes with faster-whisper
    import numpy as np  # noqa: PLC0415

    chunks: list[Any] = []
    try:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=_RATE)
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise UnsupportedAudioError("no audio stream")
            frames = container.decode(container.streams.audio[0])
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.InvalidDataError:
                    continue
                frame.pts = None  # resample by content, not timestamps
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except (av.error.FFmpegError, EOFError, ValueError) as exc:
        raise UnsupportedAudioError("the audio cannot be decoded") from exc
    # One float32 array filled chunk by chunk: the int16 chunks plus the result is the whole peak.
    samples = np.empty(sum(len(chunk) for chunk in chunks), dtype=np.float32)
    position = 0
    for chunk in chunks:
        samples[position : position + len(chunk)] = chunk
        position += len(chunk)
    chunks.clear()
    samples /= 32768.0
    return samples


#: glibc's mallopt parameter for the number of malloc arenas.
_M_ARENA_MAX = -8


def _bound_allocators() -> None:
    """
    Keep the engine's transient buffers from lingering: each costs peak memory on every note.

    Measured on the tuning clips (bench/stt.py's peak RSS, base int8): MKL's own buffer cache inside
    CTranslate2 holds freed work buffers (``MKL_DISABLE_FAST_MM``: 448 → 431 MB), and glibc gives each thread
    that decodes its own malloc arena, up to 8 per core (2 arenas: 431 → 417 MB, no CPU cost measured). Both
    are set here, before the engine's first allocation, so the service gets them however it is launched;
    values an operator set in the environment win.
    """
    os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes  # noqa: PLC0415

        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: its own allocator, nothing to bound
        return


@attrs.define
class LocalWhisperTranscriber:
    """
    faster-whisper on the CPU; the model is loaded once, lazily and thread-safely, and runs in worker threads.

    Args:
        model: ``"base"`` (default, multilingual), ``"tiny.en"`` (lighter, English only), a model directory,
            or a model name already in the local Hugging Face cache.
        cache_dir: Where ``base`` is joined; default ``$XDG_CACHE_HOME/voicecoder``.
        hint_mode: How keyterms reach Whisper: ``"prompt"`` (initial prompt), ``"hotwords"`` or ``"both"``.
        device: ``"cpu"`` or ``"cuda"``; *compute_type* ``int8`` on the CPU, ``float16``/``int8_float16`` on a GPU.
    """

    model: str = "base"
    cache_dir: Path | None = None
    compute_type: str = "int8"
    device: str = "cpu"
    cpu_threads: int = 2
    beam_size: int = 5
    no_repeat_ngram_size: int = 3
    language: str | None = None
    limits: AudioLimits = attrs.field(factory=AudioLimits)
    max_concurrent: int = 1
    hint_mode: str = attrs.field(default="prompt", validator=attrs.validators.in_(("prompt", "hotwords", "both")))
    #: Encoder windows in mel frames (100 a second): the smallest that holds a window's speech is used. The default
    #: is 20 s when the speech fits, else 30 s (``whisper_window.SHORT_WINDOWS``); ``FULL_WINDOWS`` is 30 s only.
    encoder_windows: tuple[int, ...] = DEFAULT_WINDOWS
    #: Load ``base`` from its int8 copy on the CPU (same text, ~110 MB lower load peak); False loads float16.
    prequantized: bool = True
    #: N-best rescoring toward the hints' keyterms (`hypothesis_bias`): the bonus per term a finished beam
    #: hypothesis holds, and the most it can gain, in average log-probability per token. 0 keeps Whisper's choice.
    bias_bonus: float = 0.0
    bias_cap: float = 0.0
    _engine: Any = attrs.field(default=None, init=False, repr=False)
    _weights: WhisperWeights | None = attrs.field(default=None, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _limiter: anyio.CapacityLimiter = attrs.field(init=False, repr=False)
    #: How many times decoding started; tests use it to prove refused input never reached the engine.
    engine_calls: int = attrs.field(default=0, init=False)
    #: The vocabulary the engine was given with the latest call (its initial prompt and hotwords).
    last_vocabulary: tuple[str, ...] = attrs.field(default=(), init=False)
    #: Windows decoded again in 30 s because the sized window's decode looked wrong (`whisper_window.implausible`).
    guard_redecodes: int = attrs.field(default=0, init=False)
    #: Calls decoding right now (a cancelled call is no longer counted once it has returned).
    decoding: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self._limiter = anyio.CapacityLimiter(self.max_concurrent)

    @property
    def _int8_weights(self) -> bool:
        """Whether int8 weights on disk suit this engine (the CPU's int8 kernels; see `whisper_weights`)."""
        return self.prequantized and self.device == "cpu" and self.compute_type == "int8"

    def load(self) -> Any:
        """
        Load the model now (blocking); later calls return the same engine.

        Raises:
            ConfigurationError: The weights are missing, fail their hash check, or cannot be loaded.
        """
        with self._lock:
            if self._engine is not None:
                return self._engine
            os.environ["HF_HUB_OFFLINE"] = "1"  # never download, even for a mistyped model name
            _bound_allocators()
            try:
                from faster_whisper import WhisperModel  # noqa: PLC0415 - heavy; optional extra
            except ImportError as exc:
                raise ConfigurationError(
                    f"faster-whisper is not installed. Fix: {BASE_INSTALL_FIX}, or choose a cloud STT provider."
                ) from exc
            try:
                weights = resolve_model_dir(self.model, self.cache_dir, int8=self._int8_weights)
            except OSError as exc:
                raise ConfigurationError(
                    f"The Whisper weight cache cannot be written ({exc.strerror or type(exc).__name__}). "
                    "Set XDG_CACHE_HOME to a writable directory."
                ) from exc
            source = str(weights.directory) if weights.directory is not None else weights.name
            check_device(self.device, self.compute_type)
            try:
                with background_priority():  # the engine's threads start here and inherit the lower priority
                    engine = WhisperModel(
                        source,
                        device=self.device,
                        compute_type=self.compute_type,
                        cpu_threads=self.cpu_threads,
                        local_files_only=True,
                    )
            except Exception as exc:
                raise ConfigurationError(
                    f"Whisper model {self.model!r} cannot be loaded ({type(exc).__name__}). "
                    "Check WHISPER_MODEL or run `voicecoder doctor`."
                ) from exc
            self._weights = weights
            self._engine = engine
            log.info("whisper model %s loaded from %s", self.model, source)
            return engine

    def _run(self, data: bytes, language: str | None, prompt: str | None, terms: tuple[str, ...]) -> Transcript:
        try:
            engine = self.load()
        except ConfigurationError as exc:
            raise ProviderUnavailableError(PROVIDER, str(exc)) from exc
        import numpy as np  # noqa: PLC0415 - comes with faster-whisper

        self.engine_calls += 1
        self.decoding += 1
        try:
            return self._decode_windows(engine, np, data, language, prompt, terms)
        finally:
            self.decoding -= 1

    def _decode_windows(
        self, engine: Any, np: Any, data: bytes, language: str | None, prompt: str | None, terms: tuple[str, ...]
    ) -> Transcript:
        samples = _decode(data)
        windows = _speech_windows(samples, window_speech_s(self.encoder_windows))
        if not windows:
            raise NoSpeechError
        options = DecodeOptions(
            beam_size=self.beam_size,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            prompt=prompt if prompt and self.hint_mode in {"prompt", "both"} else None,
            hotwords=prompt if prompt and self.hint_mode in {"hotwords", "both"} else None,
            bias=self.hypothesis_bias(terms),
        )
        self.last_vocabulary = tuple(v for v in (options.prompt, options.hotwords) if v)
        texts: list[str] = []
        logprobs: list[float] = []
        for window in windows:
            # A cancelled caller stops the work here instead of after the whole note.
            anyio.from_thread.check_cancelled()
            piece = np.concatenate([samples[start:end] for start, end in window])
            try:
                decoded = self._decode_piece(engine, piece, language, options)
            except (RuntimeError, ValueError) as exc:
                # CTranslate2 reports what it cannot decode (e.g. a prompt beyond its 448 positions) this way.
                raise ProviderUnavailableError(PROVIDER, f"the engine failed: {exc}") from exc
            if decoded is not None:
                texts.append(decoded.text)
                logprobs.append(decoded.avg_logprob)
                # Detect the language once, on the first piece; keep it for the rest of the note.
                language = language or decoded.language
        text = " ".join(t for t in texts if t).strip()

        if not text:
            raise NoSpeechError
        confidence = math.exp(sum(logprobs) / len(logprobs))
        return Transcript(
            text=text,
            language=language,
            confidence=round(min(confidence, 1.0), 3),
            duration_s=round(len(samples) / _RATE, 3),
        )

    def hypothesis_bias(self, terms: Sequence[str]) -> HypothesisBias | None:
        """The rescoring of a window's hypotheses toward *terms*, or None when it could change nothing."""
        if self.bias_bonus <= 0 or self.bias_cap <= 0:  # the default: no term needs splitting into words
            return None
        bias = HypothesisBias.of(terms, bonus=self.bias_bonus, cap=self.bias_cap)
        return bias if bias.active else None

    def _encoder_frames(self, samples: int) -> int:
        """The encoder window for a piece of *samples* (a method so a test can choose a window that goes wrong)."""
        return encoder_frames(samples, self.encoder_windows)

    def _decode_piece(
        self, engine: Any, piece: Any, language: str | None, options: DecodeOptions
    ) -> WindowDecode | None:
        """
        One ≤ 30 s window, first with an encoder window sized to it, again with the full 30 s if that looks wrong.

        None when even the full window is Whisper's "no speech" (faster-whisper skipped such a window too).
        """
        audio_s = len(piece) / _RATE
        frames = self._encoder_frames(len(piece))
        decoded = decode_window(engine, piece, language, options, frames)
        if frames < FULL_FRAMES and (why := implausible(decoded, audio_s)) is not None:
            self.guard_redecodes += 1
            log.info(
                "a %.1f s window decoded in %d frames looked wrong (%s); decoding it in 30 s", audio_s, frames, why
            )
            decoded = decode_window(engine, piece, language, options, FULL_FRAMES)
        if is_silence(decoded.no_speech_prob, decoded.avg_logprob):
            return None
        return decoded

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        return await self.recognize(
            audio,
            language=hints.language if hints else None,
            prompt=whisper_prompt(hints),
            terms=hints.keyterms if hints else (),
        )

    async def recognize(
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None, terms: Sequence[str] = ()
    ) -> Transcript:
        """
        Like `transcribe`, with Whisper's own initial *prompt* instead of keyterms (OpenAI-style servers send one).

        *terms* are the keyterms the beam's hypotheses are rescored toward (`bias_bonus`), if any.

        Raises:
            The `Transcriber` errors.
        """
        check_audio(audio, self.limits)
        return await anyio.to_thread.run_sync(
            self._run_in_background,
            audio.data,
            language or self.language,
            prompt,
            tuple(terms),
            limiter=self._limiter,
        )

    def _run_in_background(
        self, data: bytes, language: str | None, prompt: str | None, terms: tuple[str, ...]
    ) -> Transcript:
        # Below the event loop's priority: webhook acks must not wait for the model (see adapters/thread_priority).
        with background_priority():
            return self._run(data, language, prompt, terms)

    async def diagnose(self) -> Sequence[Diagnostic]:
        return await anyio.to_thread.run_sync(self._diagnose_sync)

    def _diagnose_sync(self) -> list[Diagnostic]:
        fix = TINY_INSTALL_FIX if self.model == "tiny.en" else BASE_INSTALL_FIX
        results: list[Diagnostic] = []
        try:
            weights = self._weights or resolve_model_dir(self.model, self.cache_dir, int8=self._int8_weights)
        except ConfigurationError as exc:
            results.append(Diagnostic("whisper weights", ok=False, detail=str(exc), fix=fix))
            return results
        except OSError as exc:
            results.append(
                Diagnostic("whisper weights", ok=False, detail=f"cannot read or write the cache: {exc}", fix=fix)
            )
            return results
        where = str(weights.directory) if weights.directory else f"{weights.name} (local model cache)"
        results.append(Diagnostic("whisper weights", ok=True, detail=f"{self.model} found at {where}"))
        if weights.verified:
            results.append(Diagnostic("whisper weights hash", ok=True, detail="sha256 matches the published model"))
        else:
            results.append(
                Diagnostic(
                    "whisper weights hash",
                    ok=True,
                    warning=True,
                    detail="custom model: no pinned hash to check",
                    fix="use model 'base' or 'tiny.en' for hash-pinned weights",
                )
            )
        try:
            self.load()
        except ConfigurationError as exc:
            results.append(Diagnostic("whisper model", ok=False, detail=str(exc), fix=fix))
        else:
            results.append(
                Diagnostic("whisper model", ok=True, detail=f"{self.model} {self.compute_type} loaded on {self.device}")
            )
        return results
