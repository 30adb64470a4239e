"""
One ≤ 30 s speech window through Whisper with an encoder window sized to it, and a guard for its decode.

faster-whisper always pads a window's features to 3,000 mel frames (30 s) before the encoder, whatever its
``chunk_length`` (``generate_segments`` calls ``pad_or_trim`` with the default length), so a 4 s note paid for
30 s of encoder self-attention: most of the CPU a short note costs. CTranslate2's Whisper encoder accepts fewer
frames (its positional embeddings are simply used up to the input's length), so the window here is the
smallest of the configured windows (`SHORT_WINDOWS`, the default, or only the full one, `FULL_WINDOWS`) that
holds the speech plus a margin. The language, when not given, is detected
from the same encoder output (faster-whisper ran a separate 30 s encoder pass for it). Timestamps are not
predicted: their tokens count 30 s positions, and the transcriber needs only the words. The speech sits after
up to 2 s of digital silence (`LEAD_FRAMES`), taken only from room the window has to spare: with it Whisper lost
fewer words on the tuning clips at both window sizes, at the same encoder cost.

Whisper was trained on 30 s windows, so a short one can occasionally go wrong (ADR 0018: a prompted note
decoded to nothing). `implausible` recognises such a decode (no words, far fewer or far more words than the
audio's length allows, a repetition loop, or Whisper's own no-speech verdict) and the window is then decoded
again with the full 30 s encoder window, as faster-whisper would have done.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import attrs

from voicecoder.adapters.stt.hypothesis_bias import HypothesisBias
from voicecoder.adapters.stt.speech_spans import RATE

__all__ = [
    "DEFAULT_WINDOWS",
    "FULL_FRAMES",
    "FULL_WINDOWS",
    "LEAD_FRAMES",
    "NO_SPEECH_LOGPROB",
    "NO_SPEECH_PROB",
    "SHORT_WINDOWS",
    "DecodeOptions",
    "WindowDecode",
    "decode_window",
    "encoder_frames",
    "encoder_windows_named",
    "implausible",
    "is_silence",
    "lead_frames",
    "window_speech_s",
]

#: Whisper's own window: 30 s of mel frames.
FULL_FRAMES = 3000
#: Whisper's own window only (`WHISPER_WINDOW=full`).
FULL_WINDOWS = (FULL_FRAMES,)
#: 20 s when the speech fits, else 30 s: half the CPU of a short note. With the speech after `LEAD_FRAMES` of
#: silence it also lost fewer words than 30 s on the tuning clips (WER 0.198 against 0.216; ADR 0018,
#: follow-up 4), so it is the default. (Before the lead, 15 s cost +0.03 and 10 s +0.04 against 20 s.)
SHORT_WINDOWS = (2000, FULL_FRAMES)
#: The transcriber's windows unless configured (`WHISPER_WINDOW=sized`).
DEFAULT_WINDOWS = SHORT_WINDOWS
#: 16 kHz samples per mel frame (Whisper's hop: 100 frames a second).
SAMPLES_PER_FRAME = 160
#: Mel frames a second.
FRAMES_PER_S = RATE // SAMPLES_PER_FRAME
#: Silence kept after the speech inside the window (1 s): Whisper is used to hearing a note end.
MARGIN_FRAMES = 100
#: Digital silence placed before the speech when the window has room (2 s; less when the speech fills it).
#: Whisper heard these synthetic voices' first words better after a pause (ADR 0018, follow-up 4, tuning clips,
#: 20 s window: no lead WER 0.250, 0.5 s 0.233, 1 s 0.218, 2 s 0.198; encoder cost unchanged, the window is
#: the same size).
LEAD_FRAMES = 200
#: Whisper's tokens in all, prompt and text (its decoder's positions).
MAX_LENGTH = 448
#: Speech at 130-190 wpm is 2-3 words a second, and a pause is shrunk to 0.8 s by the gate; a window decoded
#: to fewer words than this per second of audio has lost words (a 4 s note heard as one word).
MIN_WORDS_PER_S = 0.4
#: More words a second than anyone speaks: Whisper is reciting its prompt, not the audio.
MAX_WORDS_PER_S = 6.0
#: Whisper's own repetition test: text that zlib compresses this well is a loop ("log in, log in, log in").
MAX_COMPRESSION_RATIO = 2.4
#: Whisper's no-speech verdict (faster-whisper's defaults): the no-speech token's probability above this…
NO_SPEECH_PROB = 0.6
#: …while the words are this improbable on average.
NO_SPEECH_LOGPROB = -1.0


def is_silence(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's own verdict on a decoded window or segment: likely no speech, and words it hardly believes."""
    return no_speech_prob > NO_SPEECH_PROB and avg_logprob < NO_SPEECH_LOGPROB


_WORD = re.compile(r"\w+")


@attrs.frozen
class WindowDecode:
    """What one window decoded to."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    language: str
    #: The encoder window used, in mel frames.
    frames: int
    #: The beam's finished hypotheses as (text, model score), in the model's order; only the chosen one unless
    #: a bias asked for all of them.
    hypotheses: tuple[tuple[str, float], ...] = ()


def encoder_windows_named(policy: str) -> tuple[int, ...]:
    """The windows of a `WHISPER_WINDOW` policy: ``"full"`` is `FULL_WINDOWS`, ``"sized"`` `SHORT_WINDOWS`."""
    policies = {"full": FULL_WINDOWS, "sized": SHORT_WINDOWS}
    if policy not in policies:
        raise ValueError(f"unknown encoder-window policy {policy!r}; use one of: {', '.join(policies)}")
    return policies[policy]


def _frames_needed(samples: int) -> int:
    """Mel frames that *samples* of 16 kHz speech and the margin after it take up."""
    return samples // SAMPLES_PER_FRAME + MARGIN_FRAMES


def lead_frames(samples: int, frames: int) -> int:
    """The silence before *samples* of speech in a window of *frames*: `LEAD_FRAMES`, or what the room allows."""
    return max(0, min(LEAD_FRAMES, frames - _frames_needed(samples)))


def encoder_frames(samples: int, windows: tuple[int, ...]) -> int:
    """The smallest of *windows* (mel frames) that holds *samples* of 16 kHz audio plus the margin."""
    needed = _frames_needed(samples)
    return next((w for w in sorted(windows) if w >= needed), FULL_FRAMES)


def window_speech_s(windows: tuple[int, ...]) -> float:
    """
    The most speech one window of a note is given: what the largest of *windows* below 30 s holds with its margin.

    With only Whisper's 30 s window, 30 s. With sized windows a long note is cut into windows that fit the
    shorter encoder window (19 s of speech for 20 s), so its 30 s buffers are made only when the guard decodes
    a window again: a process that had made both sizes' buffers kept both (glibc's heap): 443 against 389 MB peak
    memory on the tuning clips as `bench/stt.py` runs them (ADR 0018, follow-up 5).
    """
    shorter = [w for w in windows if w < FULL_FRAMES]
    if not shorter:
        return FULL_FRAMES / FRAMES_PER_S
    return (max(shorter) - MARGIN_FRAMES) / FRAMES_PER_S


def implausible(decoded: WindowDecode, audio_s: float) -> str | None:
    """Why *decoded* cannot be what *audio_s* seconds of speech said, or None when it can."""
    if is_silence(decoded.no_speech_prob, decoded.avg_logprob):
        return "no speech"
    words = len(_WORD.findall(decoded.text))
    if words == 0:
        return "no words"
    if words < MIN_WORDS_PER_S * audio_s:
        return "too few words"
    if words > MAX_WORDS_PER_S * audio_s + 3:
        return "too many words"
    encoded = decoded.text.encode("utf-8")
    if len(encoded) > 40 and len(encoded) / len(zlib.compress(encoded)) > MAX_COMPRESSION_RATIO:
        return "repetition"
    return None


@attrs.frozen
class DecodeOptions:
    """How a window is decoded (the transcriber's settings)."""

    beam_size: int
    no_repeat_ngram_size: int
    prompt: str | None = None
    hotwords: str | None = None
    #: When given, the beam's finished hypotheses are all returned and this chooses among them
    #: (`hypothesis_bias`); None keeps the model's first choice, as Whisper does.
    bias: HypothesisBias | None = None


def decode_window(engine: Any, piece: Any, language: str | None, options: DecodeOptions, frames: int) -> WindowDecode:
    """
    Decode *piece* (≤ 30 s of 16 kHz float32 samples) with an encoder window of *frames* mel frames.

    The speech is placed after `lead_frames` of digital silence, as much as the window has room for.

    *engine* is a loaded ``faster_whisper.WhisperModel``; the language is detected from the same encoder
    output when *language* is None (one encoder pass, where faster-whisper runs a separate 30 s one).

    Raises:
        RuntimeError, ValueError: CTranslate2 cannot decode the window (e.g. a prompt beyond its positions).
    """
    import numpy as np  # noqa: PLC0415 - comes with faster-whisper
    from faster_whisper.audio import pad_or_trim  # noqa: PLC0415 - optional extra
    from faster_whisper.tokenizer import Tokenizer  # noqa: PLC0415
    from faster_whisper.transcribe import get_suppressed_tokens  # noqa: PLC0415

    lead = lead_frames(len(piece), frames)
    if lead:
        piece = np.concatenate([np.zeros(lead * SAMPLES_PER_FRAME, dtype=np.float32), piece])
    features = engine.feature_extractor(piece)
    # The extractor's last frame is its padding's, as in faster-whisper's own content_frames.
    features = pad_or_trim(features[:, : max(features.shape[-1] - 1, 1)], frames)
    encoder_output = engine.encode(features)
    model = engine.model
    if not model.is_multilingual:
        language = "en"
    elif language is None:
        token, _ = model.detect_language(encoder_output)[0][0]
        language = token[2:-2]
    tokenizer = Tokenizer(engine.hf_tokenizer, model.is_multilingual, task="transcribe", language=language)
    previous = tokenizer.encode(" " + options.prompt.strip()) if options.prompt else []
    prompt = engine.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=options.hotwords)
    result = model.generate(
        encoder_output,
        [prompt],
        beam_size=options.beam_size,
        no_repeat_ngram_size=options.no_repeat_ngram_size,
        max_length=MAX_LENGTH,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        # The other finished hypotheses of the same beam: no extra search, only their tokens come back.
        num_hypotheses=options.beam_size if options.bias is not None else 1,
    )[0]
    hypotheses = tuple(
        (tokenizer.decode(ids).strip(), float(score))
        for ids, score in zip(result.sequences_ids, result.scores, strict=True)
    )
    chosen = options.bias.choose(hypotheses) if options.bias is not None else 0
    tokens = result.sequences_ids[chosen]
    # CTranslate2's score is the sum of log-probabilities over the length (length penalty 1); faster-whisper
    # averages over the tokens plus the end-of-text token the same way.
    avg_logprob = result.scores[chosen] * len(tokens) / (len(tokens) + 1)
    return WindowDecode(
        text=hypotheses[chosen][0],
        avg_logprob=avg_logprob,
        no_speech_prob=result.no_speech_prob,
        language=language,
        frames=frames,
        hypotheses=hypotheses,
    )
