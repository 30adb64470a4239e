from __future__ import annotations

import pytest

from voicecoder.adapters.telegram.messenger import html_to_text, render
from voicecoder.domain.replies import SpeechCheck, StalePrompt
from voicecoder.simulators.bot_api import parse_telegram_html


class TestStalePromptRendering:
    @pytest.mark.parametrize(
        ("reply", "shown"),
        [
            (
                StalePrompt(age_s=3 * 3600 + 120, max_age_s=3600, prompt="fix <main> & add tests"),
                "⏰ Not run: fix <main> & add tests\nIt reached me 3h 02m after you sent it (the limit is 1h 00m)",
            ),
            (
                StalePrompt(age_s=7200, max_age_s=1800, voice_duration_s=0.4),
                "⏰ Not run: your voice note (<1s)\nIt reached me 2h 00m after you sent it (the limit is 30m 00s)",
            ),
            (StalePrompt(age_s=7200, max_age_s=1800), "⏰ Not run: your voice note\n"),
        ],
    )
    def test_valid_telegram_html_that_names_the_fix(self, reply: StalePrompt, shown: str) -> None:
        """The notice is valid Telegram HTML (the prompt escaped), says how late it was and to send it again."""
        rendered = render(reply)

        text, _entities = parse_telegram_html(rendered.html)
        assert text == html_to_text(rendered.html)
        assert text.startswith(shown)
        assert text.endswith("Send it again to run it now.")
        assert rendered.keyboard is None


class TestSpeechCheckRendering:
    @pytest.mark.parametrize(
        ("reply", "shown"),
        [
            (
                SpeechCheck(text="run <the> tests & commit", audio_s=30.0, seconds=3.14),
                "🎤 Speech check: run <the> tests & commit\n30s of speech heard in 3.1 s",
            ),
            (SpeechCheck(text="", audio_s=None, seconds=0.2), "🎤 Speech check: (nothing heard)\nThe voice note heard"),
        ],
    )
    def test_valid_telegram_html_with_the_figure(self, reply: SpeechCheck, shown: str) -> None:
        """The speech check reply is valid Telegram HTML, gives the timing and the target, and says nothing ran."""
        rendered = render(reply)

        text, _entities = parse_telegram_html(rendered.html)
        assert text.startswith(shown)
        assert "a 30 s note should take under 10 s" in text
        assert text.endswith("Nothing was run.")
