"""
The composition root: the only place that knows which adapter plays which port.

* ``container``: the dependency-injector `Container` and `build_container` (synchronous providers).
* ``runtime``: `open_runtime` and `lifetime`, the one place that opens and closes what the container built.
* ``embedded``: `open_voicecoder` for your own bot, `for_tests` for tests: the same container, ports given.
* ``sandbox``: the sandbox's container (agent, speech engine and Bot API URL overridden).
* ``operator``: what the operator commands (`webhook`, `selftest`) run against Telegram.
* ``doctor``: `voicecoder doctor` and /info's process checks.

Entrypoints import this package and no adapter (import-linter checks it).
"""

from __future__ import annotations

from voicecoder.bootstrap.container import Container, build_container, cli_error_hint
from voicecoder.bootstrap.doctor import doctor
from voicecoder.bootstrap.embedded import for_tests, open_voicecoder
from voicecoder.bootstrap.runtime import lifetime, open_runtime

__all__ = [
    "Container",
    "build_container",
    "cli_error_hint",
    "doctor",
    "for_tests",
    "lifetime",
    "open_runtime",
    "open_voicecoder",
]
