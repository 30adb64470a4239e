"""Prometheus metrics, and port decorators that record agent and speech timings."""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs
import prometheus_client.metrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from voicecoder.domain.errors import TranscriptionError
from voicecoder.domain.model import AgentRequest, AgentResult, Audio, Diagnostic, Transcript, TranscriptionHints
from voicecoder.domain.ports import AgentRunner, EventSink, ToolGate, Transcriber

if TYPE_CHECKING:
    from voicecoder.domain.inbox import InboxItem

CONTENT_TYPE = CONTENT_TYPE_LATEST
_updates_log = logging.getLogger("voicecoder.updates")


class Metrics:
    """One registry per process (or per test), so tests never see each other's counts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Counted per update, on the event loop: plain numbers that the registry reads at scrape time.
        self.update_counts = UpdateCounts()
        r.register(self.update_counts)
        self.agent_seconds = Histogram(
            "voicecoder_agent_run_seconds",
            "Claude Code run duration.",
            ["outcome"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.agent_cost = Counter("voicecoder_agent_cost_usd_total", "Reported agent cost in USD.", registry=r)
        self.stt_seconds = Histogram(
            "voicecoder_stt_seconds",
            "Speech-to-text duration.",
            ["provider", "outcome"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.telegram_errors = Counter(
            "voicecoder_telegram_api_errors_total", "Bot API errors by error code.", ["code"], registry=r
        )
        self.inbox_depth = Gauge("voicecoder_inbox_depth", "Updates stored and not yet processed.", registry=r)
        self.telegram_pending = Gauge(
            "voicecoder_telegram_pending_updates",
            "Updates Telegram holds for the bot, not yet delivered (getWebhookInfo pending_update_count, read "
            "every minute).",
            registry=r,
        )

    def count_telegram_error(self, method: str, code: int) -> None:
        """Hook for the Bot API client: every error response (or network failure, code 0) by error code."""
        self.telegram_errors.labels(str(code)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class UpdateCounts(Collector):
    """
    ``voicecoder_updates_total`` by outcome and ``voicecoder_update_processing_seconds``, as plain numbers.

    A prometheus_client ``Counter.inc`` or ``Histogram.observe`` takes a lock per value and the histogram scans
    its buckets; with three of them per update that was ~2 µs of the busy event loop's CPU per update
    (ADR 0041). Here an outcome is one dict update and an observation a bisection, on the event loop's thread
    only; :meth:`collect` renders the same samples a Counter with an ``outcome`` label and a Histogram would,
    ``_created`` series included (when prometheus_client exports them).
    """

    BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, math.inf)
    _LE: tuple[str, ...] = tuple(floatToGoString(b) for b in BUCKETS)  # type: ignore[no-untyped-call]

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self._outcome_created: dict[str, float] = {}
        self._in_bucket = [0] * len(self.BUCKETS)  # observations per bucket (not cumulative)
        self._sum = 0.0
        self._created = time.time()

    def count(self, outcome: str) -> None:
        count = self.outcomes.get(outcome)
        if count is None:
            self._outcome_created[outcome] = time.time()
            count = 0
        self.outcomes[outcome] = count + 1

    def observe(self, seconds: float) -> None:
        self._sum += seconds
        if seconds <= math.inf:  # as a Histogram: NaN counts in the sum, in no bucket
            self._in_bucket[bisect.bisect_left(self.BUCKETS, seconds)] += 1

    def describe(self) -> Iterable[Metric]:
        return self._families(samples=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(samples=True)

    def _families(self, *, samples: bool) -> list[Metric]:
        created = _created_series()
        updates = Metric("voicecoder_updates", _UPDATES_HELP, "counter")
        seconds = Metric("voicecoder_update_processing_seconds", _PROCESSING_HELP, "histogram")
        if samples:
            for outcome, count in list(self.outcomes.items()):
                updates.add_sample("voicecoder_updates_total", {"outcome": outcome}, float(count))
                if created:
                    updates.add_sample(
                        "voicecoder_updates_created", {"outcome": outcome}, self._outcome_created[outcome]
                    )
            total = 0
            for le, count in zip(self._LE, list(self._in_bucket), strict=True):
                total += count
                seconds.add_sample("voicecoder_update_processing_seconds_bucket", {"le": le}, float(total))
            seconds.add_sample("voicecoder_update_processing_seconds_count", {}, float(total))
            seconds.add_sample("voicecoder_update_processing_seconds_sum", {}, self._sum)
            if created:
                seconds.add_sample("voicecoder_update_processing_seconds_created", {}, self._created)
        return [updates, seconds]


_UPDATES_HELP = (
    "Telegram updates by outcome: acked, duplicate, ignored, rejected (webhook requests); processed, retried, "
    "failed (handling, both modes)."
)
_PROCESSING_HELP = "Time from taking an update off the inbox to finishing it."


def _created_series() -> bool:
    """Whether prometheus_client exports ``_created`` series (``PROMETHEUS_DISABLE_CREATED_SERIES`` turns it off)."""
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


@attrs.frozen
class UpdateMetrics:
    """
    The update observer of `voicecoder serve`: each outcome counted in Prometheus, one log line per update.

    Conforms to `voicecoder.adapters.telegram.dispatcher.UpdateObserver` (the ingress and the dispatcher tell it).
    """

    metrics: Metrics

    def outcome(self, name: str, /) -> None:
        self.metrics.update_counts.count(name)

    def attempted(self, seconds: float, /) -> None:
        self.metrics.update_counts.observe(seconds)

    def processed(self, lane: str, seconds: float, /) -> None:
        self.metrics.update_counts.count("processed")
        _updates_log.info("update processed lane=%s duration_ms=%.1f", lane, seconds * 1000)

    def retried(self, item: InboxItem, error: str, /) -> None:
        self.metrics.update_counts.count("retried")
        _updates_log.warning("update %s will be retried lane=%s: %s", item.update_id, item.lane, error)

    def failed(self, item: InboxItem, error: str, /) -> None:
        self.metrics.update_counts.count("failed")
        _updates_log.error("update %s failed for good lane=%s: %s", item.update_id, item.lane, error)


@attrs.define
class MeteredAgentRunner:
    """Wraps an AgentRunner to time runs and add up cost."""

    inner: AgentRunner
    metrics: Metrics

    async def run(self, request: AgentRequest, /, on_event: EventSink, on_tool: ToolGate | None = None) -> AgentResult:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self.inner.run(request, on_event, on_tool)
            outcome = "success" if result.success else "failed"
            if result.cost_usd:
                self.metrics.agent_cost.inc(result.cost_usd)
            return result
        finally:
            self.metrics.agent_seconds.labels(outcome).observe(time.perf_counter() - started)

    async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
        return await self.inner.compact(session_id, on_event)

    async def end_session(self, session_id: str, /) -> None:
        await self.inner.end_session(session_id)

    async def diagnose(self) -> Sequence[Diagnostic]:
        diagnose = getattr(self.inner, "diagnose", None)
        return list(await diagnose()) if diagnose is not None else []


@attrs.define
class MeteredTranscriber:
    """Wraps a Transcriber to time transcriptions by provider and outcome."""

    inner: Transcriber
    metrics: Metrics
    provider: str

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        started = time.perf_counter()
        outcome = "error"
        try:
            transcript = await self.inner.transcribe(audio, hints)
        except TranscriptionError as exc:
            outcome = type(exc).__name__
            raise
        else:
            outcome = "ok"
            return transcript
        finally:
            self.metrics.stt_seconds.labels(self.provider, outcome).observe(time.perf_counter() - started)

    async def diagnose(self) -> Sequence[Diagnostic]:
        diagnose = getattr(self.inner, "diagnose", None)
        return list(await diagnose()) if diagnose is not None else []
