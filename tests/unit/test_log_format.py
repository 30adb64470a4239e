"""The JSON log line: the same object `json.JSONEncoder` gives, whether or not the line is built from kept parts."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from voicecoder.entrypoints.logs import JsonFormatter

_REFERENCE = json.JSONEncoder(default=str, ensure_ascii=False)


def _reference(record: logging.LogRecord) -> str:
    """The line as the formatter wrote it before it kept parts: the whole object through the encoder."""
    payload = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    return _REFERENCE.encode(payload)


def _record(name: str, level: int, message: str, created: float) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    record.created = created
    return record


# Text with quotes, backslashes, control characters, non-ASCII and backslash-escaped surrogates, as the
# redacting filter leaves it.
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
_LEVELS = st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL])
# Whole seconds, halves, and times a hair below the next second (where rounding to microseconds carries).
_TIMES = st.one_of(
    st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
    st.integers(0, 4_102_444_800).map(lambda s: s + 0.9999996),
    st.integers(0, 4_102_444_800).map(lambda s: s + 0.0005),
    st.integers(0, 4_102_444_800).map(float),
)


@given(name=_TEXT, level=_LEVELS, message=_TEXT, created=_TIMES)
def test_a_line_without_extras_is_the_encoders_object(name: str, level: int, message: str, created: float) -> None:
    """Built from kept parts, the line is byte for byte what the encoder gives for the object."""
    formatter = JsonFormatter()
    record = _record(name, level, message, created)

    assert formatter.format(record) == _reference(record)


@given(times=st.lists(_TIMES, min_size=2, max_size=8))
def test_the_kept_second_follows_the_clock_both_ways(times: list[float]) -> None:
    """One formatter across lines of different seconds (and back: records from threads) stamps each right."""
    formatter = JsonFormatter()
    for created in [*times, *reversed(times)]:
        record = _record("voicecoder.updates", logging.INFO, "update processed", created)
        assert formatter.format(record) == _reference(record)


def test_extras_and_tracebacks_are_fields_of_the_object() -> None:
    """A line with extra fields or a traceback carries them; fields starting with ``_`` stay out."""
    formatter = JsonFormatter()
    record = _record("voicecoder.test", logging.ERROR, 'a "quoted" message', 1_764_000_000.25)
    record.detail = {"chat": 7}
    record._private = "kept out"
    record.exc_text = "Traceback (most recent call last):\n  boom"

    line = json.loads(formatter.format(record))

    assert line == {
        "ts": "2025-11-24T16:00:00.250+00:00",
        "level": "error",
        "logger": "voicecoder.test",
        "msg": 'a "quoted" message',
        "detail": {"chat": 7},
        "exc": "Traceback (most recent call last):\n  boom",
    }
