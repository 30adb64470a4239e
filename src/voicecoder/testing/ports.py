"""
Ports for servers a test starts in another process (PostgreSQL, ``voicecoder serve``, a fake Bot API).

``bind(0)`` would hand out an ephemeral port, which the kernel may give to any outgoing connection (a suite opens
thousands) before the server that was told to use it binds it, and the server then fails to start. Ports are
instead taken from a slice of the ports below the ephemeral range, one slice per xdist worker, each port only once
per process, and checked free.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = ["free_port"]

#: Ports below the kernel's ephemeral range are handed out only to an explicit bind, never to some client's
#: outgoing socket, so a port chosen there stays free until the server that was told to use it binds.
_FIRST_PORT = 10_000
_WORKER_SLICES = 16


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _port_candidates() -> Iterator[int]:
    """This process's slice of the ports below the ephemeral range, one xdist worker per slice."""
    floor = _ephemeral_floor()
    width = (floor - _FIRST_PORT) // _WORKER_SLICES
    if width < 50:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % _WORKER_SLICES if worker.isdigit() else 0
    start = _FIRST_PORT + index * width
    # A fresh start per process: a new pytest run on the same worker index does not meet the last one's sockets
    # lingering in TIME_WAIT on the same ports.
    offset = os.getpid() % width
    for step in range(width):
        yield start + (offset + step) % width


_CANDIDATES = _port_candidates()


def free_port() -> int:
    """A port on 127.0.0.1, free now, for a server another process will start (see the module's docstring)."""
    for port in _CANDIDATES:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the slice is used up (or the range is too small): let the OS choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
