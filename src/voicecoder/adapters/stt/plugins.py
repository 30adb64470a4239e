"""
Speech-to-text providers from other packages: the ``voicecoder.transcribers`` entry-point group.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."voicecoder.transcribers"]
    acme = "acme_stt:make_transcriber"

and ``STT_PROVIDER=acme`` selects it. The entry point is a callable taking a `PluginContext` (the audio limits,
the language, and the variables named ``ACME_*`` from the environment or ``.env``) and returning a
`Transcriber`; it should run `TranscriberContract` in its own tests. Built-in names cannot be taken over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points

import attrs

from voicecoder.adapters.stt.audio_intake import AudioLimits
from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.ports import Transcriber

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_PROVIDERS",
    "GROUP",
    "PluginContext",
    "installed_plugins",
    "load_plugin",
    "plugin_env_prefix",
    "provider_names",
]

GROUP = "voicecoder.transcribers"
BUILTIN_PROVIDERS = ("local", "deepgram", "assemblyai", "openai")


@attrs.frozen
class PluginContext:
    """What a plug-in's factory is given: its name, the limits to apply, the language, and its own settings."""

    name: str
    limits: AudioLimits
    language: str | None = None
    #: The variables whose names start with ``<NAME>_`` (upper case), from the environment or ``.env``.
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)


def plugin_env_prefix(name: str) -> str:
    return name.upper().replace("-", "_") + "_"


def installed_plugins() -> dict[str, EntryPoint]:
    """The installed plug-ins by name; one that reuses a built-in name is ignored with a warning."""
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=GROUP):
        if entry.name in BUILTIN_PROVIDERS:
            log.warning("ignoring speech-to-text plug-in %r (%s): the name is built in", entry.name, entry.value)
            continue
        found.setdefault(entry.name, entry)
    return found


def load_plugin(context: PluginContext) -> Transcriber:
    """
    Build the plug-in *context.name*.

    Raises:
        ConfigurationError: It is not installed, cannot be imported, its factory fails, or it builds no Transcriber.
    """
    entry = installed_plugins().get(context.name)
    if entry is None:
        raise ConfigurationError(
            f"No speech-to-text plug-in named {context.name!r} is installed. "
            f"Install its package or set STT_PROVIDER to one of: {', '.join(provider_names())}."
        )
    origin = f"{entry.value}" + (f" from {entry.dist.name} {entry.dist.version}" if entry.dist else "")
    try:
        factory = entry.load()
    except Exception as exc:
        raise ConfigurationError(
            f"The speech-to-text plug-in {context.name!r} ({origin}) cannot be imported: {type(exc).__name__}: {exc}. "
            "Reinstall it or choose another STT_PROVIDER."
        ) from exc
    try:
        transcriber = factory(context)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"The speech-to-text plug-in {context.name!r} ({origin}) failed to start: {type(exc).__name__}: {exc}. "
            f"Check its {plugin_env_prefix(context.name)}* settings."
        ) from exc
    if not isinstance(transcriber, Transcriber):
        raise ConfigurationError(
            f"The speech-to-text plug-in {context.name!r} ({origin}) returned {type(transcriber).__name__}, "
            "which has no transcribe() method. Report this to the plug-in's authors."
        )
    return transcriber


def provider_names() -> tuple[str, ...]:
    """Every name STT_PROVIDER accepts here: the built-in providers, then the installed plug-ins."""
    return (*BUILTIN_PROVIDERS, *sorted(installed_plugins()))
