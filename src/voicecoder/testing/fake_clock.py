"""`FakeClock`: time that moves only when a test says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

__all__ = ["FakeClock"]


@attrs.define
class FakeClock:
    """A clock that only moves when told to."""

    current: datetime = attrs.field(factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    mono: float = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds
