"""
The Claude Code CLI as voicecoder's `AgentRunner`: one headless ``claude -p`` process per prompt.

Each prompt runs ``claude -p --output-format stream-json --verbose …`` in the workspace, with the
prompt on stdin (never in argv: variadic flags would swallow it). A session's first turn passes
``--session-id <uuid>``, later turns ``--resume <uuid>``; the permission mode, tool rules, model,
turn cap and appended system prompt go on every call because ``--resume`` does not keep them.

stdout is NDJSON. It is read in chunks through a bounded line splitter (a line longer than
``max_line_bytes`` is skipped with a warning, so a multi-megabyte tool result cannot exhaust
memory) and mapped to domain events; unknown types, unknown keys and garbage lines are ignored.
Success is the ``result`` line's ``is_error`` (an API failure is ``subtype: success`` with
``is_error: true``), never the exit code. A run without a ``result`` line raises
`AgentRunError` with the redacted tail of stderr.

Process hygiene: the CLI starts in its own session (``start_new_session=True``), so its pid is
also its process group id. On timeout or cancellation the group gets SIGINT, then SIGTERM, then
SIGKILL, each after a short grace, and only while the leader is still un-reaped (a reaped leader's
pid may be reused). Every run also carries a random marker in its environment; after the run
every process still carrying that marker (a background job the agent started, a grandchild that
left the group) is killed too. On Linux that sweep reads ``/proc``; elsewhere only the group is
signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import IO, Any

import anyio
import anyio.abc
import attrs

from voicecoder.domain.errors import AgentNotInstalledError, AgentRunError, AgentTimeoutError
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    ApiRetry,
    AssistantText,
    Compacted,
    Diagnostic,
    Notice,
    PermissionDenied,
    SessionStarted,
    ToolFinished,
    ToolStarted,
)
from voicecoder.domain.ports import EventSink

__all__ = [
    "DEFAULT_APPEND_SYSTEM_PROMPT",
    "QUIET_ENV",
    "TESTED_VERSION_RANGE",
    "ClaudeCliAgent",
    "ClaudeCliConfig",
    "LineSplitter",
    "StreamParser",
    "leader_is_ours",
    "redact",
    "tool_label",
]

log = logging.getLogger(__name__)

DEFAULT_APPEND_SYSTEM_PROMPT = "The user is on a phone: keep answers brief; summarise changes in a few lines."

#: Versions the stream-json mapping was checked against: 2.1.197 up to (not including) 2.2.0.
TESTED_VERSION_RANGE: tuple[tuple[int, int, int], tuple[int, int, int]] = ((2, 1, 197), (2, 2, 0))
_TESTED_RANGE_TEXT = "2.1.197–2.1.x"
_PINNED_VERSION = "2.1.330"

#: Without these the CLI talks to Anthropic's own hosts whatever ANTHROPIC_BASE_URL says.
QUIET_ENV: Mapping[str, str] = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}

#: voicecoder's own secrets are not passed to the agent (it runs arbitrary shell commands).
DEFAULT_SCRUBBED_ENV_PREFIXES = ("TG_", "TELEGRAM_", "ASSEMBLYAI_", "DEEPGRAM_")

_MARKER_VAR = "VOICECODER_AGENT_RUN"
_NO_CONVERSATION = "No conversation found"
_READ_CHUNK = 64 * 1024
_STDERR_TAIL_BYTES = 4000
_LABEL_MAX = 80
_SUMMARY_MAX = 160

# --- configuration -------------------------------------------------------------------------


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _to_env(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


def _env_repr(value: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k!r}: '…'" for k in value) + "}"


@attrs.frozen(kw_only=True)
class ClaudeCliConfig:
    """
    How to run the CLI.

    ``binary`` is a path or a name looked up on PATH. ``extra_env`` is added to the child's
    environment (e.g. ``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY`` for a sandbox); its values never
    appear in reprs or logs. ``grace_s`` is the wait after each of SIGINT and SIGTERM.
    """

    workdir: Path = attrs.field(converter=Path)
    binary: str = "claude"
    model: str | None = None
    permission_mode: str = "acceptEdits"
    allowed_tools: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    disallowed_tools: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    max_turns: int | None = None
    append_system_prompt: str | None = DEFAULT_APPEND_SYSTEM_PROMPT
    timeout_s: float = 900.0
    max_retries: int = 2
    config_dir: Path | None = None
    extra_env: dict[str, str] = attrs.field(factory=dict, converter=_to_env, repr=_env_repr)
    scrub_env_prefixes: tuple[str, ...] = attrs.field(default=DEFAULT_SCRUBBED_ENV_PREFIXES, converter=_to_tuple)
    max_line_bytes: int = 8 * 1024 * 1024
    grace_s: float = 2.0
    result_grace_s: float = 5.0


# --- pure helpers ----------------------------------------------------------------------------

_SECRET_PATTERNS = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]+"),
    re.compile(
        r"(?i)((?:api[_-]?key|auth[_-]?token|token|secret|password|authorization|bearer)[\"']?\s*[:=]?\s*[\"']?)"
        r"([^\s\"',;]{6,})"
    ),
    re.compile(r"[A-Za-z0-9_\-]{40,}"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace anything that looks like a key or token (and every literal in *secrets*) with ``***``."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _SECRET_PATTERNS[0].sub("***", text)
    text = _SECRET_PATTERNS[1].sub(lambda m: m.group(1) + "***", text)
    return _SECRET_PATTERNS[2].sub("***", text)


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
        return any(_NO_CONVERSATION in t for t in texts)

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
            denial = PermissionDenied(tool, label)
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
                tool, tool_label(tool, tool_input if isinstance(tool_input, Mapping) else None, self.workdir)
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


def _parse_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


# --- process handling ------------------------------------------------------------------------


def _proc_stat_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself contain ") ".
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state != ["Z"]


def _marked_pids(marker: str) -> list[int]:
    """Live processes whose environment carries *marker* (Linux /proc; empty elsewhere)."""
    needle = f"{_MARKER_VAR}={marker}".encode()
    found: list[int] = []
    try:
        entries = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return found
    for entry in entries:
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _proc_stat_alive(int(entry)):
            found.append(int(entry))
    return found


_HAVE_PROCFS = Path("/proc/self/stat").exists()


def leader_is_ours(pid: int, marker: str) -> bool:
    """
    Whether *pid* is still the un-reaped leader this run started.

    asyncio reaps a child in its watcher before it publishes the return code, so ``returncode is
    None`` alone leaves a short window in which the pid may already belong to someone else. With
    /proc the leader is recognised by the run's marker (or, once exited, as a zombie that still
    holds the group id); without /proc the return code is all there is.
    """
    if not _HAVE_PROCFS:
        return True
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if f"{_MARKER_VAR}={marker}".encode() in environ.split(b"\0"):
        return True
    return not _proc_stat_alive(pid) and Path(f"/proc/{pid}").exists()


def _signal_group(proc: anyio.abc.Process, marker: str, sig: signal.Signals) -> None:
    """Signal the CLI's process group, but only while its leader is un-reaped (PGID reuse)."""
    if proc.returncode is not None or not leader_is_ours(proc.pid, marker):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _kill_pids(pids: Iterable[int], marker: str, sig: signal.Signals) -> None:
    needle = f"{_MARKER_VAR}={marker}".encode()
    for pid in pids:
        try:
            # Re-check right before signalling so a recycled pid is never hit.
            if needle not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                continue
            os.kill(pid, sig)
        except (OSError, ProcessLookupError):
            continue


def _read_tail(handle: IO[bytes], limit: int) -> str:
    handle.flush()
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - limit))
    return handle.read().decode("utf-8", errors="replace")


@attrs.define
class ClaudeCliAgent:
    """Runs prompts through the Claude Code CLI; see the module docstring for the protocol."""

    config: ClaudeCliConfig
    new_session_id: Callable[[], str] = attrs.field(default=lambda: str(uuid.uuid4()), repr=False)

    # --- AgentRunner ------------------------------------------------------------------------

    async def run(self, request: AgentRequest, /, on_event: EventSink) -> AgentResult:
        notices: list[str] = []
        if request.resume and request.session_id:
            parser = await self._invoke(request.prompt, ["--resume", request.session_id], on_event)
            if parser.conversation_missing:
                fresh = self.new_session_id()
                notice = (
                    f"The previous Claude conversation ({request.session_id[:8]}…) no longer exists; "
                    "started a new one without its history."
                )
                log.warning("resume of session %s failed: not found; starting %s", request.session_id, fresh)
                notices.append(notice)
                await on_event(Notice(notice))
                parser = await self._invoke(request.prompt, ["--session-id", fresh], on_event)
        else:
            session_id = request.session_id or self.new_session_id()
            parser = await self._invoke(request.prompt, ["--session-id", session_id], on_event)
        return parser.agent_result(notices)

    async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
        parser = await self._invoke("/compact", ["--resume", session_id], on_event)
        result = parser.agent_result()
        compacted = parser.compacted
        if compacted is None:
            detail = result.text or " ".join(parser.assistant_texts) or "the CLI reported no compaction"
            return attrs.evolve(result, success=False, text=detail)
        text = result.text
        if not text:
            before, after = compacted.pre_tokens, parser.compacted_to_tokens
            if before is not None and after is not None:
                text = f"Conversation compacted: {before} → {after} tokens."
            elif before is not None:
                text = f"Conversation compacted (was {before} tokens)."
            else:
                text = "Conversation compacted."
        return attrs.evolve(result, text=text)

    # --- compatibility guard ----------------------------------------------------------------

    def resolve_binary(self) -> str:
        """
        The CLI's absolute path.

        Raises:
            AgentNotInstalledError: Not found or not executable.
        """
        binary = self.config.binary
        if os.sep in binary:
            # Absolute: the CLI runs with cwd=workdir, where a relative path would not resolve.
            path = Path(binary).expanduser().absolute()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise AgentNotInstalledError(binary)
        found = shutil.which(binary)
        if found is None:
            raise AgentNotInstalledError(binary)
        return found

    async def version(self) -> str | None:
        """``claude --version`` as ``"2.1.330"``, or None when the binary is missing or says nothing useful."""
        try:
            binary = self.resolve_binary()
        except AgentNotInstalledError:
            return None
        try:
            with anyio.fail_after(20):
                done = await anyio.run_process(
                    [binary, "--version"], check=False, env=self._environment(), stdin=subprocess.DEVNULL
                )
        except (OSError, TimeoutError) as exc:
            log.warning("claude --version failed: %s", exc)
            return None
        parsed = _parse_version(done.stdout.decode("utf-8", errors="replace"))
        return None if parsed is None else ".".join(map(str, parsed))

    async def diagnose(self) -> list[Diagnostic]:
        install_fix = (
            f"Run `npm install -g @anthropic-ai/claude-code@{_PINNED_VERSION}` "
            "(`python3 dev.py run` installs it into .tools/) or set CLAUDE_BINARY to the claude executable."
        )
        try:
            binary = self.resolve_binary()
        except AgentNotInstalledError:
            return [Diagnostic("Claude Code CLI", ok=False, detail=f"{self.config.binary} not found", fix=install_fix)]
        results = [Diagnostic("Claude Code CLI", ok=True, detail=f"found at {binary}")]
        version = await self.version()
        parsed = _parse_version(version) if version else None
        if parsed is None:
            results.append(
                Diagnostic(
                    "Claude Code version", ok=False, detail="`claude --version` gave no version", fix=install_fix
                )
            )
        elif TESTED_VERSION_RANGE[0] <= parsed < TESTED_VERSION_RANGE[1]:
            results.append(
                Diagnostic("Claude Code version", ok=True, detail=f"{version} (tested: {_TESTED_RANGE_TEXT})")
            )
        else:
            results.append(
                Diagnostic(
                    "Claude Code version",
                    ok=True,
                    warning=True,
                    detail=f"{version} is outside the tested range {_TESTED_RANGE_TEXT}; output may differ",
                    fix=f"Pin @anthropic-ai/claude-code@{_PINNED_VERSION} (requirements/claude-code-version.txt).",
                )
            )
        results.append(self._auth_diagnostic())
        return results

    def _auth_diagnostic(self) -> Diagnostic:
        env = self._environment()
        for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
            if env.get(var):
                return Diagnostic("Claude authentication", ok=True, detail=f"{var} is set")
        for var in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY"):
            if env.get(var):
                return Diagnostic("Claude authentication", ok=True, detail=f"{var} is set (provider credentials)")
        if env.get("ANTHROPIC_BASE_URL"):
            return Diagnostic("Claude authentication", ok=True, detail="ANTHROPIC_BASE_URL is set (gateway)")
        config_dir = (
            Path(env["CLAUDE_CONFIG_DIR"])
            if env.get("CLAUDE_CONFIG_DIR")
            else Path(env.get("HOME", str(Path.home()))) / ".claude"
        )
        credentials = config_dir / ".credentials.json"
        if credentials.is_file():
            return Diagnostic("Claude authentication", ok=True, detail=f"login credentials in {config_dir}")
        return Diagnostic(
            "Claude authentication",
            ok=False,
            detail="no ANTHROPIC_API_KEY and no login found",
            fix="Set ANTHROPIC_API_KEY, or run `claude` once and log in (with the same CLAUDE_CONFIG_DIR).",
        )

    # --- one CLI process --------------------------------------------------------------------

    def _arguments(self, session_args: Sequence[str]) -> list[str]:
        cfg = self.config
        args = ["-p", "--output-format", "stream-json", "--verbose", "--permission-mode", cfg.permission_mode]
        if cfg.model:
            args += ["--model", cfg.model]
        if cfg.max_turns is not None:
            args += ["--max-turns", str(cfg.max_turns)]
        if cfg.append_system_prompt:
            args += ["--append-system-prompt", cfg.append_system_prompt]
        # Variadic flags: each rule is its own argument and the next token is always another flag.
        if cfg.allowed_tools:
            args += ["--allowedTools", *cfg.allowed_tools]
        if cfg.disallowed_tools:
            args += ["--disallowedTools", *cfg.disallowed_tools]
        return [*args, *session_args]

    def _environment(self, marker: str | None = None) -> dict[str, str]:
        cfg = self.config
        env = {k: v for k, v in os.environ.items() if not k.startswith(cfg.scrub_env_prefixes)}
        env.update(QUIET_ENV)
        env["CLAUDE_CODE_MAX_RETRIES"] = str(cfg.max_retries)
        if cfg.config_dir is not None:
            env["CLAUDE_CONFIG_DIR"] = str(cfg.config_dir)
        env.update(cfg.extra_env)
        if marker is not None:
            env[_MARKER_VAR] = marker
        return env

    def _secrets(self) -> list[str]:
        sensitive = ("KEY", "TOKEN", "SECRET", "PASSWORD")
        return [v for k, v in self.config.extra_env.items() if any(s in k.upper() for s in sensitive)]

    async def _invoke(self, prompt: str, session_args: Sequence[str], on_event: EventSink) -> StreamParser:
        cfg = self.config
        binary = self.resolve_binary()
        if not cfg.workdir.is_dir():
            raise AgentRunError(f"The workspace {cfg.workdir} does not exist; create it or choose another directory.")
        marker = uuid.uuid4().hex
        command = [binary, *self._arguments(session_args)]
        # The CLI may report paths under the directory as given or with symlinks resolved.
        parser = StreamParser(workdir=(PurePath(cfg.workdir.absolute()), PurePath(cfg.workdir.resolve())))
        log.info("starting claude (%s) in %s", " ".join(session_args), cfg.workdir)
        with tempfile.TemporaryFile() as stderr_file:
            try:
                proc = await anyio.open_process(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr_file,
                    cwd=cfg.workdir,
                    env=self._environment(marker),
                    start_new_session=True,
                )
            except (FileNotFoundError, PermissionError) as exc:
                raise AgentNotInstalledError(cfg.binary) from exc
            except OSError as exc:
                raise AgentRunError(f"Could not start the Claude Code CLI: {exc.strerror or exc}") from exc
            timed_out = False
            try:
                with anyio.move_on_after(cfg.timeout_s) as scope:
                    await self._send_prompt(proc, prompt)
                    await self._read_stream(proc, parser, on_event)
                timed_out = scope.cancelled_caught and parser.result is None
                if not timed_out:
                    # The result is in; give the CLI a moment to exit on its own before stopping it.
                    with anyio.move_on_after(cfg.result_grace_s):
                        await proc.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._stop(proc, marker)
            returncode = proc.returncode
            if timed_out:
                log.warning("claude timed out after %.0f s and was stopped", cfg.timeout_s)
                raise AgentTimeoutError(cfg.timeout_s)
            if parser.result is None:
                tail = await anyio.to_thread.run_sync(_read_tail, stderr_file, _STDERR_TAIL_BYTES)
                tail = redact(tail.strip(), self._secrets())[-1000:]
                if _NO_CONVERSATION in tail:
                    parser.result = {"subtype": "error_during_execution", "is_error": True, "errors": [tail]}
                    return parser
                log.error("claude exited with code %s and no result: %s", returncode, tail)
                raise AgentRunError(
                    f"Claude Code exited (code {returncode}) without a result"
                    + (f": {tail}" if tail else ". Run `voicecoder doctor` to check the installation.")
                )
        log.info(
            "claude finished: rc=%s subtype=%s is_error=%s",
            returncode,
            parser.result.get("subtype"),
            parser.result.get("is_error"),
        )
        return parser

    async def _send_prompt(self, proc: anyio.abc.Process, prompt: str) -> None:
        stdin = proc.stdin
        if stdin is None:
            return
        try:
            await stdin.send(prompt.encode("utf-8"))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            log.debug("claude closed stdin before reading the whole prompt")
        finally:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await stdin.aclose()

    async def _read_stream(self, proc: anyio.abc.Process, parser: StreamParser, on_event: EventSink) -> None:
        stdout = proc.stdout
        if stdout is None:
            return
        splitter = LineSplitter(self.config.max_line_bytes)
        while parser.result is None:
            try:
                chunk = await stdout.receive(_READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                last = splitter.finish()
                if last is not None:
                    await self._dispatch(last, parser, on_event)
                return
            for line in splitter.feed(chunk):
                await self._dispatch(line, parser, on_event)
                if parser.result is not None:
                    # The result is the turn's last line; anything after it is ignored.
                    return

    async def _dispatch(self, line: bytes, parser: StreamParser, on_event: EventSink) -> None:
        obj = parse_line(line)
        if obj is None:
            return
        for event in parser.feed(obj):
            await on_event(event)

    async def _stop(self, proc: anyio.abc.Process, marker: str) -> None:
        """Stop the CLI and everything it started; never raises; runs shielded."""
        grace = self.config.grace_s
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                if proc.returncode is not None:
                    break
                log.info("sending %s to claude's process group %d", sig.name, proc.pid)
                _signal_group(proc, marker, sig)
                with anyio.move_on_after(grace):
                    await proc.wait()
            if proc.returncode is None:
                log.warning("claude ignored SIGINT and SIGTERM; killing process group %d", proc.pid)
                _signal_group(proc, marker, signal.SIGKILL)
                with anyio.move_on_after(5):
                    await proc.wait()
                if proc.returncode is None:
                    log.error("claude (pid %d) could not be stopped", proc.pid)
            await self._sweep(marker)
        except Exception:
            log.exception("could not stop the claude process cleanly")
        finally:
            with contextlib.suppress(Exception):
                await proc.aclose()

    async def _sweep(self, marker: str) -> None:
        """Kill processes the run left behind (background jobs, grandchildren outside the group)."""
        pids = await anyio.to_thread.run_sync(_marked_pids, marker)
        if not pids:
            return
        log.warning("killing %d process(es) left behind by claude", len(pids))
        for sig, wait in ((signal.SIGTERM, self.config.grace_s), (signal.SIGKILL, 2.0)):
            _kill_pids(pids, marker, sig)
            with anyio.move_on_after(wait):
                while pids:
                    await anyio.sleep(0.05)
                    pids = [p for p in pids if _proc_stat_alive(p)]
            if not pids:
                return
        log.error("processes %s survived SIGKILL", pids)
