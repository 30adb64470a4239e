"""
The CLI's ``can_use_tool`` control requests as domain `ToolRequest`s, and the answers as control responses.

The CLI (``--permission-prompt-tool stdio``) writes::

    {"type": "control_request", "request_id": "…", "request": {"subtype": "can_use_tool", "tool_name": "Bash",
     "input": {"command": "…", "description": "…"}, "permission_suggestions": […], "blocked_path": "…",
     "decision_reason": "…", "tool_use_id": "toolu_…"}}

and reads back ``{"type": "control_response", "response": {"subtype": "success", "request_id": "…",
"response": {"behavior": "allow", "updatedInput": {…}}}}`` or ``{"behavior": "deny", "message": "…"}``.
Here each request gets its kind (read, edit, shell, fetch, MCP, other), the absolute paths it touches
(relative ones against the workspace, symlinks resolved, so ``link-to-etc/passwd`` is seen for what it is),
and for an edit a short unified diff of what would change.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from voicecoder.adapters.claude.events import tool_label
from voicecoder.domain.model import ToolDecision, ToolKind, ToolRequest

__all__ = ["control_response", "tool_kind", "tool_request"]

_READ_TOOLS = frozenset(
    {"Read", "Grep", "Glob", "LS", "NotebookRead", "TodoRead", "TodoWrite", "Task", "Agent", "ExitPlanMode"}
    | {"BashOutput", "KillShell", "KillBash", "ToolSearch", "ListMcpResourcesTool", "ReadMcpResourceTool"}
)
_EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
_PATH_KEYS = ("file_path", "notebook_path", "path")
PREVIEW_LINES = 40
_PREVIEW_READ_LIMIT = 256 * 1024


def tool_kind(name: str) -> ToolKind:
    if name in _EDIT_TOOLS:
        return ToolKind.EDIT
    if name == "Bash":
        return ToolKind.SHELL
    if name in ("WebFetch", "WebSearch"):
        return ToolKind.FETCH
    if name.startswith("mcp__"):
        return ToolKind.MCP
    if name in _READ_TOOLS:
        return ToolKind.READ
    return ToolKind.OTHER


def _absolute(path: str, workdir: Path) -> str:
    # realpath: a symlink inside the workspace that points elsewhere is judged by where it points.
    return os.path.realpath(workdir / Path(path).expanduser())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _current(path: str) -> str:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(_PREVIEW_READ_LIMIT)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def _diff(path: str, before: str, after: str) -> str | None:
    name = PurePath(path).name
    lines = list(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
            n=1,
        )
    )
    if not lines:
        return None
    body = [line if line.endswith("\n") else line + "\n" for line in lines[2:]]
    if len(body) > PREVIEW_LINES:
        body = [*body[:PREVIEW_LINES], f"… {len(body) - PREVIEW_LINES} more lines\n"]
    return "".join(body).rstrip("\n")


def _preview(name: str, data: Mapping[str, Any], path: str | None) -> str | None:
    if path is None:
        return None
    if name == "Write" and isinstance(data.get("content"), str):
        return _diff(path, _current(path), data["content"])
    if name == "Edit" and isinstance(data.get("old_string"), str) and isinstance(data.get("new_string"), str):
        return _diff(path, data["old_string"], data["new_string"])
    if name == "MultiEdit" and isinstance(data.get("edits"), list):
        edits = [e for e in data["edits"] if isinstance(e, Mapping)]
        before = "\n".join(str(e.get("old_string", "")) for e in edits)
        after = "\n".join(str(e.get("new_string", "")) for e in edits)
        return _diff(path, before, after)
    if name == "NotebookEdit" and isinstance(data.get("new_source"), str):
        return _diff(path, "", data["new_source"])
    return None


def tool_request(request_id: str, payload: Mapping[str, Any], workdir: Path) -> ToolRequest:
    """The domain's view of one ``can_use_tool`` request (*payload* is its ``request`` object)."""
    name = _text(payload.get("tool_name")) or "unknown"
    raw = payload.get("input")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    kind = tool_kind(name)
    paths = tuple(_absolute(p, workdir) for key in _PATH_KEYS if (p := _text(data.get(key))) is not None)
    roots = (PurePath(workdir), PurePath(os.path.realpath(workdir)))
    return ToolRequest(
        request_id=request_id,
        tool=name,
        kind=kind,
        label=tool_label(name, data, roots),
        paths=paths,
        command=_text(data.get("command")) if kind is ToolKind.SHELL else None,
        description=_text(data.get("description")) or _text(data.get("query")),
        url=_text(data.get("url")),
        preview=_preview(name, data, paths[0] if paths else None) if kind is ToolKind.EDIT else None,
        tool_use_id=_text(payload.get("tool_use_id")),
    )


def control_response(request_id: str, decision: ToolDecision, tool_input: Any) -> dict[str, Any]:
    """The control response that carries *decision* back to the CLI."""
    answer: dict[str, Any]
    if decision.allow:
        answer = {"behavior": "allow", "updatedInput": tool_input if isinstance(tool_input, Mapping) else {}}
    else:
        answer = {"behavior": "deny", "message": decision.message or "The user denied this."}
    return {
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": answer},
    }
