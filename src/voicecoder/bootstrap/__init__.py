"""
The composition root: the only place that knows which adapter plays which port.

* ``container``: the dependency-injector `Container` and `build_container` (synchronous providers).
* ``telegram``: the container's chat side (`Telegram`), which `webhook …` builds alone (`build_telegram`).
* ``runtime``: `open_runtime` and `lifetime`, the one place that opens and closes what the container built.
* ``embedded``: `open_voicecoder` for your own bot, `for_tests` for tests: the same container, ports given.
* ``sandbox``: the sandbox's container (agent, speech engine and Bot API URL overridden).
* ``operator``: what the operator commands (`webhook`, `selftest`) run against Telegram.
* ``doctor``: `voicecoder doctor` and /info's process checks.

Entrypoints import this package and no adapter (import-linter checks it).

The names are loaded on first use: the container imports every adapter (dependency-injector, dulwich, aiohttp,
the speech engines), which a command that stops at a configuration error or only talks to the Bot API never needs.
`doctor` is imported from its module: once loaded, a submodule's name on the package is the module itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecoder.lazy import lazy_exports

if TYPE_CHECKING:
    from voicecoder.bootstrap.container import Container, build_container, cli_error_hint
    from voicecoder.bootstrap.embedded import for_tests, open_voicecoder
    from voicecoder.bootstrap.runtime import lifetime, open_runtime

_MODULES = {
    "Container": ".container",
    "build_container": ".container",
    "cli_error_hint": ".container",
    "for_tests": ".embedded",
    "open_voicecoder": ".embedded",
    "lifetime": ".runtime",
    "open_runtime": ".runtime",
}

__all__ = [
    "Container",
    "build_container",
    "cli_error_hint",
    "for_tests",
    "lifetime",
    "open_runtime",
    "open_voicecoder",
]

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
