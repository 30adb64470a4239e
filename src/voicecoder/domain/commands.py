"""The slash commands: /start /help /status /clear /info /undo (and /permissions, in `tool_questions`)."""

from __future__ import annotations

import logging

from voicecoder.domain.app import COMMANDS, COMMANDS_WITH_PROJECTS
from voicecoder.domain.context import AppContext
from voicecoder.domain.decisions import COMMIT_SUBJECT, committed
from voicecoder.domain.errors import NothingToUndoError, TurnInProgressError, WorkspaceError
from voicecoder.domain.model import DECISION_ACTIONS, AuditAction, ChatId, CommitMessage, Diagnostic, UserId
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


class Commands:
    """The chat's commands; each is one use case of `VoiceCoder` (which checks the user first)."""

    def __init__(self, context: AppContext) -> None:
        self._c = context

    async def start(self, chat: ChatId, user_name: str | None) -> None:
        await self._c.ports.messenger.send(chat, Welcome(user_name, self._c.settings.workspace_path, self._commands))

    @property
    def _commands(self) -> tuple[tuple[str, str], ...]:
        return COMMANDS_WITH_PROJECTS if self._c.settings.project else COMMANDS

    async def help(self, chat: ChatId) -> None:
        await self._c.ports.messenger.send(chat, HelpText(self._commands))

    async def clear(self, chat: ChatId, user: UserId) -> None:
        c = self._c
        async with c.sessions.update(chat) as session:
            previous_agent_session = session.agent_session_id
            rules = session.tool_rules
            session.clear(now=c.ports.clock.now())
        if previous_agent_session is not None and chat not in c.running:
            await c.ports.agent.end_session(previous_agent_session)
        await c.audit(chat, user, AuditAction.CLEAR)
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
            history=tuple(r for r in history if r.action in DECISION_ACTIONS),
            workspace=ws_status,
            workspace_path=c.settings.workspace_path,
            running=chat in c.running,
            session_started=session.started_at,
            user_name=user_name,
            username=username,
            tool_mode=tools.mode.value if tools is not None else "off",
            tool_rules=session.tool_rules,
            operator_tool_rules=tools.allow if tools is not None else (),
            project=c.settings.project,
        )
        await c.ports.messenger.send(chat, report)

    async def info(self, chat: ChatId) -> None:
        await self._c.ports.messenger.send(
            chat, InfoReport(tuple(await self.diagnose()), project=self._c.settings.project)
        )

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
        target = next(iter(await c.ports.store.approved_changes(chat, 1)), None)
        if target is None:
            await c.ports.messenger.send(chat, c.error(NothingToUndoError()))
            return
        reverted = committed(target).sha
        message = CommitMessage(
            subject=f'Revert "{COMMIT_SUBJECT}"',
            body=f"This reverts commit {reverted}.\n\nPrompt: {target.prompt.text}".rstrip(),
            trailers=(("Voicecoder-Undo", target.id.value),),
        )
        async with c.workspace_lock:
            try:
                commit = await c.ports.workspace.revert_commit(
                    reverted, message=message, author=c.settings.commit_author
                )
            except WorkspaceError as exc:
                await c.ports.messenger.send(chat, c.error(exc))
                return
            target.revert(commit.sha, now=c.ports.clock.now())
            async with c.sessions.update(chat) as session:
                # Saved under the sessions' lock, and into the session when it is its latest change, so a session
                # saved right after cannot put the change back unreverted.
                if session.latest_change is not None and session.latest_change.id == target.id:
                    session.latest_change = target
                await c.ports.store.save_change(target)
        await c.audit(chat, user, AuditAction.UNDO, change_id=target.id, commit_sha=commit.sha, detail=reverted)
        await c.ports.messenger.send(chat, ChangeReverted(reverted, commit))
