"""
CPU-heavy work (the local speech model) below the event loop's priority, so webhook acks stay fast meanwhile.

On Linux the nice value belongs to each thread and a new thread inherits its creator's: running model loading and
inference under :func:`background_priority` lowers the calling worker thread and every thread the engine starts
from it (CTranslate2's and OpenMP's pools), while the event loop's thread keeps its priority. Measured in
``bench/webhook.py --stt``: with the model's threads at nice 10 the webhook's ack latency barely moves while a
37 s note is transcribed on the same core. Elsewhere (or without /proc) this does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["BACKGROUND_NICE", "background_priority"]

log = logging.getLogger(__name__)

BACKGROUND_NICE = 10


@contextlib.contextmanager
def background_priority(nice: int = BACKGROUND_NICE) -> Iterator[None]:
    """
    Run the block with the current thread at least *nice* (threads it starts inherit that), then restore it.

    Lowering needs no privilege; raising the priority back does (CAP_SYS_NICE, e.g. root in a container).
    Without it the worker thread stays lowered, which only slows other background work that may run on it later.
    """
    tid = threading.get_native_id()
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or not Path(f"/proc/self/task/{tid}").is_dir():  # per-thread nice is Linux's
        yield
        return
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        if before < nice:
            setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        log.debug("could not lower the priority of a worker thread: %s", exc)
        yield
        return
    try:
        yield
    finally:
        if before < nice:
            with contextlib.suppress(OSError):  # without CAP_SYS_NICE the thread stays lowered
                setpriority(os.PRIO_PROCESS, tid, before)
