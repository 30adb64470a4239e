#!/usr/bin/env python3
"""
A stand-in for the ``claude`` executable, for the agent adapter's unit tests.

It checks the headless flags the real CLI insists on (``-p``, ``--verbose`` with stream-json, a
prompt on stdin), then plays a scripted stream-json turn. Behaviour is chosen by env vars:

FAKE_CLAUDE_SCRIPT      NDJSON file to print; ``@SESSION_ID@`` becomes the session id from argv.
                        Without it: init, an "Echo: <prompt>" assistant text and a success result
                        (for the prompt ``/compact``: a compact_boundary and an empty result).
FAKE_CLAUDE_RECORD      append ``{"argv", "stdin", "env"}`` as one JSON line per invocation.
FAKE_CLAUDE_SESSIONS    directory of known sessions: ``--session-id X`` creates ``X``; ``--resume X``
                        of an unknown X fails like the real CLI ("No conversation found …", rc 1).
FAKE_CLAUDE_GARBAGE     1: interleave garbage (non-JSON, arrays, wrong types, binary) with the script.
FAKE_CLAUDE_HUGE_BYTES  N: print one valid assistant line of about N bytes before the script.
FAKE_CLAUDE_LINE_DELAY  seconds to sleep between lines.
FAKE_CLAUDE_STDERR      text to write to stderr.
FAKE_CLAUDE_EXIT        exit status after the script (default 0).
FAKE_CLAUDE_HANG        1: after the script, sleep until killed.
FAKE_CLAUDE_IGNORE      signals to ignore, e.g. "INT,TERM".
FAKE_CLAUDE_GRANDCHILD  pidfile: start ``sleep 300`` children (one in the group, one in its own
                        session) and write their pids, one per line.
FAKE_CLAUDE_VERSION     what ``--version`` prints (default "2.1.330 (Claude Code)").

SIGINT (unless ignored) behaves like the real CLI: an ``error_during_execution`` result, exit 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

SESSION_ID = "@SESSION_ID@"


def out(line: str | bytes) -> None:
    data = line if isinstance(line, bytes) else line.encode()
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.buffer.flush()


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


def result(session_id: str, **fields: Any) -> str:
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
    return json.dumps(base)


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


def main() -> None:
    argv = sys.argv[1:]
    env = os.environ
    if "--version" in argv:
        out(env.get("FAKE_CLAUDE_VERSION", "2.1.330 (Claude Code)"))
        return
    if "-p" not in argv and "--print" not in argv:
        fail("fake claude: only headless -p mode is implemented")
    if flag(argv, "--output-format") == "stream-json" and "--verbose" not in argv:
        fail("Error: When using --print, --output-format=stream-json requires --verbose")
    prompt = sys.stdin.read()
    if not prompt.strip():
        fail("Error: Input must be provided either through stdin or as a prompt argument when using --print")

    if record := env.get("FAKE_CLAUDE_RECORD"):
        keep = {
            k: v for k, v in env.items() if k.startswith(("CLAUDE_", "DISABLE_", "ANTHROPIC_", "TG_", "VOICECODER_"))
        }
        with Path(record).open("a") as handle:
            handle.write(json.dumps({"argv": argv, "stdin": prompt, "env": keep}) + "\n")

    ignored = {s.strip() for s in env.get("FAKE_CLAUDE_IGNORE", "").split(",") if s.strip()}
    for name in ignored:
        signal.signal(getattr(signal, f"SIG{name}"), signal.SIG_IGN)

    resume = flag(argv, "--resume")
    session_id = resume or flag(argv, "--session-id") or str(uuid.uuid4())

    if "INT" not in ignored:

        def on_sigint(_signum: int, _frame: object) -> None:
            out(
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

    if sessions := env.get("FAKE_CLAUDE_SESSIONS"):
        known = Path(sessions)
        known.mkdir(parents=True, exist_ok=True)
        if resume is not None and not (known / resume).exists():
            message = f"No conversation found with session ID: {resume}"
            out(result(resume, subtype="error_during_execution", is_error=True, result=None, errors=[message]))
            fail(message)
        (known / session_id).touch()

    if pidfile := env.get("FAKE_CLAUDE_GRANDCHILD"):
        quiet: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
        }
        in_group = subprocess.Popen(["sleep", "300"], **quiet)
        detached = subprocess.Popen(["sleep", "301"], start_new_session=True, **quiet)
        Path(pidfile).write_text(f"{in_group.pid}\n{detached.pid}\n")

    delay = float(env.get("FAKE_CLAUDE_LINE_DELAY", "0"))
    if huge := int(env.get("FAKE_CLAUDE_HUGE_BYTES", "0")):
        head = b'{"type":"assistant","message":{"content":[{"type":"text","text":"HUGE'
        sys.stdout.buffer.write(head)
        block = b"x" * (1024 * 1024)
        for _ in range(max(1, huge // len(block))):
            sys.stdout.buffer.write(block)
        out(b'"}]},"session_id":"huge"}')

    if script := env.get("FAKE_CLAUDE_SCRIPT"):
        lines = Path(script).read_text().splitlines()
    elif prompt.strip() == "/compact":
        lines = [
            json.dumps({"type": "system", "subtype": "status", "status": "compacting", "session_id": SESSION_ID}),
            json.dumps({"type": "system", "subtype": "init", "session_id": SESSION_ID, "model": "fake-model"}),
            json.dumps(
                {
                    "type": "system",
                    "subtype": "compact_boundary",
                    "session_id": SESSION_ID,
                    "compact_metadata": {"trigger": "manual", "pre_tokens": 1200, "post_tokens": 300},
                }
            ),
            result(SESSION_ID, result="", num_turns=0),
        ]
    else:
        lines = [
            json.dumps({"type": "system", "subtype": "init", "session_id": SESSION_ID, "model": "fake-model"}),
            json.dumps(
                {
                    "type": "assistant",
                    "message": {"id": "msg_1", "content": [{"type": "text", "text": f"Echo: {prompt.strip()}"}]},
                    "session_id": SESSION_ID,
                }
            ),
            result(SESSION_ID, result=f"Echo: {prompt.strip()}"),
        ]
    garbage = env.get("FAKE_CLAUDE_GARBAGE") == "1"
    for index, line in enumerate(lines):
        if garbage:
            out(GARBAGE[index % len(GARBAGE)])
        out(line.replace(SESSION_ID, session_id))
        if delay:
            time.sleep(delay)

    if text := env.get("FAKE_CLAUDE_STDERR"):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    if env.get("FAKE_CLAUDE_HANG") == "1":
        while True:
            time.sleep(3600)
    sys.exit(int(env.get("FAKE_CLAUDE_EXIT", "0")))


if __name__ == "__main__":
    main()
