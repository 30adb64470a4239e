"""
Test support for voicecoder and for third parties.

Fakes of every port (`voicecoder.testing.fakes`), loopback fakes of the external APIs, and the contract
suites each implementation of a port can run.

``from voicecoder.testing import TranscriberContract`` works; the contracts are imported on first use, so
``voicecoder.testing.fakes`` stays usable without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicecoder.testing.contracts.transcriber import TranscriberContract

__all__ = ["TranscriberContract"]


def __getattr__(name: str) -> Any:
    if name == "TranscriberContract":
        from voicecoder.testing.contracts.transcriber import TranscriberContract  # noqa: PLC0415 - needs pytest

        return TranscriberContract
    raise AttributeError(f"module 'voicecoder.testing' has no attribute {name!r}")
