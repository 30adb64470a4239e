"""
A/B probe for the local engine's settings on the *tuning* clips (never the held-out set: that is `bench/stt.py`'s).

By default it runs both tuning sets, ``tuning`` (50 clips) and ``tuning2`` (72; ADR 0018, follow-up 7), each
hearing its own project's names; ``--set tuning`` or ``--set tuning2`` runs one.

Each variant runs in its own child process (so its peak RSS is its own VmHWM), code-aware as the bot runs it,
and the variants are interleaved round by round so a change in the machine's load hits all of them alike.
It prints per variant: corpus WER, CPU-seconds per audio-second, wall RTF (model load excluded), peak RSS,
and the load average around each round.

Variants are ``name:key=value,key=value`` with keys ``vad`` (``energy``, the engine's own, or ``silero``,
faster-whisper's Silero VAD as before ADR 0018's follow-up 2), ``threads`` (CTranslate2 ``cpu_threads``),
``beam``, ``windows`` (the encoder windows in seconds, e.g. ``10/15/20/30``, or ``30`` for Whisper's own),
``lang`` (the hint's language, ``en`` by default; ``none`` detects it per note as the bot does), ``hint``
(``prompt``, ``hotwords`` or ``both``), ``omp_wait`` (``OMP_WAIT_POLICY``) and ``omp_threads``
(``OMP_NUM_THREADS``). Follow-up 4 added ``context`` (the prompt's sample sentences: a name in `CONTEXTS`),
``lp`` (CTranslate2's ``length_penalty``), ``blank`` (``suppress_blank``, 1 or 0), ``rep`` (``repetition_penalty``),
``ngram`` (``no_repeat_ngram_size``), ``gain`` (scale the PCM so its loud frames sit at this dBFS before the
mel), ``trim`` (1: ``malloc_trim`` after each note), ``mmap`` (glibc's
``MALLOC_MMAP_THRESHOLD_``), ``lead`` (seconds of silence before the speech, `whisper_window.LEAD_FRAMES`,
or ``centre``) and ``long`` (1: decode the 40 s fixture note first, so a
sized window's peak RSS includes the 30 s window's buffers, as in ``bench/stt.py``).
Follow-up 6 added ``patience`` (CTranslate2's beam ``patience``), ``terms`` (``camel``: CamelCase names in the
prompt in their spoken form too; ``symfirst``: multi-word names first; ``camelsym``: both; ``dotted``: files
said with their extension, ``worker dot py``), ``order`` (``names-first``: the names before the sample
sentences), ``fit`` (``1``: names dropped from the end until the whole prompt fits the 223 tokens Whisper keeps
of it, which otherwise drops the sentences' start; ``front``: names dropped from the front instead; ``words``:
one-word names dropped first), and ``second`` (a window whose average log-probability is under ``lpmin``,
default -0.55, is decoded again with this lead in seconds, or in the encoder window ``secwin`` in seconds, and
the likelier decode is kept).
Follow-up 7 added ``bonus`` and ``cap`` (N-best rescoring toward the hints' keyterms: the transcriber's
``bias_bonus`` and ``bias_cap``; ``cap`` defaults to ``bonus``, one term's worth) and ``nbest`` (``1``: every window
returns the beam's finished hypotheses, the model's first choice kept, so ``--dump`` has them for
`bench/stt_nbest.py` to rescore offline), and ``punct`` (``0``: punctuation tokens suppressed, so the beam's
places go to different words rather than a comma or a capital more; the bench's scoring ignores punctuation)
and ``stretch`` (each window resampled this many times longer before the mel: slower, and lower by as much).
The ``guard`` column counts windows decoded again in 30 s (`whisper_window.implausible`).

Run: ``.venv/bin/python bench/stt_ab.py [--set tuning-all] [--rounds 2] [--clips N] [--errors]
silero:vad=silero energy:vad=energy``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE.parent.parent))

from bench.stt import CORPUS, SETS, TUNING_SETS, heard, materialise, own_peak_mb  # noqa: E402
from bench.stt_normalise import corpus_wer, normalise  # noqa: E402


def _silero_windows(samples: Any, limit_s: float = 30.0) -> list[list[tuple[int, int]]]:
    """faster-whisper's Silero VAD over ≤ 30 s slices, as the engine ran it before the loudness gate."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # noqa: PLC0415

    from voicecoder.adapters.stt.speech_spans import RATE, WINDOW_S, slice_ends  # noqa: PLC0415

    options = VadOptions(max_speech_duration_s=min(WINDOW_S, limit_s))
    windows: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    length = 0
    offset = 0
    for end in slice_ends(samples, limit_s):
        found = get_speech_timestamps(samples[offset:end], options)
        base, offset = offset, end
        for chunk in found:
            span = (int(chunk["start"]) + base, int(chunk["end"]) + base)
            if current and length + span[1] - span[0] > limit_s * RATE:
                windows.append(current)
                current, length = [], 0
            current.append(span)
            length += span[1] - span[0]
    if current:
        windows.append(current)
    return windows


#: Candidate sample sentences for the prompt (``context=<name>``); ``default`` is `CODING_CONTEXT`.
CONTEXTS: dict[str, str | None] = {
    "none": None,
    "short": "Show the git diff and commit. Run pytest. Update the README.",
    "mid": (
        "Run pytest and show the git diff. Commit the changes and merge the branch. "
        "Pip install a package and update the README."
    ),
}


class _Generate:
    """The CTranslate2 model with extra ``generate`` keywords (decoder settings the engine does not expose)."""

    def __init__(self, model: Any, extra: dict[str, Any]) -> None:
        self._model = model
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        extra = dict(self._extra)
        if "suppress_tokens" in extra:  # added to the engine's own list, not instead of it
            extra["suppress_tokens"] = sorted({*kwargs.get("suppress_tokens", ()), *extra["suppress_tokens"]})
        return self._model.generate(*args, **{**kwargs, **extra})


def _variant_prompt(settings: dict[str, str], tokenizer: Any, hints: Any, **_: Any) -> str | None:
    """The engine's prompt built another way (``terms``, ``order``, ``fit``): probes of the hint list's form."""
    from voicecoder.adapters.stt.code_vocabulary import _CAMEL, hint_prompt  # noqa: PLC0415

    if hints is None or not hints.context:
        return None
    said = hints.context.lower()
    names = [t for t in hints.keyterms if t.strip().lower() not in said]
    if settings.get("terms") in {"camel", "camelsym"}:  # every name in its spoken form, CamelCase too
        names = list(
            dict.fromkeys(_CAMEL.sub(" ", n).lower() if n[:1].isupper() and " " not in n else n for n in names)
        )
    if settings.get("terms") in {"symfirst", "camelsym"}:  # multi-word names (symbols) first, single words after
        names = [n for n in names if " " in n] + [n for n in names if " " not in n]
    context = hints.context
    budget = 223  # Whisper keeps only the last 223 tokens of previous text

    def render(chosen: list[str]) -> str:
        listed = hint_prompt(chosen, max_chars=10_000) or ""
        if settings.get("order") == "names-first":
            return f"In this project: {listed} {context}" if listed else context
        return f"{context} In this project: {listed}" if listed else context

    if settings.get("fit") == "1":  # drop names from the end until the whole prompt fits
        while names and len(tokenizer.encode(" " + render(names)).ids) > budget:
            names.pop()
    elif settings.get("fit") == "words":  # drop one-word names (stems, folders: everyday words) first, from the end
        while len(tokenizer.encode(" " + render(names)).ids) > budget:
            single = [i for i, n in enumerate(names) if " " not in n]
            if not single:
                while names and len(tokenizer.encode(" " + render(names)).ids) > budget:
                    names.pop()
                break
            names.pop(single[-1])
    elif settings.get("fit") == "front":  # keep the names, drop names from the front (branches, files) instead
        while names and len(tokenizer.encode(" " + render(names)).ids) > budget:
            names.pop(0)
    return render(names)


def child(settings: dict[str, str], clips: int | None, corpus_set: str = "tuning-all") -> dict[str, Any]:
    import anyio  # noqa: PLC0415

    from voicecoder.adapters.stt import (  # noqa: PLC0415
        CodeAwareTranscriber,
        LocalWhisperTranscriber,
        WorkspaceVocabulary,
        local_whisper,
        whisper_window,
    )
    from voicecoder.adapters.stt.hypothesis_bias import HypothesisBias  # noqa: PLC0415
    from voicecoder.domain.model import Audio, TranscriptionHints  # noqa: PLC0415

    if settings.get("vad", "energy") == "silero":
        local_whisper._speech_windows = _silero_windows  # type: ignore[attr-defined]
    decodes: list[dict[str, Any]] = []
    decode_window = local_whisper.decode_window  # type: ignore[attr-defined]

    def recorded(engine: Any, piece: Any, language: Any, options: Any, frames: int) -> Any:  # every window's decode
        if settings.get("nbest") == "1" and options.bias is None:  # the beam's hypotheses, the model's choice kept
            options = attrs.evolve(options, bias=HypothesisBias(frozenset(), 0.0, 0.0))
        result = decode_window(engine, piece, language, options, frames)
        decodes.append(
            {
                "frames": result.frames,
                "logprob": result.avg_logprob,
                "no_speech": result.no_speech_prob,
                "hypotheses": result.hypotheses,
            }
        )
        return result

    local_whisper.decode_window = recorded  # type: ignore[attr-defined]
    if "second" in settings:  # a second opinion on a doubtful window: another lead, the likelier decode kept
        threshold = float(settings.get("lpmin", "-0.55"))
        other_lead = round(float(settings["second"]) * 100)
        other_frames = round(float(settings.get("secwin", "0")) * 100)  # another encoder window instead (0: same)

        def second_opinion(engine: Any, piece: Any, language: Any, options: Any, frames: int) -> Any:
            first = recorded(engine, piece, language, options, frames)
            if first.avg_logprob >= threshold:
                return first
            own, whisper_window.LEAD_FRAMES = whisper_window.LEAD_FRAMES, other_lead
            try:
                other = recorded(engine, piece, language, options, other_frames or frames)
            finally:
                whisper_window.LEAD_FRAMES = own
            return other if other.avg_logprob > first.avg_logprob else first

        local_whisper.decode_window = second_opinion  # type: ignore[attr-defined]
    if settings.get("pad") == "floor":  # pad features as OpenAI's Whisper does: the log-mel of digital silence
        import faster_whisper.audio  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415

        def pad_floor(array: Any, length: int = 3000) -> Any:
            array = array[..., :length]
            return np.pad(array, ((0, 0), (0, length - array.shape[-1])), constant_values=array.max() - 2.0)

        faster_whisper.audio.pad_or_trim = pad_floor
    encoder = tuple(int(float(s) * 100) for s in settings.get("windows", "10/15/20/30").split("/"))
    whisper = LocalWhisperTranscriber(
        cpu_threads=int(settings.get("threads", "2")),
        beam_size=int(settings.get("beam", "5")),
        encoder_windows=encoder,
        hint_mode=settings.get("hint", "prompt"),
        bias_bonus=float(settings.get("bonus", "0")),
        bias_cap=float(settings.get("cap", settings.get("bonus", "0"))),
    )
    if settings.get("terms") == "dotted":  # files in the hints as said with their extension: "worker dot py"
        from voicecoder.adapters.stt import code_aware, code_vocabulary  # noqa: PLC0415

        def dotted(workspace: Any, **kwargs: Any) -> tuple[str, ...]:
            said = [
                f"{m['stem']} dot {m['ext']}" if (m := code_vocabulary._EXTENSION.match(n)) and "/" not in n else n
                for n in workspace
            ]
            return code_vocabulary.recognizer_terms(said, **kwargs)

        code_aware.recognizer_terms = dotted  # type: ignore[attr-defined]
    if "context" in settings and settings["context"] != "default":
        aware = CodeAwareTranscriber(whisper, context=CONTEXTS[settings["context"]])
    else:
        aware = CodeAwareTranscriber(whisper)
    engine = whisper.load()
    extra: dict[str, Any] = {}
    if "lp" in settings:
        extra["length_penalty"] = float(settings["lp"])
    if "blank" in settings:
        extra["suppress_blank"] = settings["blank"] == "1"
    if "rep" in settings:
        extra["repetition_penalty"] = float(settings["rep"])
    if "ngram" in settings:
        extra["no_repeat_ngram_size"] = int(settings["ngram"])
    if "patience" in settings:
        extra["patience"] = float(settings["patience"])
    if settings.get("punct") == "0":  # no punctuation tokens: the beam's places go to other words, not commas
        marks = (".", ",", "?", "!", ":", ";", " .", " ,", " -", "...")
        encoded = [engine.hf_tokenizer.encode(m, add_special_tokens=False).ids for m in marks]
        extra["suppress_tokens"] = sorted({ids[0] for ids in encoded if len(ids) == 1})
    if extra:
        engine.model = _Generate(engine.model, extra)
    if {"terms", "order", "fit"} & settings.keys():
        local_whisper.whisper_prompt = functools.partial(  # type: ignore[attr-defined]
            _variant_prompt, settings, engine.hf_tokenizer
        )
    if "gain" in settings:
        import numpy as np  # noqa: PLC0415

        target = float(settings["gain"])
        extract = engine.feature_extractor

        def levelled(piece: Any, *args: Any, **kwargs: Any) -> Any:
            frames = piece[: len(piece) // 320 * 320].reshape(-1, 320)
            loud = 10 * np.log10(max(float(np.percentile((frames**2).mean(axis=1), 98)), 1e-12))
            return extract((piece * 10 ** ((target - loud) / 20)).astype(np.float32), *args, **kwargs)

        engine.feature_extractor = levelled
    if "stretch" in settings:  # the audio played slower by this factor: longer, and lower by as much
        import numpy as np  # noqa: PLC0415

        factor = float(settings["stretch"])
        extract_slow = engine.feature_extractor

        def slower(piece: Any, *args: Any, **kwargs: Any) -> Any:
            at = np.arange(int(len(piece) * factor)) / factor
            return extract_slow(np.interp(at, np.arange(len(piece)), piece).astype(np.float32), *args, **kwargs)

        engine.feature_extractor = slower
    if settings.get("lead", "").replace(".", "", 1).isdigit():  # the engine's own lead, in seconds
        whisper_window.LEAD_FRAMES = round(float(settings["lead"]) * 100)
    elif settings.get("lead") == "centre":  # the speech in the middle of the window instead
        import numpy as np  # noqa: PLC0415

        whisper_window.LEAD_FRAMES = 0
        extract_at = engine.feature_extractor
        window_s = int(settings.get("windows", "30").split("/")[0])

        def centred(piece: Any, *args: Any, **kwargs: Any) -> Any:
            silence = np.zeros(int(max(window_s - 1 - len(piece) / 16000, 0) / 2 * 16000), dtype=np.float32)
            return extract_at(np.concatenate([silence, piece]), *args, **kwargs)

        engine.feature_extractor = centred
    if settings.get("trim") == "1":
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None)
        run_windows = LocalWhisperTranscriber._decode_windows

        def trimmed(*args: Any) -> Any:
            try:
                return run_windows(*args)
            finally:
                libc.malloc_trim(0)

        LocalWhisperTranscriber._decode_windows = trimmed  # type: ignore[method-assign,assignment]
    corpus: list[tuple[dict[str, Any], bytes, tuple[str, ...]]] = []
    for name in SETS[corpus_set]:  # each set hears the names of its own project
        folder = CORPUS / name
        meta = json.loads((folder / "transcripts.json").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as tmp:
            materialise(meta["workspace"], Path(tmp) / "project")
            names = WorkspaceVocabulary(Path(tmp) / "project").scan()
        corpus += [(clip, (folder / clip["file"]).read_bytes(), names) for clip in meta["clips"][:clips]]
    pairs: list[tuple[str, str]] = []
    # "none": detected per note, as the bot does when no language is configured.
    language = None if settings.get("lang", "en") == "none" else settings.get("lang", "en")
    windows: list[list[dict[str, Any]]] = []
    totals = {"audio": 0.0, "wall": 0.0, "cpu": 0.0}

    async def run() -> None:
        if settings.get("long") == "1":  # not scored: only so the 30 s window's buffers are in the peak
            from voicecoder.testing.voice_clips import LONG_CLIP, voice_clip  # noqa: PLC0415

            hints = TranscriptionHints(keyterms=corpus[0][2], language="en")
            await heard(aware, Audio(voice_clip(LONG_CLIP).read()), hints)
            decodes.clear()
        for clip, data, names in corpus:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            text = await heard(aware, Audio(data), TranscriptionHints(keyterms=names, language=language))
            totals["wall"] += time.perf_counter() - wall0
            totals["cpu"] += time.process_time() - cpu0
            totals["audio"] += clip["duration_s"]
            pairs.append((clip["text"], text))
            windows.append(decodes[:])
            decodes.clear()

    anyio.run(run)
    return {
        "wer": corpus_wer(pairs),
        "cpu_per_audio_s": totals["cpu"] / totals["audio"],
        "rtf": totals["wall"] / totals["audio"],
        "vm_hwm_mb": own_peak_mb(),
        "guard": whisper.guard_redecodes,
        "pairs": pairs,
        "windows": windows,
    }


def word_errors(reference: str, hypothesis: str) -> list[str]:
    """The word errors of *hypothesis*, normalised as scored: ``sub 'diff'->'need'``, ``del 'a'``, ``ins 'the'``."""
    import difflib  # noqa: PLC0415

    ref, hyp = normalise(reference), normalise(hypothesis)
    found = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_opcodes():
        if op == "replace":
            found.append(f"sub {' '.join(ref[i1:i2])!r}->{' '.join(hyp[j1:j2])!r} at {i1}/{len(ref)}")
        elif op == "delete":
            found.append(f"del {' '.join(ref[i1:i2])!r} at {i1}/{len(ref)}")
        elif op == "insert":
            found.append(f"ins {' '.join(hyp[j1:j2])!r} at {i1}/{len(ref)}")
    return found


def print_errors(results: dict[str, list[dict[str, Any]]]) -> None:
    """Per clip, each variant's word errors (first round), for the clips where any variant erred."""
    names = list(results)
    for index, pairs in enumerate(zip(*(results[n][0]["pairs"] for n in names), strict=True)):
        errors = {n: word_errors(ref, hyp) for n, (ref, hyp) in zip(names, pairs, strict=True)}
        if any(errors.values()):
            print(f"#{index + 1} {pairs[0][0]}")
            for name, (_, hyp) in zip(names, pairs, strict=True):
                print(f"  {name:<12} {hyp!r}  {'; '.join(errors[name]) or 'no errors'}")


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    return name, dict(item.split("=", 1) for item in rest.split(",") if item)


def run_variant(settings: dict[str, str], clips: int | None, corpus_set: str) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": settings.get("omp_threads", "2")}
    if "omp_wait" in settings:
        env["OMP_WAIT_POLICY"] = settings["omp_wait"]
    if "mmap" in settings:  # glibc's fixed mmap threshold in bytes (no dynamic raising after a free)
        env["MALLOC_MMAP_THRESHOLD_"] = settings["mmap"]
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", json.dumps(settings), "--set", corpus_set]
        + (["--clips", str(clips)] if clips is not None else []),
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.decode("utf-8", "replace"))
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("variants", nargs="*", default=["energy:vad=energy"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--clips", type=int, help="only the first N clips of each set (default: all)")
    parser.add_argument("--set", default="tuning-all", choices=TUNING_SETS, help="which tuning clips")
    parser.add_argument("--dump", help="write every transcript to this JSON file")
    parser.add_argument("--errors", action="store_true", help="print each clip's word errors per variant")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child), args.clips, args.set)))
        return 0
    variants = [parse_variant(v) for v in args.variants]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    loads: list[str] = []
    for _ in range(args.rounds):
        before = os.getloadavg()[0]
        for name, settings in variants:
            results[name].append(run_variant(settings, args.clips, args.set))
        loads.append(f"{before:.1f}->{os.getloadavg()[0]:.1f}")
    clips = len(results[variants[0][0]][0]["pairs"])
    print(f"tuning clips: {clips} ({args.set})  rounds: {args.rounds}  load average per round: {', '.join(loads)}")
    header = f"{'variant':<16} {'WER':>6} {'CPU-s/s':>16} {'wall RTF':>16} {'peak RSS MB':>16} {'guard':>5}"
    print(header)
    print("-" * len(header))
    for name, runs in results.items():

        def spread(key: str, runs: list[dict[str, Any]] = runs) -> str:
            values = [r[key] for r in runs]
            return f"{min(values):.3f}-{max(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"

        print(
            f"{name:<16} {runs[0]['wer']:>6.3f} {spread('cpu_per_audio_s'):>16} {spread('rtf'):>16} "
            f"{spread('vm_hwm_mb'):>16} {runs[0].get('guard', 0):>5}"
        )
    if args.errors:
        print_errors(results)
    if args.dump:
        dump = {n: {"pairs": r[0]["pairs"], "windows": r[0]["windows"]} for n, r in results.items()}
        Path(args.dump).write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
