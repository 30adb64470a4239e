"""The sandbox web chat's rendering of entities and replies."""

from __future__ import annotations

import html
from typing import Any

import aiohttp
import pytest

from tests.integration.sandbox_web.chat import VOICE, Bot, post_json
from voicecoder.simulators.demo_model import DEMO_PROMPTS
from voicecoder.simulators.web_chat import (
    render_entities,
)


class TestRenderEntities:
    def test_plain_text_is_escaped(self) -> None:
        """Without entities, the text is only escaped."""
        assert render_entities("a <b> & c", []) == "a &lt;b&gt; &amp; c"

    def test_nested_entities(self) -> None:
        """Nested entities give nested tags."""
        entities = [{"offset": 0, "length": 11, "type": "bold"}, {"offset": 6, "length": 5, "type": "italic"}]

        assert render_entities("hello world!", entities) == "<b>hello <i>world</i></b>!"

    def test_utf16_offsets_after_emoji(self) -> None:
        """Offsets count UTF-16 code units: an emoji outside the BMP is two."""
        text = "🤖 Claude: done"
        entities = [{"offset": 3, "length": 7, "type": "bold"}]

        assert render_entities(text, entities) == "🤖 <b>Claude:</b> done"

    def test_overlapping_entities_are_closed_and_reopened(self) -> None:
        """Crossing entities still give well-formed HTML."""
        entities = [{"offset": 0, "length": 4, "type": "bold"}, {"offset": 2, "length": 4, "type": "italic"}]

        assert render_entities("abcdef", entities) == "<b>ab<i>cd</i></b><i>ef</i>"

    def test_pre_with_language(self) -> None:
        """pre with a language becomes pre/code with a language class; a bad language is dropped."""
        good = render_entities("-a\n+b", [{"offset": 0, "length": 5, "type": "pre", "language": "diff"}])
        bad = render_entities("x", [{"offset": 0, "length": 1, "type": "pre", "language": 'x" onclick="y'}])

        assert good == '<pre><code class="language-diff">-a\n+b</code></pre>'
        assert bad == "<pre>x</pre>"

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            (
                'https://example.org/?a=1&b="2"',
                (
                    '<a href="https://example.org/?a=1&amp;b=&quot;2&quot;" target="_blank" rel="noopener noreferrer">'
                    "go</a>"
                ),
            ),
            ("javascript:alert(1)", "go"),
            ("data:text/html,x", "go"),
        ],
    )
    def test_links_only_to_safe_schemes(self, url: str, expected: str) -> None:
        """text_link keeps http(s)/tg/mailto targets, escaped; anything else is plain text."""
        assert expected == render_entities("go", [{"offset": 0, "length": 2, "type": "text_link", "url": url}])

    def test_spoiler_quote_and_unknown_kinds(self) -> None:
        """Spoilers and quotes have their tags; mentions and unknown kinds are plain text."""
        text = "secret quote @ada"
        entities = [
            {"offset": 0, "length": 6, "type": "spoiler"},
            {"offset": 7, "length": 5, "type": "expandable_blockquote"},
            {"offset": 13, "length": 4, "type": "mention"},
            {"offset": 0, "length": 3, "type": "<script>"},
        ]

        expected = '<span class="tg-spoiler">secret</span> <blockquote>quote</blockquote> @ada'
        assert expected == render_entities(text, entities)

    def test_entities_out_of_range_are_clipped_or_ignored(self) -> None:
        """Garbage offsets do not raise or produce unbalanced tags."""
        entities: list[dict[str, Any]] = [
            {"offset": 2, "length": 100, "type": "bold"},
            {"offset": 50, "length": 1, "type": "italic"},
            {"offset": "x", "length": 1, "type": "code"},
            {"type": "code"},
        ]

        assert render_entities("abc", entities) == "ab<b>c</b>"


class TestReplies:
    async def test_a_text_reply_carries_the_replied_message(
        self, http: aiohttp.ClientSession, base: str, bot: Bot
    ) -> None:
        """Replying to a bot message sends reply_to_message with its text and keyboard; the page quotes it."""
        keyboard = {"inline_keyboard": [[{"text": "✅ Allow", "callback_data": "y:0123abcd:"}]]}
        sent = await bot.say("💻 <b>Claude wants to run a command</b>", reply_markup=keyboard)
        await bot.updates()

        status, _ = await post_json(http, base + "api/send", {"text": "no, not now", "reply_to": sent["message_id"]})
        (update,) = await bot.updates()
        async with http.get(base + "api/conversation") as resp:
            mine = [m for m in (await resp.json())["messages"] if m["from"] == "me"]

        assert status == 200
        replied = update["message"]["reply_to_message"]
        assert (replied["message_id"], replied["text"]) == (sent["message_id"], "💻 Claude wants to run a command")
        assert replied["reply_markup"] == keyboard
        assert mine[-1]["reply_to"] == {"id": sent["message_id"], "text": "💻 Claude wants to run a command"}

    async def test_a_voice_reply(self, http: aiohttp.ClientSession, base: str, bot: Bot) -> None:
        """A recorded voice note can reply too (the reply_to form field)."""
        sent = await bot.say("question")
        await bot.updates()
        form = aiohttp.FormData()
        form.add_field("voice", VOICE.read_bytes(), filename="voice.ogg", content_type="audio/ogg")
        form.add_field("reply_to", str(sent["message_id"]))

        async with http.post(base + "api/voice", data=form) as resp:
            assert resp.status == 200
        (update,) = await bot.updates()

        assert update["message"]["reply_to_message"]["message_id"] == sent["message_id"]

    @pytest.mark.parametrize(("reply_to", "status"), [(999999, 404), ("7", 400), (True, 400)])
    async def test_bad_reply_targets_are_refused(
        self, http: aiohttp.ClientSession, base: str, bot: Bot, reply_to: Any, status: int
    ) -> None:
        """A reply to a message that does not exist is 404, a malformed id 400; nothing is sent."""
        got, _ = await post_json(http, base + "api/send", {"text": "x", "reply_to": reply_to})

        assert got == status
        assert await bot.updates() == []

    async def test_the_page_offers_the_demo_prompts(self, http: aiohttp.ClientSession, base: str) -> None:
        """Every request the demo model understands is a tappable chip on the page."""
        async with http.get(base) as resp:
            page = html.unescape(await resp.text())

        assert [p for p in DEMO_PROMPTS if f'data-command="{p}"' not in page] == []
