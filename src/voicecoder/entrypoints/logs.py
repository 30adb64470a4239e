"""Structured logging: JSON in production, readable in a terminal, secrets redacted everywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from voicecoder.redaction import Redactor

__all__ = ["IterationBatchingHandler", "JsonFormatter", "RedactingFilter", "Redactor", "configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Renders the message once, redacts it, and freezes it so no handler sees the raw arguments."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _encodable(self._redact(record.getMessage()))
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = _encodable(self._redact(logging.Formatter().formatException(record.exc_info)))
            record.exc_info = None
        attributes = vars(record)
        for key in attributes.keys() - _STANDARD:  # extras only: one set operation, not a loop over every field
            value = attributes[key]
            if isinstance(value, str):
                attributes[key] = _encodable(self._redact(value))
        return True


def _encodable(text: str) -> str:
    r"""
    *text* with lone surrogates escaped.

    JSON from outside may carry them (``"\ud800"``); written to a UTF-8 stream they would make the handler print
    a "Logging error" traceback instead of the line.
    """
    if text.isascii():  # no surrogates, and no encoding to try (most lines)
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


_JSON = json.JSONEncoder(default=str, ensure_ascii=False)
"""Built once: ``json.dumps`` with these options builds a new encoder for every line."""
_HEADS_KEPT = 512
"""Level and logger pairs whose part of the line is kept; loggers are per module, so this is never reached."""


class JsonFormatter(logging.Formatter):
    """
    One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the record's extra fields and ``exc``.

    ``serve`` logs a line per update, so a line without extras (nearly all) is put together from parts that do not
    change: the text up to ``"msg": `` once per level and logger, the timestamp's date and time once per second.
    Only the message is encoded per line, by the encoder's own string function, so the line is the same text
    `json.JSONEncoder` would give for the whole object (``ensure_ascii=False``, default separators).
    """

    def __init__(self) -> None:
        super().__init__()
        self._heads: dict[tuple[str, str], str] = {}
        # One tuple, replaced whole: a formatter shared by handlers on several threads never pairs a second with
        # another second's text.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        attributes = vars(record)
        if record.exc_text or attributes.keys() - _STANDARD:
            return self._format_object(record, attributes)
        key = (record.levelname, record.name)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= _HEADS_KEPT:
                self._heads.clear()
            level, name = encode_basestring(record.levelname.lower()), encode_basestring(record.name)
            head = self._heads[key] = f'", "level": {level}, "logger": {name}, "msg": '
        return '{"ts": "' + self._timestamp(record.created) + head + encode_basestring(record.getMessage()) + "}"

    def _format_object(self, record: logging.LogRecord, attributes: dict[str, Any]) -> str:
        payload: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in attributes.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_text:
            payload["exc"] = record.exc_text
        return _JSON.encode(payload)

    def _timestamp(self, created: float) -> str:
        """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, built once per second."""
        if created < 0:
            return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        second = int(created)
        micro = round((created - second) * 1_000_000)  # as datetime rounds: to the microsecond, half to even
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        kept, text = self._second
        if second != kept:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{text}.{micro // 1000:03d}+00:00"


class IterationBatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """
    A stream handler that writes the lines of one event-loop iteration together, at its end.

    ``serve`` logs a line per update, and a write plus a flush per line was a system call per update on the
    loop's thread. Records logged with a running asyncio loop wait in a list until that iteration ends
    (``call_soon``); a warning or worse, a record from a thread without a loop, ``flush`` and ``close`` (so
    ``logging.shutdown`` at exit) write everything waiting first, so lines keep their order and a process that ends
    normally loses none. A process killed outright loses at most the lines of the iteration it was in.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        # The loop whose call_soon will write what waits. Remembered, not inferred from "something waits": a loop
        # stopped in the iteration that logged never runs that callback, and lines logged later on another loop
        # would then wait for a warning or the program's end.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # logging's own contract: report through handleError, never raise
            self.handleError(record)
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._waiting.append(line)
        if loop is None or record.levelno >= logging.WARNING:
            self._write_waiting()
        elif loop is not self._flush_on:
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr] # created by Handler.__init__
            self._write_waiting()

    def _write_waiting(self) -> None:
        self._flush_on = None
        if not self._waiting:
            return
        text, self._waiting = "".join(self._waiting), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # as StreamHandler: a broken stream must not break the caller
            self.handleError(logging.makeLogRecord({"msg": text}))

    def close(self) -> None:
        self.flush()
        super().close()


def configure_logging(*, fmt: str = "text", level: str = "INFO", secrets: Iterable[str] = ()) -> Redactor:
    """
    One stderr handler on the root logger, redacting *secrets*, as text or JSON lines; returns the redactor.

    Neither format shows the caller's file and line or the thread and process, so records skip collecting them
    (the Logging HOWTO's "Optimization" knobs): ``serve`` logs one line per update, and the stack walk for the
    caller was a fifth of that line's cost.
    """
    logging._srcfile = None  # the documented switch: findCaller walks the stack per record otherwise
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    redactor = Redactor(secrets)
    handler = IterationBatchingHandler(sys.stderr)
    handler.addFilter(RedactingFilter(redactor))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redactor
