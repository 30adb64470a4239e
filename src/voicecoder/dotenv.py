"""The `.env` file format voicecoder reads (`voicecoder.config` re-exports `read_dotenv`)."""

from __future__ import annotations

from pathlib import Path

from voicecoder.domain.errors import ConfigurationError

__all__ = ["read_dotenv"]


def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=value` lines; `#` comments, optional `export`, single or double quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            raise ConfigurationError(f"{path}:{number}: expected KEY=value.")
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values
