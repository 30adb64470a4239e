"""Helpers for tests that start servers on 127.0.0.1 in other processes."""

from __future__ import annotations

import aiohttp
import anyio

from voicecoder.testing.ports import free_port

__all__ = ["free_port", "wait_http"]


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
