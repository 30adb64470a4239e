"""
The webhook's path and secret: configured, or generated once and kept in ``DATA_DIR/webhook.json``.

The loaded :class:`Config` is the one source of truth. A WEBHOOK_PATH or WEBHOOK_SECRET that came from the
environment *or* the env file is used as is and never replaced. Only what the configuration leaves unset is
taken from ``webhook.json`` (mode 0600), or generated and stored there by the commands that need it
(`serve` and `webhook set`), so both agree across restarts. Commands that only look (`doctor`,
`webhook info`) read the file but never write it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import attrs

from voicecoder.adapters.telegram.identity import new_path, new_secret
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError

IDENTITY_FILE = "webhook.json"


def identity_path(config: Config) -> Path:
    return config.data_dir / IDENTITY_FILE


def resolve_webhook_identity(config: Config, *, create: bool) -> Config:
    """
    *config* with the webhook path and secret filled in where the configuration leaves them unset.

    With *create* the missing ones are generated and stored in DATA_DIR/webhook.json; without it nothing is
    written and what is neither configured nor stored stays None.

    Raises:
        ConfigurationError: webhook.json exists but cannot be read or is damaged, or cannot be written.
    """
    if config.webhook_path is not None and config.webhook_secret is not None:
        return config
    path = identity_path(config)
    stored = _read(path)
    wanted = dict(stored)
    if config.webhook_path is None and not stored.get("path") and create:
        wanted["path"] = new_path()
    if config.webhook_secret is None and not stored.get("secret") and create:
        wanted["secret"] = new_secret()
    if wanted != stored:
        _write(path, wanted)
    return attrs.evolve(
        config,
        webhook_path=config.webhook_path or wanted.get("path"),
        webhook_secret=config.webhook_secret or wanted.get("secret"),
    )


def _read(path: Path) -> dict[str, str]:
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigurationError(
            f"Cannot use DATA_DIR ({path.parent}): it is not a directory. Point DATA_DIR at a writable directory."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(
            f"{path} holds the generated webhook path and secret but cannot be read ({exc.strerror}). Run "
            "voicecoder as the same user as the service (its owner), or set WEBHOOK_PATH and WEBHOOK_SECRET."
        ) from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    fields = {"path": str, "secret": str}
    if not isinstance(data, dict) or any(not isinstance(data.get(k, ""), t) for k, t in fields.items()):
        raise ConfigurationError(
            f"{path} is damaged. Delete it to generate a new webhook path and secret, then run "
            "`voicecoder webhook set` again (or set WEBHOOK_PATH and WEBHOOK_SECRET)."
        )
    return {k: str(v) for k, v in data.items() if k in fields and v}


def _write(path: Path, identity: dict[str, str]) -> None:
    """Atomically, mode 0600 from the start: the file holds a secret."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".webhook-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(identity, handle)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot store the generated webhook path and secret in {path} ({exc.strerror}). Make DATA_DIR "
            "writable for this user, or set WEBHOOK_PATH and WEBHOOK_SECRET."
        ) from None


__all__ = ["IDENTITY_FILE", "identity_path", "resolve_webhook_identity"]
