"""An AgentRunner for when the Claude Code CLI cannot run: every prompt is answered with what to fix."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from voicecoder.domain.model import AgentRequest, AgentResult, Diagnostic
from voicecoder.domain.ports import EventSink, ToolGate


@attrs.frozen
class UnavailableAgent:
    """Answers instead of running; `reason` and `fix` come from the CLI's diagnostics."""

    reason: str
    fix: str

    async def run(self, request: AgentRequest, /, on_event: EventSink, on_tool: ToolGate | None = None) -> AgentResult:
        return AgentResult(
            text=f"I can't run Claude Code here: {self.reason}.\n\nTo fix it: {self.fix}\n\n"
            f"Your prompt was: “{request.prompt}”",
            success=False,
            session_id=None,
            subtype="agent_unavailable",
            errors=(self.reason,),
        )

    async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
        return AgentResult(text="Nothing to compact.", success=True, session_id=session_id)

    async def end_session(self, session_id: str, /) -> None:
        return None

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [Diagnostic("Claude Code CLI", ok=False, detail=self.reason, fix=self.fix)]
