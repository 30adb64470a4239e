"""Adapters: the ports implemented on real systems, grouped by the system they wrap."""

from __future__ import annotations

from voicecoder.adapters.git import DulwichWorkspace

__all__ = ["DulwichWorkspace"]
