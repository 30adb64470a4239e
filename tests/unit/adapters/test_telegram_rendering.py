"""Rendering replies as Telegram HTML: strictly valid, escaped, split at the limit; callback data."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tests.unit.adapters.telegram_samples import (
    CHANGE,
    NASTY,
    SAMPLES,
    make_diff,
    overlap_diff,
)
from voicecoder.adapters.telegram.html_text import html_to_text
from voicecoder.adapters.telegram.messenger import (
    callback_data,
    esc,
    markdownish,
    parse_callback_data,
    render,
    split_html,
)
from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.domain.model import (
    ChangeId,
    CommitInfo,
    QuestionId,
)
from voicecoder.domain.replies import (
    TOOL_ANSWERS,
    Action,
    Button,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeSummary,
    DiffView,
    ErrorReply,
    HelpText,
    Reply,
    TurnOutcome,
    Unauthorized,
    Working,
)
from voicecoder.simulators.bot_api import (
    TelegramHtmlError,
    parse_telegram_html,
)
from voicecoder.testing.replies import REPLY_TYPES, markdown_text, strategy_for


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

    def test_each_command_list_gets_its_own_help_escaped(self) -> None:
        """The /help text (rendered once per command list) lists exactly the commands asked for, escaped."""
        first = (("start", "begin"), ("x", f"a {NASTY}"))
        second = (("help", "what I can do <b>"),)

        for _ in range(2):  # the second time from the kept rendering
            one, _ = parse_telegram_html(render(HelpText(first)).html, strict=True)
            other, _ = parse_telegram_html(render(HelpText(second)).html, strict=True)

            assert one.startswith(f"ℹ️ Commands\n/start — begin\n/x — a {NASTY}\n\nTips\n")
            assert other.startswith("ℹ️ Commands\n/help — what I can do <b>\n\nTips\n")

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
        assert "taken off the branch" not in plain

    def test_reject_names_the_commits_claude_made_and_where_they_still_are(self) -> None:
        plain, _ = parse_telegram_html(render(ChangeDiscarded(CHANGE, ("a.py",), commits=("abc1234",))).html)

        assert "Claude's 1 commit from this turn (abc1234) was taken off the branch" in plain
        assert "git reflog still has them" in plain

    def test_reject_names_the_branch_it_returned_to_and_claudes(self) -> None:
        reply = ChangeDiscarded(CHANGE, ("a.py",), branch="main", left_branch="feature")
        plain, _ = parse_telegram_html(render(reply).html)

        assert "Back on branch main; Claude's branch feature is still there (git branch -D feature deletes it)" in plain

    def test_reject_says_where_claude_had_moved_head_and_where_it_is_back(self) -> None:
        reply = ChangeDiscarded(
            CHANGE,
            ("a.py",),
            branch="main",
            left_branch="<other>",
            moved_from="<other> at 1a2b3c4",
            back_at="main at 5d6e7f8",
        )
        plain, _ = parse_telegram_html(render(reply).html)

        assert (
            "Claude had moved HEAD to <other> at 1a2b3c4; it is back on main at 5d6e7f8, as the turn began "
            "(<other> was left where it is)." in plain
        )
        assert (
            "git branch -D" not in plain
        )  # the branch Claude switched to is the developer's: never suggest deleting it

    def test_approve_says_claudes_commits_were_squashed_into_it(self) -> None:
        commit = CommitInfo("f" * 40, "Apply changes from Claude", "A <a@b>", datetime(2026, 1, 2, tzinfo=UTC))
        one = render(ChangeCommitted(CHANGE, attrs.evolve(commit, squashed=("<abc123>",)), 2)).html
        two = render(ChangeCommitted(CHANGE, attrs.evolve(commit, squashed=("abc1234", "def5678")), 2)).html
        plain_one, _ = parse_telegram_html(one)
        plain_two, _ = parse_telegram_html(two)
        plain_none, _ = parse_telegram_html(render(ChangeCommitted(CHANGE, commit, 2)).html)

        assert (
            "Claude's 1 commit from this turn (<abc123>) is squashed into this one; git reflog still has them."
            in plain_one
        )
        assert "Claude's 2 commits from this turn (abc1234, def5678) are squashed into this one" in plain_two
        assert "squashed" not in plain_none

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

    @given(
        source=st.lists(
            st.sampled_from(
                [" ", "\n", "\xa0", "\u2003", "\u200b", "<b>", "</b>", "<a href='x'>", "<", ">", "<b", "&nbsp;",
                 "&#32;", "&#x20;", "&amp;", "&am", "p;", "&", "x", "é", "😀", "<i>&#32;</i>"]
            ),
            max_size=12,
        ).map("".join),
        limit=st.sampled_from([3, 20, 4096]),
    )  # fmt: skip
    @example(source="<b> </b>", limit=20)
    @example(source="<i>&#32;</i>\n", limit=20)
    @example(source=" &nbsp;x", limit=20)
    @example(source="<b>x</b>", limit=20)
    @example(source="<b", limit=20)
    def test_a_short_reply_is_kept_or_dropped_as_its_visible_text_says(self, source: str, limit: int) -> None:
        """
        The check for short replies (its first visible character, not all its visible text) keeps what shows
        something and drops what shows only blanks, tags and entities that decode to spaces included.
        """
        visible = html_to_text(source)
        assume(len(visible.encode("utf-16-le")) // 2 <= limit)

        assert split_html(source, limit) == ([source] if visible.strip() else [])

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
