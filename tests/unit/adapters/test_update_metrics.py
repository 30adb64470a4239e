"""serve's update observer: every outcome counted in its own registry, one log line per processed update."""

from __future__ import annotations

import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from voicecoder.adapters.prometheus_metrics import Metrics, UpdateCounts, UpdateMetrics
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


_OUTCOMES = ("acked", "duplicate", "ignored", "rejected", "processed", "retried", "failed")
_EDGES = tuple(float(b) for b in UpdateCounts.BUCKETS[:-1])


def _reference(events: list[tuple[str, float]]) -> bytes:
    """What prometheus_client's own Counter (label ``outcome``) and Histogram render for the same events."""
    registry = CollectorRegistry()
    updates = Counter(
        "voicecoder_updates_total",
        "Telegram updates by outcome: acked, duplicate, ignored, rejected (webhook requests); processed, retried, "
        "failed (handling, both modes).",
        ["outcome"],
        registry=registry,
    )
    seconds = Histogram(
        "voicecoder_update_processing_seconds",
        "Time from taking an update off the inbox to finishing it.",
        buckets=_EDGES,
        registry=registry,
    )
    for kind, value in events:
        if kind == "observe":
            seconds.observe(value)
        else:
            updates.labels(kind).inc()
    return generate_latest(registry)


def _without_created_values(text: bytes) -> list[str]:
    """The exposition's lines, with the value of each ``_created`` sample (a wall-clock time) left out."""
    lines = text.decode().splitlines()
    return [line.rsplit(" ", 1)[0] if "_created" in line and not line.startswith("#") else line for line in lines]


@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(_OUTCOMES), st.just(0.0)),
            st.tuples(
                st.just("observe"),
                st.one_of(st.sampled_from(_EDGES), st.floats(min_value=0, max_value=2000, allow_nan=False)),
            ),
        ),
        max_size=40,
    )
)
def test_the_counts_render_as_prometheus_clients_counter_and_histogram(events: list[tuple[str, float]]) -> None:
    """Same families, samples, order and values (bucket edges included) as the library's own metric types."""
    observer = UpdateMetrics(Metrics())
    for kind, value in events:
        if kind == "observe":
            observer.attempted(value)
        else:
            observer.metrics.update_counts.count(kind)

    rendered = observer.metrics.render()
    ours = _without_created_values(rendered)
    expected = _without_created_values(_reference(events))

    assert ours[: len(expected)] == expected
    created = [float(line.rsplit(" ", 1)[1]) for line in rendered.decode().splitlines() if "_created{" in line]
    assert all(abs(value - time.time()) < 600 for value in created)


def test_the_collector_names_its_families_so_the_registry_refuses_a_second_of_them() -> None:
    """``describe`` gives the names: registering another metric of the same name fails as it did before."""
    metrics = Metrics()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("voicecoder_updates_total", "again", registry=metrics.registry)
