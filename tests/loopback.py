"""Helpers for tests that start servers on 127.0.0.1 in other processes."""

from __future__ import annotations

import socket

import aiohttp
import anyio


async def wait_http(url: str, timeout: float = 30.0) -> None:
    """Return once *url* answers 200; fail after *timeout* seconds."""
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(timeout):
            while True:
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await anyio.sleep(0.1)


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
