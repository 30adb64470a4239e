"""
When a Bot API call is tried again, and how fast calls go out.

`RetryPolicy` bounds the attempts and the exponential back-off; `TokenBucketPacer` keeps to a token bucket per
chat (about 1 message/s with a small burst) and one overall (30/s), as `PacingPolicy` sets them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import attrs


@attrs.frozen
class RetryPolicy:
    """
    How hard to try.

    *attempts* in total per call; 5xx/timeouts/connection errors wait
    ``base_delay * 2**n`` (capped at *max_delay*, with jitter); a 429 waits its ``retry_after`` unless
    that is longer than *max_retry_after* (then the error is raised so the caller can decide).
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        delay: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


@attrs.frozen
class PacingPolicy:
    """Send rates (messages/s) and bursts; a rate of 0 turns that limit off."""

    per_chat_rate: float = 1.0
    per_chat_burst: int = 3
    global_rate: float = 30.0
    global_burst: int = 30


@attrs.define
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    stamp: float

    def reserve(self, now: float) -> float:
        """Take one token (possibly borrowing from the future); return how long to wait for it."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class TokenBucketPacer:
    """Token buckets keyed by chat plus one global bucket; `reserve` says how long a send must wait to go out."""

    def __init__(self, policy: PacingPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._chats: dict[int | str, _Bucket] = {}
        now = clock()
        self._global = (
            _Bucket(policy.global_rate, policy.global_burst, policy.global_burst, now) if policy.global_rate else None
        )

    def reserve(self, chat: int | str) -> float:
        """Book a send slot for *chat*; the delay before it may go out."""
        now = self._clock()
        delay = 0.0
        p = self._policy
        if p.per_chat_rate:
            bucket = self._chats.get(chat)
            if bucket is None:
                if len(self._chats) > 10_000:
                    self._prune(now)
                bucket = self._chats[chat] = _Bucket(p.per_chat_rate, p.per_chat_burst, p.per_chat_burst, now)
            delay = bucket.reserve(now)
        if self._global is not None:
            delay = max(delay, self._global.reserve(now))
        return delay

    def _prune(self, now: float) -> None:
        for key, bucket in list(self._chats.items()):
            if bucket.tokens + (now - bucket.stamp) * bucket.rate >= bucket.capacity:
                del self._chats[key]
