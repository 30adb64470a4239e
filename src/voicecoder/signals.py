"""Turning SIGTERM/SIGINT into a graceful stop, shared by every long-running entrypoint."""

from __future__ import annotations

import logging
import signal

import anyio

log = logging.getLogger(__name__)


async def stop_on_signal(stop: anyio.Event, *, label: str) -> None:
    """Set *stop* on the first SIGTERM or SIGINT; the caller then winds down in its own order."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s: received %s", label, signal.Signals(signum).name)
            stop.set()
            return
