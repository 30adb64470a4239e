"""
An int8 copy of a CTranslate2 model file, made the way CTranslate2 quantises weights when it loads them.

CTranslate2 loading float16 weights with ``compute_type="int8"`` reads the whole file and converts each
weight through a float32 temporary: for Whisper ``base`` the token embeddings alone make that ~100 MB, so
the load peaks about 110 MB above where the model settles. Loading weights that are already int8 skips the
conversion. `quantize_ct2_model` writes that file once, streaming, with a small memory footprint.

The binary layout (version 6) is CTranslate2's documented serialisation: a ``uint32`` version, the spec name,
a ``uint32`` revision and variable count, then per variable its name, ``uint8`` rank, ``uint32`` dimensions,
``uint8`` type id, ``uint32`` byte count and data, then the aliases (pairs of names). Strings are a ``uint16``
length (including a trailing NUL) and UTF-8 bytes. Little-endian throughout (``struct``'s native order on
the platforms CTranslate2 ships for).

What is quantised is what CTranslate2 itself quantises at load on the CPU: every two-dimensional ``…/weight``
(linear layers and embeddings), per output row, ``scale = 127 / max|row|`` and ``rint(row * scale)``, stored
with a float32 ``…/weight_scale``. Convolution weights (three-dimensional) stay as they are, because
CTranslate2 keeps them in floating point. On the tuning clips the copy decodes to exactly the same text.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["quantize_ct2_model"]

_VERSION = 6
#: CTranslate2's type ids, in the order of its DataType enum.
_TYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_FLOATS = ("float32", "float16")
#: Rows quantised at a time: bounds the float32 temporary (4096 × 512 × 4 bytes = 8 MB for Whisper base).
_ROWS = 4096


class _Reader:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        raw = self.handle.read(size)
        if len(raw) != size:
            raise ValueError("the model file ends early")
        value: int = struct.unpack(fmt, raw)[0]
        return value

    def string(self) -> str:
        length = self.unpack("<H")
        raw = self.handle.read(length)
        if length == 0 or len(raw) != length or raw[-1] != 0:
            raise ValueError("a name in the model file is malformed")
        return raw[:-1].decode("utf-8")


def _write_string(out: BinaryIO, text: str) -> None:
    raw = text.encode("utf-8")
    out.write(struct.pack("<H", len(raw) + 1) + raw + b"\0")


def _write_header(out: BinaryIO, name: str, shape: tuple[int, ...], dtype: str, nbytes: int) -> None:
    _write_string(out, name)
    out.write(struct.pack("<B", len(shape)))
    out.writelines(struct.pack("<I", dim) for dim in shape)
    out.write(struct.pack("<BI", _TYPES.index(dtype), nbytes))


def _variables(reader: _Reader) -> list[tuple[str, tuple[int, ...], str, int, int]]:
    """(name, shape, dtype, data offset, byte count) of every variable; leaves the reader at the aliases."""
    found = []
    for _ in range(reader.unpack("<I")):
        name = reader.string()
        shape = tuple(reader.unpack("<I") for _ in range(reader.unpack("<B")))
        type_id = reader.unpack("<B")
        if type_id >= len(_TYPES):
            raise ValueError(f"unknown type id {type_id} for {name}")
        nbytes = reader.unpack("<I")
        found.append((name, shape, _TYPES[type_id], reader.handle.tell(), nbytes))
        reader.handle.seek(nbytes, 1)
    return found


def _quantisable(name: str, shape: tuple[int, ...], dtype: str) -> bool:
    return name.endswith("/weight") and len(shape) == 2 and dtype in _FLOATS


def _quantise(source: BinaryIO, out: BinaryIO, name: str, shape: tuple[int, ...], dtype: str, np: Any) -> None:
    """Write *name* as int8 rows, then its float32 ``_scale``, reading *source* a block of rows at a time."""
    rows, cols = shape
    itemsize = np.dtype(dtype).itemsize
    scales = np.empty(rows, dtype=np.float32)
    _write_header(out, name, shape, "int8", rows * cols)
    for start in range(0, rows, _ROWS):
        count = min(_ROWS, rows - start)
        raw = source.read(count * cols * itemsize)
        if len(raw) != count * cols * itemsize:
            raise ValueError(f"the model file ends inside {name}")
        block = np.frombuffer(raw, dtype=dtype).reshape(count, cols).astype(np.float32)
        peak = np.amax(np.abs(block), axis=1)
        peak[peak == 0] = 127.0  # an all-zero row stays zero with any scale; avoid dividing by zero
        scale = np.float32(127.0) / peak
        scales[start : start + count] = scale
        out.write(np.rint(block * scale[:, None]).astype(np.int8).tobytes())
    _write_header(out, f"{name}_scale", (rows,), "float32", scales.nbytes)
    out.write(scales.tobytes())


def quantize_ct2_model(source: Path, target: Path) -> None:
    """
    Write to *target* the int8 copy of the CTranslate2 model file *source*.

    Raises:
        ValueError: *source* is not a version-6 CTranslate2 model file, or is truncated.
        OSError: Reading or writing failed.
    """
    import numpy as np  # noqa: PLC0415 - comes with faster-whisper

    with source.open("rb") as handle:
        reader = _Reader(handle)
        version = reader.unpack("<I")
        if version != _VERSION:
            raise ValueError(f"model file version {version}, expected {_VERSION}")
        spec = reader.string()
        revision = reader.unpack("<I")
        variables = _variables(reader)
        aliases = [(reader.string(), reader.string()) for _ in range(reader.unpack("<I"))]
        added = sum(_quantisable(name, shape, dtype) for name, shape, dtype, _, _ in variables)
        with target.open("wb") as out:
            out.write(struct.pack("<I", version))
            _write_string(out, spec)
            out.write(struct.pack("<II", revision, len(variables) + added))
            for name, shape, dtype, offset, nbytes in variables:
                handle.seek(offset)
                if _quantisable(name, shape, dtype):
                    _quantise(handle, out, name, shape, dtype, np)
                    continue
                data = handle.read(nbytes)
                if len(data) != nbytes:
                    raise ValueError(f"the model file ends inside {name}")
                _write_header(out, name, shape, dtype, nbytes)
                out.write(data)
            out.write(struct.pack("<I", len(aliases)))
            for alias, original in aliases:
                _write_string(out, alias)
                _write_string(out, original)
