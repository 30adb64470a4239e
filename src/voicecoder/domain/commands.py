"""The slash commands: /start /help /status /clear /info /undo (and /permissions, in `tool_questions`)."""

from __future__ import annotations

import logging

from voicecoder.domain.app import COMMANDS
from voicecoder.domain.context import AppContext
from voicecoder.domain.errors import TurnInProgressError, WorkspaceError
from voicecoder.domain.model import ChatId, CommitMessage, Diagnostic, UserId
from voicecoder.domain.replies import (
    ChangeReverted,
    HelpText,
    InfoReport,
    SessionCleared,
    StatusReport,
    Welcome,
)

__all__ = ["Commands"]

logger = logging.getLogger(__name__)

_HISTORY = frozenset({"approve", "reject", "auto-approve"})


class Commands:
    """The chat's commands; each is one use case of `VoiceCoder` (which checks the user first)."""

    def __init__(self, context: AppContext) -> None:
        self._c = context

    async def start(self, chat: ChatId, user_name: str | None) -> None:
        await self._c.ports.messenger.send(chat, Welcome(user_name, self._c.settings.workspace_path, COMMANDS))

    async def help(self, chat: ChatId) -> None:
        await self._c.ports.messenger.send(chat, HelpText(COMMANDS))

    async def clear(self, chat: ChatId, user: UserId) -> None:
        c = self._c
        async with c.sessions.update(chat) as session:
            previous_agent_session = session.agent_session_id
            rules = session.tool_rules
            session.clear(now=c.ports.clock.now())
        if previous_agent_session is not None and chat not in c.running:
            await c.ports.agent.end_session(previous_agent_session)
        await c.audit(chat, user, "clear")
        await c.ports.messenger.send(
            chat, SessionCleared(kept_pending=session.pending is not None, cleared_rules=rules)
        )

    async def status(self, chat: ChatId, user: UserId, user_name: str | None, username: str | None) -> None:
        c = self._c
        session = await c.sessions.read(chat)
        try:
            ws_status = await c.ports.workspace.status()
        except WorkspaceError as exc:
            logger.warning("status: workspace unavailable: %s", exc)
            ws_status = None
        history = tuple(await c.ports.store.audit_trail(chat, 10))
        tools = c.settings.tools
        report = StatusReport(
            user_id=user.value,
            agent_session_id=session.agent_session_id,
            turn_count=session.turn_count,
            compaction_threshold=session.compaction_threshold,
            pending=c.summary(session.pending) if session.pending is not None else None,
            approved_count=session.approved_count,
            rejected_count=session.rejected_count,
            history=tuple(r for r in history if r.action in _HISTORY),
            workspace=ws_status,
            workspace_path=c.settings.workspace_path,
            running=chat in c.running,
            session_started=session.started_at,
            user_name=user_name,
            username=username,
            tool_mode=tools.mode.value if tools is not None else "off",
            tool_rules=session.tool_rules,
            operator_tool_rules=tools.allow if tools is not None else (),
        )
        await c.ports.messenger.send(chat, report)

    async def info(self, chat: ChatId) -> None:
        await self._c.ports.messenger.send(chat, InfoReport(tuple(await self.diagnose())))

    async def diagnose(self) -> list[Diagnostic]:
        """Every dependency's checks. Raises nothing: a broken check is a failed diagnostic."""
        results: list[Diagnostic] = []
        for item in self._c.ports.diagnosables:
            try:
                results.extend(await item.diagnose())
            except Exception as exc:  # a broken check must not hide the others
                results.append(Diagnostic(type(item).__name__, ok=False, detail=f"check failed: {exc}"))
        return results

    async def undo(self, chat: ChatId, user: UserId) -> None:
        c = self._c
        if c.workspace_lock.locked():
            await c.ports.messenger.send(chat, c.error(TurnInProgressError()))
            return
        trail = await c.ports.store.audit_trail(chat, 200)
        undone = {r.detail for r in trail if r.action == "undo"}
        target = next(
            (r for r in reversed(trail) if r.action == "approve" and r.commit_sha and r.commit_sha not in undone),
            None,
        )
        if target is None or target.commit_sha is None:
            await c.ports.messenger.send(chat, c.error("Nothing to undo: no approved change of this chat is left."))
            return
        message = CommitMessage(
            subject='Revert "Apply changes from Claude"',
            body=f"This reverts commit {target.commit_sha}.\n\nPrompt: {target.prompt or ''}".rstrip(),
            trailers=(("Voicecoder-Undo", target.change_id.value if target.change_id else target.commit_sha),),
        )
        async with c.workspace_lock:
            try:
                commit = await c.ports.workspace.revert_commit(
                    target.commit_sha, message=message, author=c.settings.commit_author
                )
            except WorkspaceError as exc:
                await c.ports.messenger.send(chat, c.error(exc))
                return
        await c.audit(chat, user, "undo", change_id=target.change_id, commit_sha=commit.sha, detail=target.commit_sha)
        await c.ports.messenger.send(chat, ChangeReverted(target.commit_sha, commit))
