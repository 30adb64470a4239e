"""
Keep voicecoder's own environment out of the agent's reach on the same machine.

The agent's environment is an allow-list (`agent_environment`), but the agent runs as the same user as
voicecoder, and a same-user process can read another's ``/proc/<pid>/environ`` — where the bot token, the webhook
secret and the STT keys voicecoder was started with still stand, whatever it does to ``os.environ`` later. Linux's
``prctl(PR_SET_DUMPABLE, 0)`` makes this process's ``/proc`` entries root's (``environ``, ``mem``, ``maps``) and
refuses ``ptrace`` from the same user; processes it starts get their own flag back when they exec. The cost: no
core dumps, and attaching a debugger or ``py-spy`` as the same user needs root. Root (or CAP_SYS_PTRACE) can
still read everything: run the service as its own user (the deployment files do).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["hide_own_environment"]

log = logging.getLogger(__name__)

_PR_SET_DUMPABLE = 4


def hide_own_environment() -> bool:
    """Make this process non-dumpable (Linux); True if done, False elsewhere or if the kernel refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        done = int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        done = False
    if not done:
        log.warning("could not hide voicecoder's environment from the agent (prctl PR_SET_DUMPABLE failed)")
    return done
