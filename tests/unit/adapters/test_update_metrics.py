"""serve's update observer: every outcome counted in its own registry, one log line per processed update."""

from __future__ import annotations

import logging

import pytest

from voicecoder.adapters.prometheus_metrics import Metrics, UpdateMetrics
from voicecoder.domain.inbox import InboxItem


def _counts(metrics: Metrics) -> dict[str, float]:
    lines = metrics.render().decode().splitlines()
    prefix = 'voicecoder_updates_total{outcome="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix)
    }


def test_every_outcome_is_counted_each_time_in_its_own_registry(caplog: pytest.LogCaptureFixture) -> None:
    first, second = UpdateMetrics(Metrics()), UpdateMetrics(Metrics())
    item = InboxItem(update_id=7, lane="1:message", body=b"{}", received_at=0.0)
    with caplog.at_level(logging.INFO, logger="voicecoder.updates"):
        for _ in range(3):
            first.outcome("acked")
        first.outcome("duplicate")
        first.processed("1:message", 0.012)
        first.processed("1:message", 0.013)
        first.retried(item, "boom")
        first.failed(item, "boom")
        second.outcome("acked")

    assert _counts(first.metrics) == {
        "acked": 3.0,
        "duplicate": 1.0,
        "processed": 2.0,
        "retried": 1.0,
        "failed": 1.0,
    }
    assert _counts(second.metrics) == {"acked": 1.0}
    processed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("update processed")]
    assert processed == [
        "update processed lane=1:message duration_ms=12.0",
        "update processed lane=1:message duration_ms=13.0",
    ]
