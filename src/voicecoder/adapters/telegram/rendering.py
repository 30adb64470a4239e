"""
`render`: each domain `Reply` as Telegram HTML with its inline keyboard.

Also the button labels and the ``callback_data`` the buttons carry.
"""

from __future__ import annotations

import functools

import attrs

from voicecoder.adapters.telegram.api import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)
from voicecoder.adapters.telegram.fragments import (
    _duration,
    _file_lines,
    _overlap_note,
    _paths,
    _plural,
    _when,
)
from voicecoder.adapters.telegram.html_text import (
    _short,
    esc,
    html_to_text,
    markdownish,
)
from voicecoder.adapters.telegram.status_text import in_project, render_git_status, render_status_report
from voicecoder.domain.callbacks import decode_callback, encode_callback
from voicecoder.domain.model import (
    PermissionDenied,
    ToolKind,
)
from voicecoder.domain.replies import (
    Action,
    AgentAnswer,
    ApprovalChoiceNeeded,
    AutoApproved,
    Button,
    Cancelled,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeReverted,
    ChangeSummary,
    Compaction,
    Decision,
    DiffView,
    ErrorReply,
    GitStatusView,
    Heard,
    HelpText,
    InfoReport,
    InterruptedPrompt,
    NoChanges,
    PermissionsView,
    ProjectChosen,
    ProjectPicker,
    Queued,
    Reply,
    SessionCleared,
    SpeechCheck,
    StalePrompt,
    StatusReport,
    ToolOutcome,
    ToolQuestion,
    ToolQuestionClosed,
    TurnOutcome,
    Unauthorized,
    Welcome,
    Working,
    buttons_of,
)

CAPTION_LIMIT = 1024
DIFF_INLINE_LIMIT = 3500
UNAUTHORIZED_TEXT = "⛔ You are not authorized to use this bot."

BUTTON_LABELS = {
    Action.APPROVE: "✅ Approve",
    Action.APPROVE_WITH_MY_EDITS: "✅ Commit with my edits",
    Action.APPROVE_LEAVE_OUT: "✅ Leave those files out",
    Action.REJECT: "❌ Reject",
    Action.SHOW_DIFF: "📝 Show Diff",
    Action.GIT_STATUS: "📊 Git Status",
    Action.CANCEL: "⏹ Cancel",
    Action.TOOL_ALLOW: "✅ Allow",
    Action.TOOL_ALLOW_SESSION: "🔓 Allow for this session",
    Action.TOOL_DENY: "❌ Deny",
    Action.CLEAR_PERMISSIONS: "🧹 Clear this session's rules",
    Action.RUN_AGAIN: "🔁 Run it again",
    Action.CHOOSE_PROJECT: "📁 Project",
}
#: The line of an open tool question that invites a reply; the router recognises open questions by it.
QUESTION_INVITATION = "Reply to this message (text or 🎤) to deny with a reason Claude reads."
#: A button label may name the rule it adds while it stays readable on a phone.
_RULE_IN_LABEL_MAX = 32


# --- callback_data -----------------------------------------------------------------------------

# The codec is public in the domain (embedders' own bots use it); these names stay for existing callers.
callback_data = encode_callback
parse_callback_data = decode_callback


def _keyboard(
    buttons: tuple[Button, ...], per_row: int = 2, labels: dict[Action, str] | None = None
) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    names = {**BUTTON_LABELS, **(labels or {})}
    cells = [InlineKeyboardButton(b.label or names[b.action], callback_data=callback_data(b)) for b in buttons]
    return InlineKeyboardMarkup(tuple(tuple(cells[i : i + per_row]) for i in range(0, len(cells), per_row)))


# --- rendering -----------------------------------------------------------------------------------


@attrs.frozen
class Rendered:
    """A reply as Telegram sees it: HTML text (or a document with an HTML caption) and buttons."""

    html: str
    keyboard: InlineKeyboardMarkup | None = None
    document: tuple[str, bytes] | None = None


@functools.lru_cache(maxsize=8)
def _help_html(commands: tuple[tuple[str, str], ...]) -> str:
    """The /help text; a bot has one or two command lists, so each is escaped once, not on every /help."""
    lines = [f"/{esc(c)} — {esc(d)}" for c, d in commands]
    return (
        "ℹ️ <b>Commands</b>\n" + "\n".join(lines) + "\n\n<b>Tips</b>\n"
        "• Say file and function names clearly in voice notes; I show what I heard first.\n"
        "• A new prompt on top of a pending change extends it; approve or reject the whole.\n"
        "• Long diffs arrive as a .diff file."
    )


def render(reply: Reply) -> Rendered:
    """Render one domain reply."""
    match reply:
        case Welcome(user_name=name, workspace=workspace, commands=commands):
            return Rendered(_render_welcome(name, workspace, commands))
        case HelpText(commands=commands):
            return Rendered(_help_html(commands))
        case Unauthorized():
            return Rendered(UNAUTHORIZED_TEXT)
        case Heard(text=text, confidence=confidence):
            note = ""
            if confidence is not None and confidence < 0.6:
                note = f"\n<i>(low confidence: {confidence:.0%}; correct me if this is wrong)</i>"
            return Rendered(f"🎤 Heard: <i>{esc(text)}</i>{note}")
        case Queued(ahead=ahead):
            return Rendered(
                f"⏳ Queued: {_plural(ahead, 'request')} ahead. I'll start as soon as the workspace is free."
            )
        case Working():
            return _render_working(reply)
        case AgentAnswer():
            return _render_answer(reply)
        case ChangeSummary():
            return _render_summary(reply)
        case NoChanges():
            return Rendered("ℹ️ No git changes detected.")
        case ToolQuestion():
            return _render_question(reply)
        case ToolQuestionClosed():
            return Rendered(_render_question_closed(reply))
        case PermissionsView():
            return _render_permissions(reply)
        case AutoApproved(diff=diff, commit=commit, rule=rule):
            return Rendered(
                f"✅ Auto-approved ({esc(rule)}) and committed <code>{esc(commit.short_sha)}</code>\n"
                f"{esc(diff.stat_line())}\n" + "\n".join(_file_lines(diff))
            )
        case DiffView():
            return _render_diff(reply)
        case ApprovalChoiceNeeded(diff=diff):
            return Rendered(_overlap_note(diff).lstrip("\n"), _keyboard(reply.buttons))
        case GitStatusView(status=status):
            return Rendered(render_git_status(status))
        case ChangeCommitted(commit=commit, files=files, prompt=prompt, left_out=left_out, kept_yours=kept_yours):
            lines = [
                "✅ <b>Changes approved and committed!</b>",
                f"📝 Commit: <code>{esc(commit.short_sha)}</code> {esc(commit.subject)}",
            ]
            if prompt.strip():
                lines.append(f"💬 Prompt: <i>{esc(_short(' '.join(prompt.split()), 200))}</i>")
            lines.append(f"🕐 {esc(_when(commit.committed_at))} · {_plural(files, 'file')}")
            if commit.squashed:
                lines.append(f"🧩 {_claudes_commits(commit.squashed, 'squashed into this one')}.")
            if kept_yours:
                lines.append(f"✋ Your own edits stay uncommitted in {_paths(kept_yours)}.")
            if left_out:
                lines.append(f"↪️ Left out (as they are, uncommitted): {_paths(left_out)}.")
            return Rendered("\n".join(lines))
        case ChangeDiscarded():
            return Rendered(_render_discarded(reply))
        case ChangeReverted(reverted_sha=reverted, commit=commit):
            return Rendered(
                f"↩️ Reverted <code>{esc(reverted[:7])}</code> with commit <code>{esc(commit.short_sha)}</code>."
            )
        case StatusReport():
            return Rendered(render_status_report(reply))
        case InfoReport(diagnostics=diagnostics, project=project):
            lines = ["🩺 <b>Diagnostics</b>" + in_project(project)]
            for d in diagnostics:
                icon = "❌" if not d.ok else ("⚠️" if d.warning else "✅")
                lines.append(f"{icon} <b>{esc(d.name)}</b>: {esc(d.detail)}")
                if d.fix and (not d.ok or d.warning):
                    lines.append(f"    ↳ {esc(d.fix)}")
            if not diagnostics:
                lines.append("No checks are configured.")
            return Rendered("\n".join(lines))
        case ProjectPicker(projects=projects, current=current, held=held):
            head = f"📁 This chat works in <b>{esc(current)}</b>." if current else "📁 Which project is this for?"
            tail = "\nYour message runs there as soon as you choose." if held else ""
            listed = ", ".join(f"<code>{esc(p)}</code>" for p in projects)
            return Rendered(f"{head}\nProjects: {listed}.{tail}", _keyboard(reply.buttons, per_row=2))
        case ProjectChosen(project=project, workspace=workspace, running_held=held):
            extra = f"\nRunning the {_plural(held, 'message')} you sent before choosing." if held else ""
            return Rendered(f"📁 Now working in <b>{esc(project)}</b> (<code>{esc(workspace)}</code>).{extra}")
        case SessionCleared(kept_pending=kept, cleared_rules=rules):
            extra = "\nThe pending change is still waiting for ✅ Approve or ❌ Reject." if kept else ""
            if rules:
                extra += "\n🔐 Forgot this session's tool rules: " + ", ".join(f"<code>{esc(r)}</code>" for r in rules)
            return Rendered("🧹 Started a fresh Claude session." + extra)
        case Compaction(turns_before=turns, ok=ok, detail=detail):
            if ok:
                return Rendered(f"🗜 Compacted the conversation after {_plural(turns, 'turn')}.")
            return Rendered(f"⚠️ Could not compact the conversation: {esc(detail)}")
        case Cancelled(was_running=was_running, reason=reason):
            if reason:
                return Rendered(f"🔄 {esc(reason)}: the turn was stopped. Send your request again when I am back.")
            return Rendered("⏹ Cancelled." if was_running else "Nothing was running.")
        case SpeechCheck(text=text, audio_s=audio_s, seconds=seconds):
            length = f"{esc(_duration(audio_s))} of speech" if audio_s else "The voice note"
            return Rendered(
                f"🎤 Speech check: <i>{esc(text) or '(nothing heard)'}</i>\n{length} heard in "
                f"{seconds:.1f} s (a 30 s note should take under 10 s). Nothing was run."
            )
        case StalePrompt(age_s=age, max_age_s=limit, prompt=prompt, voice_duration_s=voice):
            if prompt is not None:
                what = f"<i>{esc(_short(prompt, 200))}</i>"
            else:
                what = "your voice note" + (f" ({esc(_duration(voice))})" if voice else "")
            return Rendered(
                f"⏰ Not run: {what}\nIt reached me {esc(_duration(age))} after you sent it (the limit is "
                f"{esc(_duration(limit))}), probably because the bot was offline. Send it again to run it now."
            )
        case InterruptedPrompt(prompt=prompt, voice=voice):
            quoted = f"<i>{esc(_short(prompt, 200))}</i>"
            what = ("your voice note " + quoted if prompt else "your voice note") if voice else quoted
            return Rendered(
                f"↩️ Not run again: {what}\nvoicecoder stopped while it was running, and it reached me again. What "
                "that run changed is below for you to review (if it changed anything). Running it again repeats its "
                "commands and costs another run: tap 🔁 if you want that.",
                _keyboard(reply.buttons),
            )
        case ErrorReply(message=message, hint=hint):
            return Rendered(f"⚠️ {esc(message)}" + (f"\n↳ {esc(hint)}" if hint else ""))
    raise TypeError(f"no rendering for {type(reply).__name__}")  # pragma: no cover - the match is exhaustive


_OUTCOME_HEAD = {
    TurnOutcome.FINISHED: "✔️ Claude finished after {}",
    TurnOutcome.FAILED: "⚠️ Claude stopped after {}",
    TurnOutcome.CANCELLED: "⏹ Cancelled after {}",
}

_DECISION_LINE = {
    Decision.APPROVED: "✅ Approved and committed",
    Decision.AUTO_APPROVED: "✅ Auto-approved and committed",
    Decision.REJECTED: "❌ Rejected: Claude's changes were taken back",
    Decision.SUPERSEDED: "↪️ Replaced by a newer change",
}


def _decision_line(decision: Decision, detail: str) -> str:
    line = _DECISION_LINE[decision]
    return f"{line} <code>{esc(detail)}</code>" if detail else line


def _render_welcome(name: str | None, workspace: str, commands: tuple[tuple[str, str], ...]) -> str:
    hello = f"👋 Hi <b>{esc(name)}</b>!" if name and name.strip() else "👋 Hi!"
    where = f" in <code>{esc(workspace)}</code>" if workspace else ""
    lines = [
        hello,
        (
            f"Tell me by text or 🎤 voice what to change{where}: Claude Code does it, and nothing is committed "
            "until you tap ✅ Approve."
        ),
    ]
    if commands:
        lines.append("")
        lines.extend(f"/{esc(c)} — {esc(d)}" for c, d in commands)
    return "\n".join(lines)


def _render_working(w: Working) -> Rendered:
    if w.finished:
        head = _OUTCOME_HEAD[w.outcome or TurnOutcome.FINISHED].format(esc(_duration(w.elapsed_s)))
        if w.stop_reason:
            head += f": {esc(w.stop_reason)}"
    else:
        head = "⏳ Claude is working on this…"
    lines = [head, f"<i>{esc(_short(w.prompt, 300))}</i>"]
    if w.steps:
        lines.append("")
        lines.extend(esc(_short(s, 200)) for s in w.steps)
    if not w.finished:
        lines.append(f"\n⏱ {esc(_duration(w.elapsed_s))}")
    return Rendered("\n".join(lines), _keyboard(buttons_of(w)))


def _render_answer(a: AgentAnswer) -> Rendered:
    if a.success:
        body = markdownish(a.text) if a.text.strip() else "<i>(no text answer)</i>"
        lines = [f"🤖 Claude: {body}"]
    else:
        lines = [f"⚠️ Claude could not finish: {markdownish(a.text) if a.text.strip() else 'no answer'}"]
    # The CLI often repeats its error text in `errors`: say each reason once.
    lines.extend(f"⚠️ {esc(e)}" for e in dict.fromkeys(a.errors) if e.strip() and e.strip() not in a.text)
    if a.permission_denials:
        lines.append(f"\n🚫 <b>Not allowed</b> ({len(a.permission_denials)}):")
        for d in a.permission_denials:
            lines.append(f"• {_denial(d)}")
            if d.hint:
                lines.append(f"   ↳ {esc(d.hint)}")
    lines.extend(f"ℹ️ {esc(n)}" for n in a.notices)
    footer = []
    if a.cost_usd is not None:
        footer.append(f"💰 ${a.cost_usd:.4f}")
    if a.num_turns is not None:
        footer.append(_plural(a.num_turns, "turn"))
    if a.duration_ms is not None:
        footer.append(f"⏱ {a.duration_ms / 1000:.1f}s")
    if footer:
        lines.append(f"\n<i>{' · '.join(footer)}</i>")
    return Rendered("\n".join(lines))


def _denial(d: PermissionDenied) -> str:
    """``Bash: <code>python3 x.py</code>``, without repeating the tool name the label already starts with."""
    label = d.label.removeprefix(f"{d.tool}:").strip() if d.label.startswith(f"{d.tool}:") else d.label
    return f"{esc(d.tool)}: <code>{esc(_short(label, 200))}</code>" if label else esc(d.tool)


_ASK_HEAD = {
    ToolKind.SHELL: "💻 <b>Claude wants to run a command</b>",
    ToolKind.EDIT: "✏️ <b>Claude wants to edit a file</b>",
    ToolKind.FETCH: "🌐 <b>Claude wants to go online</b>",
    ToolKind.MCP: "🧩 <b>Claude wants to use an MCP tool</b>",
    ToolKind.READ: "👀 <b>Claude wants to read</b>",
    ToolKind.OTHER: "🧩 <b>Claude wants to use a tool</b>",
}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _what(q: ToolQuestion, *, limit: int | None = None) -> list[str]:
    """What the tool would do: the full command (or a shortened one for a closed question), file, URL."""
    r = q.request
    if r.kind is ToolKind.SHELL and r.command is not None:
        command = r.command if limit is None else _short(r.command, limit)
        lines = [f'<pre><code class="language-bash">{esc(command)}</code></pre>']
        if r.description and r.description.strip() != r.command.strip():
            lines.append(f"<i>{esc(r.description)}</i>")
        return lines
    lines = [f"<code>{esc(_short(r.label, 300))}</code>"]
    if r.url:
        lines.append(f"🔗 {esc(r.url)}")
    if r.description and r.kind is not ToolKind.SHELL:
        lines.append(f"<i>{esc(_short(r.description, 300))}</i>")
    if r.preview and limit is None:
        lines.append(f'<pre><code class="language-diff">{esc(r.preview)}</code></pre>')
    return lines


def _render_question(q: ToolQuestion) -> Rendered:
    lines = [_ASK_HEAD[q.request.kind], *_what(q)]
    if q.flagged:
        lines.append(
            f"\n⚠️ <b>Flagged</b>: {esc(q.flagged)}. ❌ Reject cannot undo that, so this always asks, "
            "whatever rules you allowed."
        )
    if q.uncovered:
        lines.append(f"\nℹ️ Asking although {esc(q.uncovered)}.")
    if q.session_rule:
        lines.append(f"\n🔓 <i>Allow for this session</i> adds the rule <code>{esc(q.session_rule)}</code>.")
    lines.append(
        f"\n⏳ No answer within {_minutes(q.timeout_s)} counts as ❌ Deny. {QUESTION_INVITATION} "
        "Messages you send meanwhile wait until this turn is over."
    )
    labels: dict[Action, str] = {}
    if q.session_rule and len(q.session_rule) <= _RULE_IN_LABEL_MAX:
        labels[Action.TOOL_ALLOW_SESSION] = f"🔓 Allow {q.session_rule} for this session"
    return Rendered("\n".join(lines), _keyboard(buttons_of(q), per_row=1, labels=labels))


_CLOSED_HEAD = {
    ToolOutcome.ALLOWED: "✅ <b>Allowed</b>",
    ToolOutcome.ALLOWED_FOR_SESSION: "🔓 <b>Allowed for this session</b>",
    ToolOutcome.DENIED: "❌ <b>Denied</b>",
    ToolOutcome.TIMED_OUT: "⌛ <b>No answer</b>",
    ToolOutcome.CANCELLED: "⏹ <b>Cancelled</b>",
    ToolOutcome.RESTARTED: "🔄 <b>Not answered</b>",
}


def _render_question_closed(c: ToolQuestionClosed) -> str:
    q = c.question
    head = _CLOSED_HEAD[c.outcome]
    if c.by:
        head += f" by {esc(c.by)}"
    match c.outcome:
        case ToolOutcome.ALLOWED_FOR_SESSION if q.session_rule:
            head += f" (rule <code>{esc(q.session_rule)}</code>; /permissions to review)"
        case ToolOutcome.DENIED if c.reason:
            head += f": “{esc(_short(c.reason, 500))}”"
        case ToolOutcome.TIMED_OUT:
            head += f" within {_minutes(q.timeout_s)}, so it was denied"
        case ToolOutcome.CANCELLED:
            head += " before an answer: the turn was stopped"
        case ToolOutcome.RESTARTED:
            head += ": voicecoder restarted, so it was denied and the turn stopped"
        case _:
            pass
    return "\n".join([head, *_what(q, limit=600)])


_MODE_TEXT = {
    "auto-edits": (
        "reads and edits inside the workspace run (✅ Approve / ❌ Reject covers them); commands, fetches and "
        "other tools ask on the phone"
    ),
    "ask": "every edit, command, fetch and other tool asks on the phone (reads run)",
    "off": (
        "nothing asks: the CLI's own permission mode decides, so commands are refused. "
        "Turn tool approval on (auto-edits) to be asked instead"
    ),
}


def _render_permissions(v: PermissionsView) -> Rendered:
    lines = [f"🔐 <b>Tool approval</b>: <code>{esc(v.mode)}</code> — {esc(_MODE_TEXT.get(v.mode, v.mode))}."]
    if v.mode != "off":
        lines.append(
            f"⏳ A question not answered within {_minutes(v.timeout_s)} is denied. Destructive commands always "
            "ask; paths outside the workspace are refused."
        )
    if v.cleared:
        lines.append("\n🧹 Forgot: " + ", ".join(f"<code>{esc(r)}</code>" for r in v.cleared))
    lines.append("\n<b>Operator rules</b> (set where the bot runs):")
    lines.extend(f"• <code>{esc(r)}</code>" for r in v.operator_rules)
    if not v.operator_rules:
        lines.append("• none")
    lines.append("<b>This session</b> (🔓 answers):")
    lines.extend(f"• <code>{esc(r)}</code>" for r in v.session_rules)
    if v.session_rules:
        lines.append("\n/permissions clear forgets this session's rules (so does /clear).")
    else:
        lines.append("• none yet: tap 🔓 on a question to add one")
    return Rendered("\n".join(lines), _keyboard(buttons_of(v), per_row=1))


def _render_summary(s: ChangeSummary) -> Rendered:
    if s.decision is not None:
        lines = [f"📝 <b>Changes</b>{in_project(s.project)} — {esc(s.diff.stat_line())}", *_file_lines(s.diff)]
        lines.append(f"\n{_decision_line(s.decision, s.decision_detail)}")
        return Rendered("\n".join(lines), _keyboard(s.buttons))
    lines = [
        f"📝 <b>Changes ready for review</b>{in_project(s.project)} — {esc(s.diff.stat_line())}",
        *_file_lines(s.diff),
    ]
    if s.diff.overlapping:
        lines.append(_overlap_note(s.diff))
    if s.superseded_previous:
        lines.append("\n↪️ This includes and replaces the previous pending change.")
    if s.blocked_reasons:
        lines.append("\n🔒 <b>Approval blocked</b>:")
        lines.extend(f"• {esc(r)}" for r in s.blocked_reasons)
    lines.append("\nNothing is committed until you tap ✅ Approve.")
    return Rendered("\n".join(lines), _keyboard(buttons_of(s)))


def _claudes_commits(shas: tuple[str, ...], what: str, *, past: bool = False) -> str:
    """`Claude's 2 commits from this turn (…) were <what>; git reflog still has them` (HTML)."""
    shown = ", ".join(f"<code>{esc(sha)}</code>" for sha in shas)
    verb = ("were" if past else "are") if len(shas) > 1 else ("was" if past else "is")
    return (
        f"Claude's {_plural(len(shas), 'commit')} from this turn ({shown}) {verb} {what}; "
        "<code>git reflog</code> still has them"
    )


def _render_discarded(d: ChangeDiscarded) -> str:
    lines = [
        f"❌ Changes discarded; restored {_plural(len(d.paths), 'file')}"
        + (f":\n{_paths(d.paths)}" if d.paths else ".")
    ]
    if d.merged:
        lines.append(f"✋ Your later edits in {_paths(d.merged)} were kept; only Claude's lines were taken out.")
    if d.kept:
        lines.append(
            f"⚠️ Claude's lines stay where your edits overlap them: {_paths(d.kept)}. "
            "Undo them by hand (git diff shows them)."
        )
    if d.commits:
        lines.append(f"↩️ {_claudes_commits(d.commits, 'taken off the branch', past=True)} if you want them back.")
    if d.moved_from:
        lines.append(
            f"🔀 Claude had moved HEAD to {esc(d.moved_from)}; it is back on {esc(d.back_at)}, as the turn began"
            + (f" (<code>{esc(d.left_branch)}</code> was left where it is)." if d.left_branch else ".")
        )
    elif d.branch:
        lines.append(
            f"🔀 Back on branch <code>{esc(d.branch)}</code>; Claude's branch <code>{esc(d.left_branch)}</code> "
            f"is still there (<code>git branch -D {esc(d.left_branch)}</code> deletes it)."
        )
    lines.append("Files Claude did not touch were left as they are.")
    return "\n".join(lines)


_DIFF_BLOCK = '<pre><code class="language-diff">{}</code></pre>'


def _render_diff(view: DiffView) -> Rendered:
    diff = view.diff
    if diff.is_empty and not diff.late:
        return Rendered("ℹ️ No git changes detected.")
    keyboard = _keyboard(view.buttons)
    head = f"📝 <b>Diff</b> — {esc(diff.stat_line())}"
    if view.decision is not None:
        head += f"\n{_decision_line(view.decision, view.decision_detail)}"
    if diff.yours or diff.late:
        head += "\n<b>Claude's change</b> (what ✅ Approve commits):"
    if view.refreshed:
        head = (
            "🔄 The workspace changed since the summary; this is the diff now (the older buttons no longer work).\n"
            + head
        )
    if diff.overlapping:
        head += _overlap_note(diff)
    blocked = ""
    if view.blocked_reasons:
        blocked = "\n🔒 <b>Approval blocked</b>:\n" + "\n".join(f"• {esc(r)}" for r in view.blocked_reasons)
    sections = [(head, diff.unified)]
    if diff.yours:
        sections.append(("✋ <b>Your uncommitted edits in the same files</b> (not committed)", diff.yours))
    if diff.late:
        late_files = "\n".join(_file_lines(diff, diff.late))
        sections.append(
            (
                "⏰ <b>Late edits</b>, made after Claude finished (not committed, not reverted):\n" + late_files,
                diff.late_unified,
            )
        )
    if sum(len(text) for _, text in sections) <= DIFF_INLINE_LIMIT:
        body = "\n\n".join(f"{title}\n{_DIFF_BLOCK.format(esc(text))}" if text else title for title, text in sections)
        return Rendered(body + blocked, keyboard)
    name = f"change-{view.change_id.value}.diff" if view.change_id is not None else "changes.diff"
    titles = "\n\n".join(title for title, _ in sections)
    caption = f"{titles}\nToo long for a message: the full diff is attached.{blocked}"
    document = "".join(
        (f"# {html_to_text(title).splitlines()[0]}\n" if i else "") + text for i, (title, text) in enumerate(sections)
    )
    return Rendered(caption, keyboard, document=(name, document.encode()))
