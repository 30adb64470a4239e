"""The texts of /status and 📊 Git Status, and the project line the replies of a several-project bot carry."""

from __future__ import annotations

from voicecoder.adapters.telegram.fragments import _paths, _plural, _when
from voicecoder.adapters.telegram.html_text import _short, esc
from voicecoder.domain.model import WorkspaceStatus
from voicecoder.domain.replies import StatusReport

__all__ = ["in_project", "render_git_status", "render_status_report"]


def in_project(project: str) -> str:
    """The project a reply is about, where the bot serves several (nothing otherwise)."""
    return f" · 📁 <b>{esc(project)}</b>" if project else ""


def render_git_status(status: WorkspaceStatus) -> str:
    lines = ["📊 <b>Git status</b>"]
    branch = esc(status.branch) if status.branch else "(detached)"
    head = f" at <code>{esc(status.head[:7])}</code>" if status.head else " (no commits yet)"
    lines.append(f"🌿 Branch: <code>{branch}</code>{head}")
    if status.is_clean:
        lines.append("✨ Working tree clean")
    for label, paths in (("Staged", status.staged), ("Modified", status.unstaged), ("Untracked", status.untracked)):
        if paths:
            lines.append(f"{label} ({len(paths)}): {_paths(paths)}")
    if status.latest_subject:
        lines.append(f"📌 Latest commit: {esc(status.latest_subject)} ({_when(status.latest_time)})")
    if status.path:
        lines.append(f"📁 <code>{esc(status.path)}</code>")
    return "\n".join(lines)


def render_status_report(r: StatusReport) -> str:
    lines = ["📋 <b>Status</b>" + in_project(r.project)]
    if r.agent_session_id:
        lines.append(f"🤖 Session: <code>{esc(r.agent_session_id[:8])}</code> (started {_when(r.session_started)})")
    else:
        lines.append("🤖 Session: none yet")
    lines.append(f"🔄 Turns: {r.turn_count}/{r.compaction_threshold} (compacts at {r.compaction_threshold})")
    if r.running:
        lines.append("⏳ Claude is working right now")
    if r.pending is not None:
        lines.append(
            f"📝 Pending change: <code>{esc(r.pending.change_id.value)}</code> — {esc(r.pending.diff.stat_line())}"
        )
    else:
        lines.append("📝 Pending change: none")
    decisions = r.approved_count + r.rejected_count
    lines.append(f"🗳 Decisions: {decisions} (✅ {r.approved_count} approved · ❌ {r.rejected_count} rejected)")
    if r.history:
        lines.append("🕘 Recent decisions:")
        for rec in r.history[-5:]:
            sha = f" <code>{esc(rec.commit_sha[:7])}</code>" if rec.commit_sha else ""
            lines.append(f"• {_when(rec.at)} {esc(rec.action)}{sha}")
    if r.workspace is not None:
        ws = r.workspace
        branch = esc(ws.branch) if ws.branch else "(detached)"
        latest = f" · latest <code>{esc(ws.head[:7])}</code>" if ws.head else ""
        subject = f" {esc(_short(ws.latest_subject, 80))}" if ws.latest_subject else ""
        lines.append(f"🌿 Branch: <code>{branch}</code>{latest}{subject}")
        where = esc(r.workspace_path or ws.path or "?")
        lines.append(f"📁 Workspace: <code>{where}</code> · {_plural(ws.tracked_files, 'file')}")
    else:
        lines.append("🌿 Branch: unavailable")
        lines.append(f"📁 Workspace: <code>{esc(r.workspace_path or '?')}</code>")
    if r.tool_mode is not None:
        rules = (*r.operator_tool_rules, *r.tool_rules)
        shown = ", ".join(f"<code>{esc(x)}</code>" for x in rules) if rules else "none"
        lines.append(f"🔐 Tools: {esc(r.tool_mode)} · rules: {shown} (/permissions)")
    who = [f"<b>{esc(r.user_name)}</b>"] if r.user_name else []
    if r.username:
        who.append(f"@{esc(r.username)}")
    who.append(f"<code>{r.user_id}</code>")
    lines.append(f"👤 User: {' '.join(who)}")
    return "\n".join(lines)
