"""
stream-json, as the Claude Code CLI writes it, turned into domain events.

Pure (no I/O). stdout is NDJSON: `LineSplitter` cuts a byte stream into lines while holding at most
``limit`` bytes of one line (a multi-megabyte tool result cannot exhaust memory), `parse_line` reads a
line (garbage is ignored), and `StreamParser` maps ``system``/``assistant``/``user``/``result`` objects to
`AgentEvent`s and remembers what the final `AgentResult` needs. Unknown types and keys are ignored.
Success is the ``result`` line's ``is_error`` (an API failure is ``subtype: success`` with
``is_error: true``), never the exit code.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import attrs

from voicecoder.domain.model import (
    AgentEvent,
    AgentResult,
    ApiRetry,
    AssistantText,
    Compacted,
    PermissionDenied,
    SessionStarted,
    ToolFinished,
    ToolStarted,
)
from voicecoder.redaction import Redactor

__all__ = ["LineSplitter", "StreamParser", "parse_line", "parse_version", "redact", "tool_label"]

log = logging.getLogger(__name__)

NO_CONVERSATION = "No conversation found"
_LABEL_MAX = 80
_SUMMARY_MAX = 160


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """
    Replace anything that looks like a key or token (and every form of each of *secrets*) with ``***``.

    The shared `voicecoder.redaction.Redactor`, guessing too: for the CLI's stderr, which nobody needs verbatim.
    """
    return Redactor(secrets, placeholder="***", guesses=True)(text)


def _shorten(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _relative(path: str, workdir: PurePath | Sequence[PurePath] | None) -> str:
    roots = [workdir] if isinstance(workdir, PurePath) else list(workdir or ())
    if path.startswith("/"):
        candidate = PurePath(path)
        for root in roots:
            if candidate.is_relative_to(root):
                return str(candidate.relative_to(root)) or "."
    return path


def tool_label(
    name: str, tool_input: Mapping[str, Any] | None, workdir: PurePath | Sequence[PurePath] | None = None
) -> str:
    """
    A short human label for a tool call: ``Edit src/app.py``, ``Bash: pytest -q``, ``Grep "foo"``.

    Paths inside *workdir* (or any of several spellings of it) are shown relative to it.
    """
    data = tool_input if isinstance(tool_input, Mapping) else {}

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value.strip() else None

    path = text("file_path") or text("notebook_path")
    if path is not None:
        return _shorten(f"{name} {_relative(path, workdir)}", _LABEL_MAX)
    if name == "Bash" and (command := text("command")):
        return _shorten(f"Bash: {command}", _LABEL_MAX)
    if (pattern := text("pattern")) is not None:
        where = text("path")
        suffix = f" in {_relative(where, workdir)}" if where else ""
        return _shorten(f'{name} "{pattern}"{suffix}', _LABEL_MAX)
    if (url := text("url")) is not None:
        return _shorten(f"{name} {url}", _LABEL_MAX)
    if (query := text("query")) is not None:
        return _shorten(f'{name} "{query}"', _LABEL_MAX)
    if (description := text("description")) is not None:
        return _shorten(f"{name}: {description}", _LABEL_MAX)
    if (where := text("path")) is not None:
        return _shorten(f"{name} {_relative(where, workdir)}", _LABEL_MAX)
    return name


def _result_summary(content: Any) -> str:
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(b["text"] for b in content if isinstance(b, Mapping) and isinstance(b.get("text"), str))
    else:
        return ""
    for line in text.splitlines():
        if line.strip():
            return _shorten(line, _SUMMARY_MAX)
    return ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@attrs.define
class LineSplitter:
    """
    Splits a byte stream into lines while holding at most *limit* bytes of one line.

    A longer line is dropped (counted in ``dropped_lines``) and reading resumes at the next newline.
    """

    limit: int
    dropped_lines: int = 0
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _discarding: bool = attrs.field(default=False, init=False)
    _discarded: int = attrs.field(default=0, init=False)

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline
            self._append(chunk, start, end)
            if newline < 0:
                return lines
            if self._discarding:
                log.warning("skipped an oversize stream-json line of %d bytes", self._discarded)
                self._discarding = False
                self._discarded = 0
            else:
                lines.append(bytes(self._buffer))
            self._buffer.clear()
            start = newline + 1

    def finish(self) -> bytes | None:
        """The unterminated last line, if any."""
        if self._discarding:
            log.warning("skipped an oversize, unterminated stream-json line of %d bytes", self._discarded)
            self._discarding = False
            return None
        rest = bytes(self._buffer) if self._buffer else None
        self._buffer.clear()
        return rest

    def _append(self, chunk: bytes, start: int, end: int) -> None:
        size = end - start
        if self._discarding:
            self._discarded += size
        elif len(self._buffer) + size > self.limit:
            self._discarding = True
            self._discarded = len(self._buffer) + size
            self.dropped_lines += 1
            self._buffer.clear()
        else:
            self._buffer += chunk[start:end]


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One stream-json line as a dict, or None for blank lines and garbage."""
    stripped = line.strip()
    if not stripped:
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, UnicodeDecodeError):
        log.debug("ignored a non-JSON line of %d bytes", len(stripped))
        return None
    return value if isinstance(value, dict) else None


@attrs.define
class StreamParser:
    """
    Turns stream-json objects into domain events and remembers what the final result needs.

    Pure: no I/O. Unknown types and keys are ignored; malformed fields are skipped.
    """

    workdir: PurePath | Sequence[PurePath] | None = None
    session_id: str | None = None
    result: dict[str, Any] | None = None
    compacted: Compacted | None = None
    compacted_to_tokens: int | None = None
    assistant_texts: list[str] = attrs.field(factory=list)
    denied: list[PermissionDenied] = attrs.field(factory=list)
    _labels: dict[str, str] = attrs.field(factory=dict)
    _denied_ids: set[str] = attrs.field(factory=set)
    _session_announced: bool = False

    def feed(self, obj: Mapping[str, Any]) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "system":
            return self._system(obj)
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "result":
            return self._result(obj)
        return []

    @property
    def conversation_missing(self) -> bool:
        """True when the CLI reported that the session to resume does not exist."""
        if self.result is None:
            return False
        errors = self.result.get("errors")
        texts = [e for e in errors if isinstance(e, str)] if isinstance(errors, list) else []
        texts.append(_str(self.result.get("result")) or "")
        return any(NO_CONVERSATION in t for t in texts)

    def _system(self, obj: Mapping[str, Any]) -> list[AgentEvent]:
        subtype = obj.get("subtype")
        if subtype == "init":
            session_id = _str(obj.get("session_id"))
            if session_id is None:
                return []
            self.session_id = session_id
            if self._session_announced:
                return []
            self._session_announced = True
            return [SessionStarted(session_id, _str(obj.get("model")))]
        if subtype == "permission_denied":
            tool = _str(obj.get("tool_name")) or "tool"
            tool_use_id = _str(obj.get("tool_use_id"))
            if tool_use_id is not None:
                if tool_use_id in self._denied_ids:
                    return []
                self._denied_ids.add(tool_use_id)
            label = self._labels.get(tool_use_id or "", tool)
            denial = PermissionDenied(tool, label, tool_use_id)
            self.denied.append(denial)
            return [denial]
        if subtype == "api_retry":
            attempt = _int(obj.get("attempt"))
            if attempt is None:
                return []
            error = _str(obj.get("error")) or "error"
            status = _int(obj.get("error_status"))
            delay_ms = _float(obj.get("retry_delay_ms"))
            return [
                ApiRetry(
                    attempt=attempt,
                    error=f"{error} (HTTP {status})" if status is not None else error,
                    delay_s=delay_ms / 1000 if delay_ms is not None else None,
                )
            ]
        if subtype == "compact_boundary":
            meta = obj.get("compact_metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            event = Compacted(
                trigger=_str(meta.get("trigger")) or "manual",
                pre_tokens=_int(meta.get("pre_tokens")),
            )
            self.compacted = event
            self.compacted_to_tokens = _int(meta.get("post_tokens"))
            return [event]
        return []

    def _blocks(self, obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        message = obj.get("message")
        if not isinstance(message, Mapping):
            return []
        content = message.get("content")
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, Mapping)]

    def _assistant(self, obj: Mapping[str, Any]) -> list[AgentEvent]:
        nested = obj.get("parent_tool_use_id") is not None
        events: list[AgentEvent] = []
        for block in self._blocks(obj):
            if block.get("type") == "text" and not nested:
                text = _str(block.get("text"))
                if text and text.strip():
                    self.assistant_texts.append(text)
                    events.append(AssistantText(text))
            elif block.get("type") == "tool_use" and (tool_use_id := _str(block.get("id"))):
                name = _str(block.get("name")) or "tool"
                tool_input = block.get("input")
                label = tool_label(name, tool_input if isinstance(tool_input, Mapping) else None, self.workdir)
                self._labels[tool_use_id] = label
                events.append(ToolStarted(tool_use_id, name, label))
        return events

    def _user(self, obj: Mapping[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for block in self._blocks(obj):
            tool_use_id = _str(block.get("tool_use_id"))
            if block.get("type") != "tool_result" or not tool_use_id:
                continue
            events.append(
                ToolFinished(
                    tool_use_id,
                    ok=block.get("is_error") is not True,
                    summary=_result_summary(block.get("content")),
                )
            )
        return events

    def _result(self, obj: Mapping[str, Any]) -> list[AgentEvent]:
        self.result = dict(obj)
        if (session_id := _str(obj.get("session_id"))) is not None:
            self.session_id = session_id
        events: list[AgentEvent] = []
        denials = obj.get("permission_denials")
        for entry in denials if isinstance(denials, list) else []:
            if not isinstance(entry, Mapping):
                continue
            tool_use_id = _str(entry.get("tool_use_id"))
            if tool_use_id is not None and tool_use_id in self._denied_ids:
                continue
            if tool_use_id is not None:
                self._denied_ids.add(tool_use_id)
            tool = _str(entry.get("tool_name")) or "tool"
            tool_input = entry.get("tool_input")
            denial = PermissionDenied(
                tool,
                tool_label(tool, tool_input if isinstance(tool_input, Mapping) else None, self.workdir),
                tool_use_id,
            )
            self.denied.append(denial)
            events.append(denial)
        return events

    def agent_result(self, notices: Sequence[str] = ()) -> AgentResult:
        """The final result; call only after a ``result`` line was fed."""
        obj = self.result if self.result is not None else {}
        is_error = obj.get("is_error")
        subtype = _str(obj.get("subtype")) or "unknown"
        success = (not is_error) if isinstance(is_error, bool) else subtype == "success"
        raw_errors = obj.get("errors")
        errors = tuple(e for e in raw_errors if isinstance(e, str)) if isinstance(raw_errors, list) else ()
        status = _int(obj.get("api_error_status"))
        if status is not None and not success:
            errors = (*errors, f"API error status {status}")
        text = _str(obj.get("result")) or ""
        if not text and not success:
            text = "; ".join(errors)
        if not success and _NO_LOGIN_RE.search(text):
            # The CLI says "Please run /login": meaningless from a phone, and the reason would show twice.
            text, errors = NOT_LOGGED_IN, ()
        elif not success and (status == 401 or _REJECTED_RE.search(text)):
            text = CREDENTIALS_REJECTED.format(reason=text.strip() or "401")
        return AgentResult(
            text=text,
            success=success,
            session_id=self.session_id,
            subtype=subtype,
            errors=errors,
            cost_usd=_float(obj.get("total_cost_usd")),
            num_turns=_int(obj.get("num_turns")),
            duration_ms=_int(obj.get("duration_ms")),
            permission_denials=tuple(self.denied),
            notices=tuple(notices),
        )


NOT_LOGGED_IN = (
    "Claude Code is not logged in on the server, so it could not start. To fix it, log in once on the server by "
    "running `claude` as the user the bot runs as, or give the bot an Anthropic API key; then send your prompt again."
)
CREDENTIALS_REJECTED = (
    "Anthropic rejected Claude Code's credentials ({reason}). To fix it, log in again on the server by running "
    "`claude` as the user the bot runs as, or give the bot a valid Anthropic API key; then send your prompt again."
)
_NO_LOGIN_RE = re.compile(r"not logged in|please run /login", re.IGNORECASE)
_REJECTED_RE = re.compile(r"invalid api key|authentication_failed", re.IGNORECASE)


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))
