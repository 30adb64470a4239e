"""Prometheus metrics, and port decorators that record agent and speech timings."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
        self.updates = Counter(
            "voicecoder_updates_total",
            "Telegram updates by outcome: acked, duplicate, ignored, rejected (webhook requests); processed, retried, "
            "failed (handling, both modes).",
            ["outcome"],
            registry=r,
        )
        self.processing_seconds = Histogram(
            "voicecoder_update_processing_seconds",
            "Time from taking an update off the inbox to finishing it.",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900),
            registry=r,
        )
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


@attrs.frozen
class UpdateMetrics:
    """
    The update observer of `voicecoder serve`: each outcome counted in Prometheus, one log line per update.

    Conforms to `voicecoder.adapters.telegram.dispatcher.UpdateObserver` (the ingress and the dispatcher tell it).
    """

    metrics: Metrics
    # One child counter per outcome, looked up once: ``labels()`` takes a lock and builds a key on every call, and
    # this runs two or three times per update.
    _by_outcome: dict[str, Counter] = attrs.field(factory=dict, init=False, repr=False)

    def _count(self, name: str) -> None:
        child = self._by_outcome.get(name)
        if child is None:
            child = self._by_outcome[name] = self.metrics.updates.labels(name)
        child.inc()

    def outcome(self, name: str, /) -> None:
        self._count(name)

    def attempted(self, seconds: float, /) -> None:
        self.metrics.processing_seconds.observe(seconds)

    def processed(self, lane: str, seconds: float, /) -> None:
        self._count("processed")
        _updates_log.info("update processed lane=%s duration_ms=%.1f", lane, seconds * 1000)

    def retried(self, item: InboxItem, error: str, /) -> None:
        self._count("retried")
        _updates_log.warning("update %s will be retried lane=%s: %s", item.update_id, item.lane, error)

    def failed(self, item: InboxItem, error: str, /) -> None:
        self._count("failed")
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
