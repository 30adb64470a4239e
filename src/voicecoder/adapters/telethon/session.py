"""
The session and client of the standalone Telethon bot (`voicecoder serve --transport telethon`).

The session is a Telethon ``SQLiteSession`` file: it holds the auth key (so it is created mode 0600), the entity
cache and the update state (pts, qts, date, seq) that lets a restarted client fetch what it missed with
``updates.getDifference``. A session *string* (Telethon's ``StringSession``, e.g. made on another machine, or by
the local fake Telegram in tests) seeds that file: the file then keeps the update state across restarts, which a
string alone cannot.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import Any

from telethon import TelegramClient
from telethon.sessions import SQLiteSession, StringSession

__all__ = ["EXTENSION", "bot_client", "bot_session", "session_file"]

EXTENSION = ".session"


def session_file(path: Path) -> Path:
    """Where Telethon keeps the session named *path* (it adds ``.session`` unless the name has it)."""
    return path if path.name.endswith(EXTENSION) else path.with_name(path.name + EXTENSION)


def _private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _remove(path: Path) -> None:
    for stale in (path, path.with_name(path.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def bot_session(path: Path, seed: str | None = None) -> SQLiteSession:
    """
    The session file at *path* (``.session`` appended if missing), seeded from the session string *seed*.

    A *seed* whose data center or auth key differs from the file's replaces the file (its update state belonged to
    the other login); the same *seed* again keeps it, so the update state survives restarts.

    Raises:
        ValueError: *seed* is not a Telethon session string.
        OSError: The file cannot be created.
    """
    file = session_file(path)
    wanted = None
    if seed is not None:
        try:
            wanted = StringSession(seed)
        except (ValueError, struct.error) as exc:
            raise ValueError("not a Telethon session string") from exc
        if wanted.auth_key is None:
            raise ValueError("the Telethon session string holds no auth key")
    _private_file(file)
    session = SQLiteSession(str(file))
    if wanted is None:
        return session
    have = session.auth_key
    same = (session.dc_id, session.server_address, session.port) == (
        wanted.dc_id,
        wanted.server_address,
        wanted.port,
    )
    if have is not None and same and have.key == wanted.auth_key.key:
        return session
    session.close()
    _remove(file)
    _private_file(file)
    session = SQLiteSession(str(file))
    session.set_dc(wanted.dc_id, wanted.server_address, wanted.port)
    session.auth_key = wanted.auth_key
    session.save()
    return session


def bot_client(session: SQLiteSession, api_id: int, api_hash: str) -> Any:
    """
    A ``TelegramClient`` for a bot that must not lose updates.

    It catches up on start (from the session's update state) and hands updates to handlers one by one, in the
    order they came.
    """
    return TelegramClient(
        session,
        api_id,
        api_hash,
        catch_up=True,
        sequential_updates=True,
        connection_retries=10,
        retry_delay=2,
        auto_reconnect=True,
    )
