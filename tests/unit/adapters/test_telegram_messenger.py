from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecoder.adapters.telegram.api import PacingPolicy, RetryPolicy, TelegramApiError, TelegramBotApi
from voicecoder.adapters.telegram.messenger import (
    TelegramMessenger,
    callback_data,
    esc,
    html_to_text,
    markdownish,
    parse_callback_data,
    render,
    split_html,
)
from voicecoder.domain.errors import DeliveryError, MalformedUpdateError
from voicecoder.domain.model import (
    AuditAction,
    AuditRecord,
    ChangeId,
    ChangeKind,
    ChatId,
    CommitInfo,
    Diagnostic,
    Diff,
    FileChange,
    Ownership,
    PermissionDenied,
    QuestionId,
    ToolKind,
    ToolRequest,
    UserId,
    WorkspaceStatus,
)
from voicecoder.domain.replies import (
    TOOL_ANSWERS,
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
    DiffView,
    ErrorReply,
    GitStatusView,
    Heard,
    HelpText,
    InfoReport,
    MessageRef,
    NoChanges,
    PermissionsView,
    Queued,
    Reply,
    SessionCleared,
    StatusReport,
    ToolOutcome,
    ToolQuestion,
    ToolQuestionClosed,
    TurnOutcome,
    Unauthorized,
    Welcome,
    Working,
)
from voicecoder.simulators.bot_api import (
    DEFAULT_TOKEN,
    DEFAULT_USER,
    FakeBotApi,
    TelegramHtmlError,
    parse_telegram_html,
)
from voicecoder.testing.replies import REPLY_TYPES, markdown_text, strategy_for

CHAT = ChatId(DEFAULT_USER.id)
NASTY = "if a < b && c > d: print('<b>not bold</b> &amp;')"
CHANGE = ChangeId("0123abcd")
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def make_diff(unified: str = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a < b\n+a <= b\n") -> Diff:
    return Diff(
        unified=unified,
        files=(
            FileChange("src/<app>.py", ChangeKind.MODIFIED, 3, 1),
            FileChange("new & shiny.txt", ChangeKind.ADDED, 10, 0),
            FileChange("logo.png", ChangeKind.DELETED, binary=True),
        ),
        fingerprint=hashlib.sha256(unified.encode()).hexdigest(),
    )


def overlap_diff() -> Diff:
    """Claude's change in two files, one overlapping the developer's uncommitted edits; a late edit too."""
    return Diff(
        unified="diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a < b\n+a <= b\n",
        files=(
            FileChange("x.py", ChangeKind.MODIFIED, 1, 1, owner=Ownership.OVERLAP),
            FileChange("y<&>.py", ChangeKind.MODIFIED, 2, 0, owner=Ownership.BOTH),
        ),
        fingerprint="ab" * 32,
        yours="diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+a < b # mine\n",
        late=(FileChange("late & <new>.txt", ChangeKind.ADDED, 1, 0),),
        late_unified="diff --git a/late b/late\n+late <text>\n",
    )


COMMIT = CommitInfo("abcdef1234567890", f"Apply changes\n\n{NASTY}", "Ada <ada@example.com>", NOW)
STATUS = WorkspaceStatus(
    branch="feature/<x>",
    head="abcdef1234567890",
    staged=("a&b.py",),
    unstaged=("c.py",),
    untracked=("<d>.txt",),
    latest_subject=NASTY,
    latest_time=NOW,
    path="/work/repo",
)

QUESTION = ToolQuestion(
    QuestionId("abcdef0123"),
    ToolRequest(
        "req-1", "Bash", ToolKind.SHELL, f"Bash: {NASTY}", command=f"{NASTY} && echo '<b>'", description="a <test>"
    ),
    timeout_s=600,
    session_rule="Bash(if *)",
    uncovered="your rule Bash(<x> *) does not cover every command of this line",
)
EDIT_QUESTION = ToolQuestion(
    QuestionId("abcdef0124"),
    ToolRequest("req-2", "Write", ToolKind.EDIT, "Write .git/<hooks>", paths=("/w/.git/x",), preview="-a < b\n+a <= b"),
    timeout_s=30,
    flagged="it writes into .git/, the repository's own <data>",
)

SAMPLES: list[Reply] = [
    Welcome("Ada <Lovelace>", "/work/<repo>"),
    Welcome(None, ""),
    HelpText((("start", "Welcome"), ("status", NASTY))),
    Unauthorized(42),
    Heard(NASTY, confidence=0.4, language="en"),
    Queued(ahead=2),
    Working(prompt=NASTY, steps=("🔧 Bash: ls <dir>", "⚠️ failed: a & b"), elapsed_s=65.2),
    Working(prompt=NASTY, steps=(), elapsed_s=3, cancellable=False, finished=True),
    AgentAnswer(
        text=f"Done. `x < y` and **bold & brave**\n```python\n{NASTY}\n```\nbye",
        success=True,
        cost_usd=0.0123,
        num_turns=3,
        duration_ms=12_300,
        permission_denials=(PermissionDenied("Bash", "rm -rf <everything>"),),
        notices=("fresh <session>",),
    ),
    AgentAnswer(text="", success=False, errors=(NASTY,)),
    ChangeSummary(CHANGE, make_diff(), blocked_reasons=(f"possible secret: {NASTY}",), superseded_previous=True),
    NoChanges(),
    AutoApproved(CHANGE, make_diff(), COMMIT, "docs <only>"),
    DiffView(make_diff(), CHANGE),
    DiffView(Diff.empty()),
    ChangeSummary(CHANGE, overlap_diff()),
    DiffView(overlap_diff(), CHANGE, blocked_reasons=(f"possible secret: {NASTY}",), refreshed=True),
    ApprovalChoiceNeeded(CHANGE, overlap_diff()),
    GitStatusView(STATUS),
    GitStatusView(WorkspaceStatus(branch=None, head=None)),
    ChangeCommitted(CHANGE, COMMIT, files=3),
    ChangeCommitted(CHANGE, COMMIT, files=1, left_out=("x<1>.py",), kept_yours=("y&.py",)),
    ChangeDiscarded(CHANGE, ("a<b>.py", "c&d.py")),
    ChangeDiscarded(CHANGE, ("a<b>.py",), merged=("a<b>.py",), kept=("k&.py",)),
    ChangeReverted("fedcba9876543210", COMMIT),
    StatusReport(
        user_id=DEFAULT_USER.id,
        agent_session_id="5f3c2a1b-aaaa-bbbb-cccc-000000000000",
        turn_count=4,
        compaction_threshold=20,
        pending=ChangeSummary(CHANGE, make_diff()),
        approved_count=2,
        rejected_count=1,
        history=(AuditRecord(NOW, CHAT, UserId(1), AuditAction.APPROVE, commit_sha="abcdef1234"),),
        workspace=STATUS,
        workspace_path="/work/<repo>",
        running=True,
        session_started=NOW,
    ),
    StatusReport(
        user_id=1,
        agent_session_id=None,
        turn_count=0,
        compaction_threshold=20,
        pending=None,
        approved_count=0,
        rejected_count=0,
        history=(),
        workspace=None,
        workspace_path="",
        running=False,
    ),
    InfoReport(
        (
            Diagnostic("git", ok=True, detail="dulwich 1.2"),
            Diagnostic("claude <cli>", ok=False, detail="not found", fix="npm install -g @anthropic-ai/claude-code"),
            Diagnostic("stt", ok=True, detail="local & slow", fix="set KEY", warning=True),
        )
    ),
    InfoReport(()),
    SessionCleared(kept_pending=True),
    Compaction(20, ok=True),
    Compaction(20, ok=False, detail=NASTY),
    Cancelled(was_running=True),
    Cancelled(was_running=False),
    ErrorReply(NASTY),
    QUESTION,
    EDIT_QUESTION,
    ToolQuestion(
        QuestionId("abcdef0125"),
        ToolRequest("r", "WebFetch", ToolKind.FETCH, "WebFetch https://x/<y>", url="https://x/<y>?a&b"),
        timeout_s=600,
        session_rule="WebFetch(domain:x)",
    ),
    *(ToolQuestionClosed(QUESTION, outcome, by="Ada <L>", reason=NASTY) for outcome in ToolOutcome),
    ToolQuestionClosed(EDIT_QUESTION, ToolOutcome.TIMED_OUT),
    PermissionsView("auto-edits", 600, operator_rules=("Bash(<x> *)",), session_rules=("Bash(a & b *)",)),
    PermissionsView("off", 600, cleared=("Bash(<y>)",)),
    SessionCleared(kept_pending=False, cleared_rules=("Bash(<z> *)",)),
    Cancelled(was_running=True, reason="voicecoder is <restarting>"),
    Working(
        prompt=NASTY,
        steps=(),
        elapsed_s=0.2,
        cancellable=False,
        finished=True,
        outcome=TurnOutcome.CANCELLED,
        stop_reason="voicecoder is <restarting>",
    ),
]


@pytest.fixture(name="api")
async def _api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        api.add_chat()
        yield api


@pytest.fixture(name="messenger")
async def _messenger(api: FakeBotApi) -> AsyncIterator[TelegramMessenger]:
    async with TelegramBotApi(
        DEFAULT_TOKEN,
        base_url=api.base_url,
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
        pacing=PacingPolicy(per_chat_rate=0, global_rate=0),
    ) as client:
        yield TelegramMessenger(client)


def plain_of(api: FakeBotApi) -> str:
    return "".join(m.text or "" for m in api.bot_messages())


class TestStrictHtml:
    @pytest.mark.parametrize("reply_type", REPLY_TYPES, ids=lambda t: t.__name__)
    @settings(max_examples=40)
    @given(data=st.data())
    def test_every_reply_is_strict_telegram_html(self, reply_type: type, data: st.DataObject) -> None:
        """Any reply, with hostile text in every field, renders to parts the strict Telegram-HTML check accepts."""
        reply = data.draw(strategy_for(reply_type))

        rendered = render(reply)

        parts = split_html(rendered.html) if rendered.document is None else [rendered.html]
        assert parts
        for part in parts:
            plain, _ = parse_telegram_html(part, strict=True)
            assert plain.strip()
            assert len(plain.encode("utf-16-le")) // 2 <= 4096

    def test_strategies_cover_every_reply_type(self) -> None:
        """The hostile-reply strategies know every member of `Reply` (a new reply type cannot skip the check)."""
        for reply_type in REPLY_TYPES:
            strategy_for(reply_type)

    @pytest.mark.parametrize(
        "source",
        [
            "a & b",
            "a > b",
            "<a>x</a>",
            '<code class="language-py">x</code>',
            "<pre><b>x</b></pre>",
            "<a href='x'><a href='y'>z</a></a>",
        ],
    )
    def test_strict_check_refuses_what_the_docs_forbid(self, source: str) -> None:
        """The strict checker is stricter than Telegram: bare & and >, links without href, wrong nesting."""
        with pytest.raises(TelegramHtmlError):
            parse_telegram_html(source, strict=True)

    def test_sub_second_duration_is_escaped(self) -> None:
        """A run under a second reads '<1s' as text, not as a tag (Telegram refused the whole status before)."""
        rendered = render(Working(prompt="hi", steps=(), elapsed_s=0.2, finished=True, outcome=TurnOutcome.FINISHED))

        plain, _ = parse_telegram_html(rendered.html, strict=True)

        assert plain.startswith("✔️ Claude finished after <1s")


class TestRender:
    @pytest.mark.parametrize("reply", SAMPLES, ids=lambda r: type(r).__name__)
    def test_every_reply_is_valid_telegram_html(self, reply: Reply) -> None:
        """Each reply renders to HTML that Telegram's parser accepts, within one message."""
        rendered = render(reply)

        plain, _ = parse_telegram_html(rendered.html, strict=True)

        assert plain.strip()
        assert len(plain) <= 4096

    def test_dynamic_text_is_escaped(self) -> None:
        """User/agent text shows literally, never as markup."""
        plain, entities = parse_telegram_html(render(ErrorReply(NASTY)).html)

        assert plain == f"⚠️ {NASTY}"
        assert entities == []

    def test_unauthorized_text(self) -> None:
        """The unauthorized reply is exactly the agreed sentence."""
        assert render(Unauthorized(7)).html == "⛔ You are not authorized to use this bot."

    def test_change_summary_has_four_buttons(self) -> None:
        """The change summary carries Approve/Reject/Show Diff/Git Status that parse back to its buttons."""
        summary = ChangeSummary(CHANGE, make_diff())

        keyboard = render(summary).keyboard

        assert keyboard is not None
        cells = [b for row in keyboard.inline_keyboard for b in row]
        assert [c.text for c in cells] == ["✅ Approve", "❌ Reject", "📝 Show Diff", "📊 Git Status"]
        assert tuple(parse_callback_data(c.callback_data or "") for c in cells) == summary.buttons

    def test_overlapping_files_are_marked_and_approve_asks_for_the_choice(self) -> None:
        """The summary marks the overlapping file and offers the two explicit choices, which parse back."""
        summary = ChangeSummary(CHANGE, overlap_diff())

        rendered = render(summary)

        plain, _ = parse_telegram_html(rendered.html)
        assert "x.py +1 −1 ⚠️ also has your uncommitted edits" in plain
        assert "y<&>.py +2 −0 (your own edits in it stay uncommitted)" in plain
        assert rendered.keyboard is not None
        cells = [b for row in rendered.keyboard.inline_keyboard for b in row]
        assert [c.text for c in cells][:2] == ["✅ Commit with my edits", "✅ Leave this file out"]
        parsed = [parse_callback_data(c.callback_data or "") for c in cells]
        assert [(b.action, b.change_id, b.fingerprint) for b in parsed] == [
            (b.action, b.change_id, b.fingerprint) for b in summary.buttons
        ]

    def test_the_diff_shows_claudes_change_your_edits_and_late_edits_apart(self) -> None:
        """Three sections, in that order, each escaped; the buttons carry the (refreshed) fingerprint."""
        view = DiffView(overlap_diff(), CHANGE, refreshed=True)

        rendered = render(view)

        plain, entities = parse_telegram_html(rendered.html)
        claude = plain.index("Claude's change (what ✅ Approve commits)")
        yours = plain.index("Your uncommitted edits in the same files")
        late = plain.index("Late edits")
        assert claude < yours < late
        assert "a < b # mine" in plain[yours:late]
        assert "late & <new>.txt" in plain[late:]
        assert "workspace changed since the summary" in plain
        assert sum(e["type"] == "pre" for e in entities) == 3
        assert rendered.keyboard is not None
        assert {b.callback_data for row in rendered.keyboard.inline_keyboard for b in row} == {
            callback_data(b) for b in view.buttons
        }

    def test_reject_reply_lists_what_was_restored_and_kept(self) -> None:
        """Restored files, the ones where the developer's later edits were kept, and what could not be undone."""
        plain, _ = parse_telegram_html(
            render(ChangeDiscarded(CHANGE, ("a.py", "b.py"), merged=("b.py",), kept=("c.py",))).html
        )

        assert "restored 2 files:\na.py, b.py" in plain
        assert "Your later edits in b.py were kept" in plain
        assert "Files Claude did not touch were left as they are." in plain
        assert "Claude's lines stay where your edits overlap them: c.py" in plain

    def test_agent_answer_code_blocks_become_pre(self) -> None:
        """Fenced code in Claude's answer becomes a pre entity with its language; permission denials are listed."""
        plain, entities = parse_telegram_html(render(SAMPLES[8]).html)

        assert any(e["type"] == "pre" and e.get("language") == "python" for e in entities)
        assert NASTY in plain
        assert "rm -rf <everything>" in plain
        assert "$0.0123" in plain

    def test_short_diff_inline_long_diff_document(self) -> None:
        """A short diff is an escaped pre block; one over ~3500 characters becomes a .diff document."""
        short = render(DiffView(make_diff(), CHANGE))
        long_text = "".join(f"+line {i} <tag> & more\n" for i in range(400))
        long = render(DiffView(make_diff(long_text), CHANGE))

        assert short.document is None
        assert "a &lt;= b" in short.html
        assert long.document == (f"change-{CHANGE.value}.diff", long_text.encode())


class TestSplitHtml:
    def test_pre_is_closed_and_reopened(self) -> None:
        """A pre block cut in two is closed at the end of the first part and reopened (with its class)."""
        source = '<b>Diff</b>\n<pre><code class="language-diff">' + esc("x < y\n" * 30) + "</code></pre>"

        parts = split_html(source, limit=50)

        assert len(parts) > 2
        for part in parts:
            plain, _ = parse_telegram_html(part)
            assert len(plain) <= 50
        assert parts[1].startswith('<pre><code class="language-diff">')
        assert parts[0].endswith("</code></pre>")
        assert "".join(parse_telegram_html(p)[0] for p in parts) == "Diff\n" + "x < y\n" * 30

    def test_never_cuts_inside_an_entity(self) -> None:
        """Entities like &amp; stay whole and count as one character."""
        parts = split_html("&amp;" * 10, limit=3)

        assert parts == ["&amp;&amp;&amp;"] * 3 + ["&amp;"]

    def test_prefers_line_breaks(self) -> None:
        """A cut falls after the last newline in the second half of the part."""
        parts = split_html("aaaaaaa\nbbbbbbb\ncc", limit=10)

        assert parts == ["aaaaaaa\n", "bbbbbbb\ncc"]

    def test_every_cut_prefers_a_line_break(self) -> None:
        """Not only the first cut: every part but the last ends at a line break."""
        source = "<b>" + esc("".join(f"row {i:03d} <ok> & fine\n" for i in range(60))) + "</b>"

        parts = split_html(source, limit=100)

        assert len(parts) > 5
        assert all(parse_telegram_html(p)[0].endswith("\n") for p in parts[:-1])
        assert all(p.startswith("<b>") and p.endswith("</b>") for p in parts)

    @given(
        st.lists(
            st.tuples(st.sampled_from(["", "b", "i", "code", "pre"]), st.text(min_size=1, max_size=40)),
            min_size=1,
            max_size=30,
        ),
        st.integers(min_value=8, max_value=120),
    )
    def test_parts_are_valid_and_lossless(self, chunks: list[tuple[str, str]], limit: int) -> None:
        """Any escaped, tagged text splits into valid parts of at most *limit* characters that rejoin losslessly."""
        source = "".join(f"<{t}>{esc(s)}</{t}>" if t else esc(s) for t, s in chunks)
        expected = "".join(s for _, s in chunks)

        parts = split_html(source, limit)

        texts = [parse_telegram_html(p)[0] for p in parts]
        assert all(len(t.encode("utf-16-le")) // 2 <= limit for t in texts)
        # parts holding only whitespace are dropped; nothing else is lost
        assert "".join("".join(texts).split()) == "".join(expected.split())


class TestCallbackData:
    @given(
        st.sampled_from(list(Action)),
        st.one_of(st.none(), st.from_regex(r"[0-9a-f]{8,32}", fullmatch=True).map(ChangeId)),
        st.one_of(st.none(), st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True)),
        st.one_of(st.none(), st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True)),
    )
    def test_round_trip_within_64_bytes(
        self, action: Action, change: ChangeId | None, fp: str | None, project: str | None
    ) -> None:
        """
        Every button encodes into at most 64 bytes and parses back to itself (tool answers name a question, project
        buttons their project; any button may carry the project of a bot with several).
        """
        if action is Action.CHOOSE_PROJECT:
            project = project or "api"
        if action in TOOL_ANSWERS:
            button = Button(action, question=QuestionId((change or ChangeId("0123abcd")).value), project=project)
        else:
            button = Button(action, change, fp, project=project)

        data = callback_data(button)

        assert len(data.encode()) <= 64
        assert parse_callback_data(data) == button

    def test_long_fingerprint_is_cut_to_16(self) -> None:
        """A full sha256 fingerprint is shortened to its 16-character prefix."""
        data = callback_data(Button(Action.APPROVE, CHANGE, "f" * 64))

        assert data == f"a:{CHANGE.value}:{'f' * 16}"

    @pytest.mark.parametrize(
        "garbage",
        [
            "",
            "approve:42",
            "a:42:",
            "x:0123abcd:ff",
            "a:0123abcd",
            "a:0123ABCD:ff",
            "a:0123abcd:ff:extra",
            "a::" + "f" * 17,
        ],
    )
    def test_garbage_is_rejected(self, garbage: str) -> None:
        """callback_data this bot never produced raises MalformedUpdateError."""
        with pytest.raises(MalformedUpdateError):
            parse_callback_data(garbage)

    @given(st.text(max_size=80))
    def test_arbitrary_text_parses_or_raises(self, data: str) -> None:
        """Any string either raises MalformedUpdateError or is a canonical encoding of a button."""
        try:
            button = parse_callback_data(data)
        except MalformedUpdateError:
            return
        assert callback_data(button) == data


class TestTelegramMessenger:
    @pytest.mark.parametrize("reply", SAMPLES, ids=lambda r: type(r).__name__)
    async def test_every_reply_is_accepted_by_the_fake(
        self, api: FakeBotApi, messenger: TelegramMessenger, reply: Reply
    ) -> None:
        """Telegram (the fake) accepts every rendered reply; the returned ref is the stored message."""
        ref = await messenger.send(CHAT, reply)

        stored = api.messages[(CHAT.value, ref.message_id)]
        assert stored.from_bot
        assert all(c.status == 200 for c in api.calls)

    async def test_long_answer_is_split_and_ref_is_last(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A 10 000-character answer becomes several valid messages; the ref points at the last one."""
        text = "".join(f"line {i}: {NASTY}\n" for i in range(200))

        ref = await messenger.send(CHAT, AgentAnswer(text=text, success=True))

        messages = api.bot_messages()
        assert len(messages) >= 3
        assert all(len(m.text or "") <= 4096 for m in messages)
        assert ref == MessageRef(CHAT, messages[-1].message_id)
        assert "".join((m.text or "") for m in messages).replace("\n", "") == f"🤖 Claude: {text}".replace("\n", "")

    async def test_long_code_block_keeps_pre_in_every_part(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A code block longer than a message is a pre entity in each part."""
        code = "".join(f"x_{i} = a < b and c > d  # &\n" for i in range(300))

        await messenger.send(CHAT, AgentAnswer(text=f"```python\n{code}```", success=True))

        messages = api.bot_messages()
        assert len(messages) >= 2
        for m in messages[1:]:
            assert m.entities[0]["type"] == "pre"
            assert m.entities[0]["offset"] == 0

    async def test_parse_error_falls_back_to_plain_text(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """When Telegram cannot parse the entities, the same text goes out without parse_mode."""
        api.fail_next(
            "sendMessage",
            code=400,
            description='Bad Request: can\'t parse entities: Unsupported start tag "foo" at byte offset 3',
        )

        await messenger.send(CHAT, ErrorReply(NASTY))

        calls = api.calls_to("sendMessage")
        assert [c.status for c in calls] == [400, 200]
        assert "parse_mode" not in calls[1].params
        assert api.bot_messages()[-1].text == f"⚠️ {NASTY}"

    async def test_too_long_by_telegram_is_resplit(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """If Telegram still finds a part too long, it is sent again in smaller parts; nothing is lost."""
        text = "".join(f"row {i}\n" for i in range(400))
        api.fail_next("sendMessage", code=400, description="Bad Request: message is too long")

        ref = await messenger.send(CHAT, AgentAnswer(text=text, success=True))

        messages = api.bot_messages()
        assert len(messages) >= 2
        assert ref.message_id == messages[-1].message_id
        assert "".join(m.text or "" for m in messages) == f"🤖 Claude: {text}"

    async def test_long_diff_goes_out_as_document(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A long diff is sent with sendDocument; the file holds the exact diff text."""
        unified = "".join(f"+added line {i} with <html> & stuff\n" for i in range(300))

        ref = await messenger.send(CHAT, DiffView(make_diff(unified), CHANGE))

        stored = api.messages[(CHAT.value, ref.message_id)]
        assert stored.document is not None
        assert stored.document.data == unified.encode()
        assert stored.document.file_name == f"change-{CHANGE.value}.diff"
        assert stored.caption is not None
        assert "attached" in stored.caption
        assert stored.button_texts() == ["✅ Approve", "❌ Reject"]

    async def test_working_edit_lifecycle(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """The status message gets progress edits with ⏹ Cancel, tolerates identical edits, loses Cancel when done."""
        ref = await messenger.send(CHAT, Working(prompt="fix it", steps=(), elapsed_s=0))
        first = api.messages[(CHAT.value, ref.message_id)]
        assert first.button_texts() == ["⏹ Cancel"]
        assert parse_callback_data(first.callback_datas()[0]) == Button(Action.CANCEL)

        progress = Working(prompt="fix it", steps=("🔧 Edit: app.py",), elapsed_s=4)
        await messenger.edit(ref, progress)
        await messenger.edit(ref, progress)  # same content: "not modified" is success
        mid_text, mid_buttons = first.text, first.button_texts()
        await messenger.edit(ref, Working(prompt="fix it", steps=("🔧 Edit: app.py",), elapsed_s=9, finished=True))

        assert mid_text is not None
        assert "🔧 Edit: app.py" in mid_text
        assert mid_buttons == ["⏹ Cancel"]
        assert first.text is not None
        assert first.text.startswith("✔️ Claude finished after 9s")
        assert first.reply_markup is None
        assert first.edits == 2
        assert len(api.bot_messages()) == 1

    async def test_answer_callback_and_late_answer(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A press is answered; answering it again (too old) is logged, not raised."""
        ref = await messenger.send(CHAT, ChangeSummary(CHANGE, make_diff()))
        data = api.messages[(CHAT.value, ref.message_id)].callback_datas()[0]
        update = await api.press(ref.message_id, data)
        query_id = update["callback_query"]["id"]

        await messenger.answer_callback(query_id, "✅ Committed abc1234" + "!" * 300, alert=True)
        await messenger.answer_callback(query_id, "again")

        assert api.callback_answered(query_id)
        answers = [e for e in api.transcript() if e["kind"] == "callback_answer"]
        assert len(answers) == 1
        assert answers[0]["show_alert"] is True
        assert len(answers[0]["text"]) == 200

    async def test_typing_never_raises(self, api: FakeBotApi, messenger: TelegramMessenger) -> None:
        """A failing chat action is swallowed: the indicator is cosmetic."""
        api.fail_next("sendChatAction", 5, code=500)

        await messenger.typing(CHAT)
        await messenger.typing(CHAT)

        assert [e["action"] for e in api.transcript() if e["kind"] == "chat_action"] == ["typing"]

    async def test_delivery_failure_raises_delivery_error(self, messenger: TelegramMessenger) -> None:
        """A message to a chat the bot cannot reach raises DeliveryError."""
        with pytest.raises(DeliveryError) as info:
            await messenger.send(ChatId(999), NoChanges())

        assert isinstance(info.value, TelegramApiError)
        assert info.value.description == "Bad Request: chat not found"

    def test_html_to_text(self) -> None:
        """html_to_text drops tags and decodes entities."""
        assert html_to_text("<b>a &lt; b</b> &amp; <i>c</i>") == "a < b & c"


class TestMarkdownish:
    @settings(max_examples=500)
    @given(text=markdown_text())
    def test_any_markdown_is_strict_telegram_html(self, text: str) -> None:
        """Whatever order Claude's Markdown delimiters come in, the converted answer is valid Telegram HTML."""
        parse_telegram_html(markdownish(text), strict=True)

    @pytest.mark.parametrize("text", ["`**a**`", "**`a**`", "**a `b` c**", "``` **x** ```", "a ** b ` c ** d `"])
    def test_bold_never_interleaves_with_code(self, text: str) -> None:
        """Bold and code spans from Claude's Markdown never interleave, so Telegram accepts the answer as HTML."""
        plain, _ = parse_telegram_html(markdownish(text), strict=True)

        assert plain.replace("*", "").replace("`", "").strip()
