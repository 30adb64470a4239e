"""
Reading the file a getFile answer names.

Over HTTP under ``/file/bot<token>/`` (retried like a call), or, from a local Bot API server (``--local``), from its
disk inside the directory the operator named.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path
from urllib.parse import quote

import aiohttp
import yarl

from voicecoder.adapters.telegram.api_types import TelegramApiError
from voicecoder.adapters.telegram.pacing import RetryPolicy

__all__ = ["fetch", "read_capped", "read_local", "url_path"]

logger = logging.getLogger(__name__)


class _OutsideError(Exception):
    """A local file_path that does not lie inside the configured directory."""


def url_path(file_path: str) -> str | None:
    """
    *file_path* as a URL path under ``/file/bot<token>/``, every byte that is not plain percent-encoded.

    None when a segment is ``.`` or ``..`` (it would leave the file directory once the URL is normalised) or the
    path holds a backslash or a control character.
    """
    segments = file_path.split("/")
    if any(s in {".", ".."} for s in segments) or any(c == "\\" or ord(c) < 32 or ord(c) == 127 for c in file_path):
        return None
    return "/".join(quote(s, safe="") for s in segments)


async def fetch(
    http: aiohttp.ClientSession, url: yarl.URL, *, timeout_s: float, retry: RetryPolicy, max_bytes: int | None
) -> bytes:
    """
    GET *url*; 5xx, 429, timeouts and connection errors are retried as *retry* says.

    Raises:
        TelegramApiError: Another answer than 200 below 500 (404: call getFile again), larger than *max_bytes*
            (413), or the download kept failing.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status == 200:
                    return await read_capped(resp, max_bytes)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            status = 0
        else:
            reason = f"HTTP {status}"
        if 0 < status < 500 and status != 429:
            raise TelegramApiError(status, f"file download failed ({reason})", "downloadFile")
        if attempt >= retry.attempts:
            raise TelegramApiError(status, f"file download failed ({reason}) after {attempt} attempts", "downloadFile")
        delay = retry.backoff(attempt)
        logger.warning("telegram file download: %s; retry %d in %.2f s", reason, attempt, delay)
        await asyncio.sleep(delay)


async def read_local(file_path: str, root: Path | None, max_bytes: int | None, *, shown: str) -> bytes:
    """
    The file a local Bot API server left at the absolute *file_path*, if it lies inside *root*.

    *shown* is *file_path* as an error may name it (redacted: the server keeps a bot's files under a directory named
    by its token).

    Raises:
        TelegramApiError: No *root* configured, the path leaves it or is not a regular file (400), it is not there
            (404), or it is larger than *max_bytes* (413).
    """
    if root is None:
        raise TelegramApiError(
            400,
            f"getFile returned a path on the Bot API server's disk ({shown}): the server runs with --local. "
            "Set TELEGRAM_LOCAL_FILES_DIR to its --dir as this machine sees it (a shared volume) to read files "
            "from there",
            "downloadFile",
        )
    try:
        return await asyncio.to_thread(_read_inside, Path(file_path), root, max_bytes)
    except _OutsideError:
        raise TelegramApiError(
            400, f"getFile returned {shown}, outside TELEGRAM_LOCAL_FILES_DIR: not read", "downloadFile"
        ) from None
    except FileNotFoundError:
        raise TelegramApiError(
            404, f"{shown} is not on this machine: is TELEGRAM_LOCAL_FILES_DIR the server's --dir?", "downloadFile"
        ) from None
    except OSError as exc:
        raise TelegramApiError(
            400, f"could not read {shown} ({exc.strerror or type(exc).__name__})", "downloadFile"
        ) from None


def _read_inside(path: Path, root: Path, max_bytes: int | None) -> bytes:
    """
    The bytes of *path* when it resolves (links followed) to a regular file inside *root*.

    Raises:
        _OutsideError: It resolves outside *root*.
        TelegramApiError: It is larger than *max_bytes* (413).
        OSError: It cannot be read (FileNotFoundError when it is not there).
    """
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(root)):
        raise _OutsideError
    if real.exists() and not real.is_file():  # a directory, a FIFO that would block the read ...
        raise OSError(errno.EINVAL, "not a regular file")
    with real.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise TelegramApiError(413, f"file is too big ({size} bytes > {max_bytes})", "downloadFile")
        data = file.read(max_bytes + 1 if max_bytes is not None else -1)
    if max_bytes is not None and len(data) > max_bytes:
        raise TelegramApiError(413, f"file is too big (over {max_bytes} bytes)", "downloadFile")
    return data


async def read_capped(resp: aiohttp.ClientResponse, max_bytes: int | None) -> bytes:
    if max_bytes is not None and resp.content_length is not None and resp.content_length > max_bytes:
        raise TelegramApiError(413, f"file is too big ({resp.content_length} bytes > {max_bytes})", "downloadFile")
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 << 10):
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise TelegramApiError(413, f"file is too big (over {max_bytes} bytes)", "downloadFile")
        chunks.append(chunk)
    return b"".join(chunks)
