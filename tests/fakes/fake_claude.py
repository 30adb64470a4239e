#!/usr/bin/env python3
"""
A stand-in for the ``claude`` executable in bidirectional stream-json mode, for the agent adapter's unit tests.

It checks the flags the real CLI insists on (``-p``; ``--input-format stream-json`` needs
``--output-format stream-json``, which needs ``--verbose``), then reads NDJSON from stdin like the real
CLI (2.1.330, observed against a local Messages API): each ``{"type": "user", …}`` line is one turn that
ends with a ``result`` line, after which it waits for the next; ``{"type": "control_request",
"request": {"subtype": "interrupt"}}`` ends a running turn (a ``control_response``, then an
``error_during_execution`` result) and stops the tool it ran; closing stdin ends the process. Behaviour is
chosen by env vars:

FAKE_CLAUDE_SCRIPT      NDJSON file played for every turn; ``@SESSION_ID@`` becomes the session id. Directive
                        lines: ``{"@ask": {"tool_name", "input", "tool_use_id"}}`` writes a ``can_use_tool``
                        control request, waits for the control_response and writes the tool_result the real CLI
                        would (the deny message as an error result); ``{"@hang": true}`` waits for an interrupt.
                        Without it: init, "Echo: <prompt>" and a success result (``/compact``: a
                        compact_boundary and an empty result).
FAKE_CLAUDE_RECORD      append one JSON line per turn (``argv``, ``stdin`` = the prompt, ``env``) and per control
                        response (``answer``).
FAKE_CLAUDE_SESSIONS    directory of known sessions: ``--session-id X`` creates ``X``; ``--resume X`` of an unknown
                        X fails at start like the real CLI (an error result, "No conversation found …", rc 1).
FAKE_CLAUDE_GARBAGE     1: interleave garbage (non-JSON, arrays, wrong types, binary) with the script.
FAKE_CLAUDE_HUGE_BYTES  N: print one valid assistant line of about N bytes before the script.
FAKE_CLAUDE_LINE_DELAY  seconds to sleep between lines.
FAKE_CLAUDE_STDERR      text to write to stderr at each turn.
FAKE_CLAUDE_EXIT        exit after the first turn's script with this status (no result unless the script has one).
FAKE_CLAUDE_DEAF        1: ignore interrupt requests.
FAKE_CLAUDE_IGNORE      signals to ignore, e.g. "INT,TERM".
FAKE_CLAUDE_GRANDCHILD  pidfile: at each turn start a ``sleep 300`` child (stopped by an interrupt, as the real CLI
                        stops its running tool) and a ``sleep 301`` orphan in its own session (a background job
                        whose shell is gone); their pids are appended, one per line.
FAKE_CLAUDE_WRITE       1: a turn whose prompt ends in a file name (``write notes.txt``) first writes that file in
                        its working directory, the prompt as its content (an edit the git oracle can find).
FAKE_CLAUDE_HANG_ON     text: a turn whose prompt contains it hangs (after its write) until interrupted.
FAKE_CLAUDE_VERSION     what ``--version`` prints (default "2.1.330 (Claude Code)").

SIGINT (unless ignored) ends a running turn with an ``error_during_execution`` result and exits 0.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SESSION_ID = "@SESSION_ID@"
_write_lock = threading.Lock()


def out(line: str | bytes) -> None:
    data = line if isinstance(line, bytes) else line.encode()
    with _write_lock:
        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.buffer.flush()


def emit(obj: dict[str, Any]) -> None:
    out(json.dumps(obj))


def flag(argv: list[str], name: str) -> str | None:
    if name in argv:
        index = argv.index(name)
        if index + 1 < len(argv):
            return argv[index + 1]
    return None


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(code)


def result(session_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "",
        "session_id": session_id,
        "num_turns": 1,
        "duration_ms": 12,
        "total_cost_usd": 0.001,
        "permission_denials": [],
    }
    base.update(fields)
    return base


GARBAGE: list[bytes] = [
    b"this is not json",
    b"[1, 2, 3]",
    b'"a string"',
    b"",
    b"   ",
    b'{"type": "assistant", "message": "not a mapping"}',
    b'{"type": "assistant", "message": {"content": [{"type": "tool_use", "input": 5}, 7, null]}}',
    b'{"type": "system", "subtype": "api_retry", "attempt": "x"}',
    b'{"type": "user", "message": {"content": [{"type": "tool_result", "content": {"odd": true}}]}}',
    b'{"type": "unknown_future_event", "payload": {"x": 1}}',
    b"\xff\xfe\x00binary\x80",
    b'{"truncated": ',
]


class TurnInterruptedError(Exception):
    """The host sent an interrupt (or SIGINT) during a turn."""


class Cli:
    def __init__(self, argv: list[str], session_id: str) -> None:
        self.argv = argv
        self.session_id = session_id
        self.env = os.environ
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.responses: dict[str, dict[str, Any]] = {}
        self.deaf = self.env.get("FAKE_CLAUDE_DEAF") == "1"
        self.children: list[subprocess.Popen[bytes]] = []
        self.denials: list[dict[str, Any]] = []
        self.interrupted = threading.Event()

    # --- stdin --------------------------------------------------------------------------

    def reader(self) -> None:
        for raw in sys.stdin:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if obj.get("type") == "control_request" and obj.get("request", {}).get("subtype") == "interrupt":
                if self.deaf:
                    continue
                emit({"type": "control_response", "response": {"subtype": "success", "request_id": obj["request_id"]}})
                self.interrupted.set()
                continue
            self.inbox.put(obj)
        self.inbox.put(None)

    def next_message(self, timeout: float | None = None) -> dict[str, Any] | None:
        return self.inbox.get(timeout=timeout)

    def record(self, entry: dict[str, Any]) -> None:
        if record := self.env.get("FAKE_CLAUDE_RECORD"):
            with Path(record).open("a") as handle:
                handle.write(json.dumps(entry) + "\n")

    # --- a turn -------------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        if self.interrupted.wait(seconds):
            raise TurnInterruptedError

    def ask(self, spec: dict[str, Any]) -> None:
        request_id = str(uuid.uuid4())
        tool_use_id = spec.get("tool_use_id") or f"toolu_{request_id[:8]}"
        emit(
            {
                "type": "assistant",
                "message": {
                    "id": f"msg_{request_id[:6]}",
                    "content": [
                        {"type": "tool_use", "id": tool_use_id, "name": spec["tool_name"], "input": spec["input"]}
                    ],
                },
                "session_id": self.session_id,
            }
        )
        emit(
            {
                "type": "control_request",
                "request_id": request_id,
                "request": {
                    "subtype": "can_use_tool",
                    "tool_name": spec["tool_name"],
                    "input": spec["input"],
                    "tool_use_id": tool_use_id,
                },
            }
        )
        while True:
            if self.interrupted.is_set():
                emit({"type": "control_cancel_request", "request_id": request_id})
                raise TurnInterruptedError
            try:
                message = self.next_message(timeout=0.02)
            except queue.Empty:
                continue
            if message is None:
                sys.exit(0)
            response = message.get("response", {})
            if message.get("type") == "control_response" and response.get("request_id") == request_id:
                answer = response.get("response", {})
                self.record({"answer": answer, "tool_use_id": tool_use_id})
                allowed = answer.get("behavior") == "allow"
                content = "ran" if allowed else answer.get("message", "denied")
                if not allowed:
                    self.denials.append(
                        {"tool_name": spec["tool_name"], "tool_use_id": tool_use_id, "tool_input": spec["input"]}
                    )
                emit(
                    {
                        "type": "user",
                        "message": {
                            "content": [
                                {
                                    "type": "tool_result",
                                    "tool_use_id": tool_use_id,
                                    "content": content,
                                    "is_error": not allowed,
                                }
                            ]
                        },
                        "session_id": self.session_id,
                    }
                )
                return

    def start_children(self, pidfile: str) -> None:
        quiet: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
        }
        tool = subprocess.Popen(["sleep", "300"], **quiet)
        self.children.append(tool)
        # A background job whose shell exits at once: the job is re-parented away from the CLI.
        orphan = subprocess.run(
            ["sh", "-c", "setsid sleep 301 > /dev/null 2>&1 < /dev/null & echo $!"], capture_output=True, check=True
        )
        with Path(pidfile).open("a") as handle:
            handle.write(f"{tool.pid}\n{orphan.stdout.decode().strip()}\n")

    def stop_children(self) -> None:
        for child in self.children:
            child.kill()
            child.wait()
        self.children.clear()

    def turn(self, prompt: str) -> None:
        self.record({"argv": self.argv, "stdin": prompt, "env": dict(self.env)})
        if pidfile := self.env.get("FAKE_CLAUDE_GRANDCHILD"):
            self.start_children(pidfile)
        if text := self.env.get("FAKE_CLAUDE_STDERR"):
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        words = prompt.split()
        if self.env.get("FAKE_CLAUDE_WRITE") == "1" and words and re.fullmatch(r"[\w-]+\.txt", words[-1]):
            Path(words[-1]).write_text(prompt + "\n")
        delay = float(self.env.get("FAKE_CLAUDE_LINE_DELAY", "0"))
        if huge := int(self.env.get("FAKE_CLAUDE_HUGE_BYTES", "0")):
            head = b'{"type":"assistant","message":{"content":[{"type":"text","text":"HUGE'
            block = b"x" * (1024 * 1024)
            with _write_lock:
                sys.stdout.buffer.write(head)
                for _ in range(max(1, huge // len(block))):
                    sys.stdout.buffer.write(block)
                sys.stdout.buffer.write(b'"}]},"session_id":"huge"}\n')
                sys.stdout.buffer.flush()
        garbage = self.env.get("FAKE_CLAUDE_GARBAGE") == "1"
        self.interrupted.clear()
        self.denials.clear()
        try:
            for index, line in enumerate(self.lines(prompt)):
                if garbage:
                    out(GARBAGE[index % len(GARBAGE)])
                obj = json.loads(line) if line.strip().startswith("{") else None
                if isinstance(obj, dict) and "@ask" in obj:
                    self.ask(obj["@ask"])
                elif isinstance(obj, dict) and "@hang" in obj:
                    self.pause(3600 * 24)
                elif isinstance(obj, dict) and obj.get("type") == "result" and self.denials:
                    # Like the real CLI: the tools denied during the turn are listed in its result.
                    listed = obj.get("permission_denials") or []
                    obj["permission_denials"] = [*listed, *self.denials]
                    out(json.dumps(obj).replace(SESSION_ID, self.session_id))
                else:
                    out(line.replace(SESSION_ID, self.session_id))
                if delay:
                    self.pause(delay)
                if self.interrupted.is_set():
                    raise TurnInterruptedError  # noqa: TRY301 - the interrupt ends the scripted turn from inside
        except TurnInterruptedError:
            self.stop_children()
            emit(
                result(
                    self.session_id,
                    subtype="error_during_execution",
                    is_error=True,
                    result=None,
                    errors=["Request was aborted."],
                    terminal_reason="aborted_streaming",
                )
            )
            return
        # The turn is over: its foreground tool finished (background jobs, re-parented away, may live on).
        self.stop_children()
        if (code := self.env.get("FAKE_CLAUDE_EXIT")) is not None:
            sys.exit(int(code))

    def lines(self, prompt: str) -> list[str]:
        if (hang_on := self.env.get("FAKE_CLAUDE_HANG_ON")) and hang_on in prompt:
            init = {"type": "system", "subtype": "init", "session_id": SESSION_ID, "model": "fake-model"}
            return [json.dumps(init), json.dumps({"@hang": True})]
        if script := self.env.get("FAKE_CLAUDE_SCRIPT"):
            return Path(script).read_text().splitlines()
        init = {"type": "system", "subtype": "init", "session_id": SESSION_ID, "model": "fake-model"}
        if prompt.strip() == "/compact":
            return [
                json.dumps({"type": "system", "subtype": "status", "status": "compacting", "session_id": SESSION_ID}),
                json.dumps(init),
                json.dumps(
                    {
                        "type": "system",
                        "subtype": "compact_boundary",
                        "session_id": SESSION_ID,
                        "compact_metadata": {"trigger": "manual", "pre_tokens": 1200, "post_tokens": 300},
                    }
                ),
                json.dumps(result(SESSION_ID, result="", num_turns=0)),
            ]
        text = f"Echo: {prompt.strip()}"
        return [
            json.dumps(init),
            json.dumps(
                {
                    "type": "assistant",
                    "message": {"id": "msg_1", "content": [{"type": "text", "text": text}]},
                    "session_id": SESSION_ID,
                }
            ),
            json.dumps(result(SESSION_ID, result=text)),
        ]


def _prompt_of(message: dict[str, Any]) -> str:
    content = message.get("message", {}).get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def main() -> None:
    argv = sys.argv[1:]
    env = os.environ
    if "--version" in argv:
        out(env.get("FAKE_CLAUDE_VERSION", "2.1.330 (Claude Code)"))
        return
    if "-p" not in argv and "--print" not in argv:
        fail("fake claude: only headless -p mode is implemented")
    if flag(argv, "--input-format") != "stream-json":
        fail("fake claude: only --input-format stream-json is implemented")
    if flag(argv, "--output-format") != "stream-json":
        fail("Error: --input-format=stream-json requires output-format=stream-json.")
    if "--verbose" not in argv:
        fail("Error: When using --print, --output-format=stream-json requires --verbose")

    ignored = {s.strip() for s in env.get("FAKE_CLAUDE_IGNORE", "").split(",") if s.strip()}
    for name in ignored:
        signal.signal(getattr(signal, f"SIG{name}"), signal.SIG_IGN)

    resume = flag(argv, "--resume")
    session_id = resume or flag(argv, "--session-id") or str(uuid.uuid4())
    if sessions := env.get("FAKE_CLAUDE_SESSIONS"):
        known = Path(sessions)
        known.mkdir(parents=True, exist_ok=True)
        if resume is not None and not (known / resume).exists():
            message = f"No conversation found with session ID: {resume}"
            emit(result(resume, subtype="error_during_execution", is_error=True, result=None, errors=[message]))
            fail(message)
        (known / session_id).touch()

    cli = Cli(argv, session_id)
    if "INT" not in ignored:

        def on_sigint(_signum: int, _frame: object) -> None:
            cli.stop_children()
            emit(
                result(
                    session_id,
                    subtype="error_during_execution",
                    is_error=True,
                    result=None,
                    errors=["Request was aborted."],
                    terminal_reason="aborted_streaming",
                )
            )
            os._exit(0)

        signal.signal(signal.SIGINT, on_sigint)

    threading.Thread(target=cli.reader, daemon=True).start()
    while True:
        incoming = cli.next_message()
        if incoming is None:
            sys.exit(0)
        if incoming.get("type") == "user":
            cli.turn(_prompt_of(incoming))
        time.sleep(0)


if __name__ == "__main__":
    main()
