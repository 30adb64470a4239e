"""Scripts for the fake ``claude`` executable (tests/fakes/fake_claude.py) and what it recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from voicecoder.domain.model import (
    AgentEvent,
    ApiRetry,
    AssistantText,
    Compacted,
    PermissionDenied,
    SessionStarted,
    ToolDecision,
    ToolFinished,
    ToolRequest,
    ToolStarted,
)

FAKE_CLAUDE = Path(__file__).resolve().parents[3] / "fakes" / "fake_claude.py"
SID = "11111111-2222-4333-8444-555555555555"


def write_script(path: Path, *objs: Mapping[str, Any]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def init(model: str = "claude-opus-5-5") -> dict[str, Any]:
    return {
        "type": "system",
        "subtype": "init",
        "session_id": "@SESSION_ID@",
        "model": model,
        "cwd": "/somewhere",
        "tools": ["Bash", "Edit", "Write"],
        "claude_code_version": "2.1.330",
        "future_field": {"ignored": True},
    }


def result(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Done.",
        "session_id": "@SESSION_ID@",
        "num_turns": 2,
        "duration_ms": 620,
        "total_cost_usd": 0.024244,
        "permission_denials": [],
    }
    base.update(fields)
    return base


def assistant(*blocks: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {"id": "msg_1", "role": "assistant", "content": list(blocks), "stop_reason": None},
        "parent_tool_use_id": parent,
        "session_id": "@SESSION_ID@",
    }


def tool_result(tool_use_id: str, content: Any, *, is_error: bool | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if is_error is not None:
        block["is_error"] = is_error
    return {"type": "user", "message": {"role": "user", "content": [block]}, "session_id": "@SESSION_ID@"}


def ask(tool_name: str, tool_input: dict[str, Any], tool_use_id: str = "toolu_q1") -> dict[str, Any]:
    return {"@ask": {"tool_name": tool_name, "input": tool_input, "tool_use_id": tool_use_id}}


HANG = {"@hang": True}


def recorded(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def turns(record: Path) -> list[dict[str, Any]]:
    return [r for r in recorded(record) if "argv" in r]


def answers(record: Path) -> list[dict[str, Any]]:
    return [r["answer"] for r in recorded(record) if "answer" in r]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


class Gate:
    """A ToolGate that records requests and answers with *decide* (default: allow)."""

    def __init__(self, decision: ToolDecision | None = None, *, hold: anyio.Event | None = None) -> None:
        self.requests: list[ToolRequest] = []
        self.decision = decision or ToolDecision.allowed()
        self.hold = hold
        self.waiting = anyio.Event()
        self.cancelled = 0

    async def __call__(self, request: ToolRequest) -> ToolDecision:
        self.requests.append(request)
        self.waiting.set()
        if self.hold is not None:
            try:
                await self.hold.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled += 1
                raise
        return self.decision


FULL_TURN = (
    init(),
    {"type": "system", "subtype": "status", "status": "requesting"},
    assistant({"type": "text", "text": "I'll fix it."}),
    assistant({"type": "tool_use", "id": "t1", "name": "Edit", "input": {"file_path": "@WS@/src/app.py"}}),
    tool_result("t1", "The file src/app.py has been updated."),
    assistant({"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "pytest -q", "timeout": 5}}),
    tool_result("t2", [{"type": "text", "text": "\n1 failed\nmore"}], is_error=True),
    {"type": "stream_event", "event": {"type": "content_block_delta"}},
    {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "max_retries": 2,
        "retry_delay_ms": 524,
        "error_status": 529,
        "error": "overloaded",
    },
    assistant({"type": "tool_use", "id": "t3", "name": "Write", "input": {"file_path": "/etc/passwd"}}),
    {
        "type": "system",
        "subtype": "permission_denied",
        "tool_name": "Write",
        "tool_use_id": "t3",
        "message": "Claude requested permissions to write to /etc/passwd, but you haven't granted it yet.",
    },
    tool_result("t3", "Claude requested permissions", is_error=True),
    assistant({"type": "tool_use", "id": "t4", "name": "Grep", "input": {"pattern": "foo"}}),
    tool_result("t4", "src/app.py:1:foo"),
    assistant({"type": "text", "text": "nested agent chatter"}, parent="t9"),
    {
        "type": "system",
        "subtype": "compact_boundary",
        "compact_metadata": {"trigger": "auto", "pre_tokens": 2929, "post_tokens": 2668},
    },
    assistant({"type": "text", "text": "Fixed; one test still fails."}),
    result(
        result="Fixed; one test still fails.",
        permission_denials=[
            {"tool_name": "Write", "tool_use_id": "t3", "tool_input": {"file_path": "/etc/passwd"}},
            {"tool_name": "Bash", "tool_use_id": "t5", "tool_input": {"command": "rm -rf build"}},
        ],
    ),
)

FULL_TURN_EVENTS: list[AgentEvent] = [
    SessionStarted(SID, "claude-opus-5-5"),
    AssistantText("I'll fix it."),
    ToolStarted("t1", "Edit", "Edit src/app.py"),
    ToolFinished("t1", ok=True, summary="The file src/app.py has been updated."),
    ToolStarted("t2", "Bash", "Bash: pytest -q"),
    ToolFinished("t2", ok=False, summary="1 failed"),
    ApiRetry(attempt=1, error="overloaded (HTTP 529)", delay_s=0.524),
    ToolStarted("t3", "Write", "Write /etc/passwd"),
    PermissionDenied("Write", "Write /etc/passwd"),
    ToolFinished("t3", ok=False, summary="Claude requested permissions"),
    ToolStarted("t4", "Grep", 'Grep "foo"'),
    ToolFinished("t4", ok=True, summary="src/app.py:1:foo"),
    Compacted(trigger="auto", pre_tokens=2929),
    AssistantText("Fixed; one test still fails."),
    PermissionDenied("Bash", "Bash: rm -rf build"),
]


def full_turn_script(path: Path, workdir: Path) -> Path:
    text = "".join(json.dumps(o) + "\n" for o in FULL_TURN)
    path.write_text(text.replace("@WS@", str(workdir.resolve())))
    return path
