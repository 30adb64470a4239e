"""
The error boundary of `VoiceCoder`'s public use cases: only `VoicecoderError`s leave them.

See `voicecoder.domain.services` for what a caller must catch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from voicecoder.domain.errors import UnexpectedAdapterError, VoicecoderError

__all__ = ["use_case"]

logger = logging.getLogger("voicecoder.domain.services")

_P = ParamSpec("_P")
_R = TypeVar("_R")
_S = TypeVar("_S")


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def use_case(
    fn: Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]]:
    """The error boundary of a public use case: only `VoicecoderError`s leave it (see the module docstring)."""

    @functools.wraps(fn)
    async def boundary(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(self, *args, **kwargs)
        except VoicecoderError:
            raise
        except Exception as exc:
            # A task group (progress heartbeat + agent) wraps what failed in it: surface the failure itself.
            leaf = _first_leaf(exc) if isinstance(exc, BaseExceptionGroup) else exc
            if isinstance(leaf, VoicecoderError):
                raise leaf from exc
            logger.exception("%s: an adapter raised %s outside its port's contract", fn.__name__, type(leaf).__name__)
            raise UnexpectedAdapterError(type(leaf).__name__) from exc

    return boundary
