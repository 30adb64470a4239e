"""What passes between the domain and the agent: its request, a turn's events, tool questions, answers, its result."""

from __future__ import annotations

import enum

import attrs


@attrs.frozen
class AgentRequest:
    prompt: str
    session_id: str | None
    resume: bool


@attrs.frozen
class SessionStarted:
    session_id: str
    model: str | None = None


@attrs.frozen
class AssistantText:
    text: str


@attrs.frozen
class ToolStarted:
    tool_use_id: str
    name: str
    label: str


@attrs.frozen
class ToolFinished:
    tool_use_id: str
    ok: bool
    summary: str = ""


@attrs.frozen
class PermissionDenied:
    """A tool use that did not run; ``hint`` says how to let it run next time (filled in by the domain)."""

    tool: str
    label: str
    tool_use_id: str | None = attrs.field(default=None, eq=False)
    hint: str = attrs.field(default="", eq=False)


@attrs.frozen
class ApiRetry:
    attempt: int
    error: str
    delay_s: float | None = None


@attrs.frozen
class Compacted:
    trigger: str = "manual"
    pre_tokens: int | None = None


@attrs.frozen
class Notice:
    """Something the adapter wants the user to know (e.g. a fresh session replaced a lost one)."""

    text: str


AgentEvent = (
    SessionStarted | AssistantText | ToolStarted | ToolFinished | PermissionDenied | ApiRetry | Compacted | Notice
)


class ToolKind(enum.Enum):
    """What a tool the agent asks for does, as far as the ToolPolicy cares."""

    READ = "read"
    """Looks without changing anything (Read, Grep, Glob, …)."""
    EDIT = "edit"
    """Writes files (Write, Edit, MultiEdit, NotebookEdit)."""
    SHELL = "shell"
    """Runs a command line (Bash)."""
    FETCH = "fetch"
    """Reaches the network (WebFetch, WebSearch)."""
    MCP = "mcp"
    """A tool of an MCP server."""
    OTHER = "other"
    """Anything else, including tools this version does not know."""


@attrs.frozen
class ToolRequest:
    """
    The agent asks to use a tool; the AgentRunner waits for a `ToolDecision` (see `ToolGate`).

    Adapters fill in what the user needs to judge it: the full ``command`` (and its ``description``) for a
    shell command, the absolute ``paths`` a file tool touches (symlinks resolved), a short unified diff
    ``preview`` for an edit, the ``url`` for a fetch.
    """

    request_id: str
    tool: str
    kind: ToolKind
    label: str
    paths: tuple[str, ...] = ()
    command: str | None = None
    description: str | None = None
    url: str | None = None
    preview: str | None = None
    tool_use_id: str | None = None


@attrs.frozen
class ToolDecision:
    """The answer to a `ToolRequest`; a denial's ``message`` is what the agent reads as the reason."""

    allow: bool
    message: str = ""

    @classmethod
    def allowed(cls) -> ToolDecision:
        return cls(allow=True)

    @classmethod
    def denied(cls, message: str) -> ToolDecision:
        return cls(allow=False, message=message)


@attrs.frozen
class AgentResult:
    text: str
    success: bool
    session_id: str | None
    subtype: str = "success"
    errors: tuple[str, ...] = ()
    cost_usd: float | None = None
    num_turns: int | None = None
    duration_ms: int | None = None
    permission_denials: tuple[PermissionDenied, ...] = ()
    notices: tuple[str, ...] = ()
