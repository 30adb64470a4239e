"""
The sized encoder window and its guard: the window a note gets, what the guard accepts and what it refuses.

Real decodes through both are in test_local_whisper_transcriber.py (the Whisper modules share one xdist worker).
"""

from __future__ import annotations

import pytest

from voicecoder.adapters.stt.speech_spans import RATE
from voicecoder.adapters.stt.whisper_window import (
    DEFAULT_WINDOWS,
    FULL_FRAMES,
    FULL_WINDOWS,
    LEAD_FRAMES,
    MARGIN_FRAMES,
    SHORT_WINDOWS,
    WindowDecode,
    encoder_frames,
    encoder_windows_named,
    implausible,
    lead_frames,
    window_speech_s,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


LONG_REQUEST = (
    "Open the server module, find the handler that parses the request headers, add a check for an "
    "empty authorization value, return a clear error when it is missing, then write two tests for it: "
    "one with the header set and one without, and run the whole suite with pytest afterwards please."
)


def heard(text: str, *, logprob: float = -0.3, no_speech: float = 0.02) -> WindowDecode:
    return WindowDecode(text=text, avg_logprob=logprob, no_speech_prob=no_speech, language="en", frames=2000)


class TestEncoderWindowsNamed:
    def test_policies(self) -> None:
        assert encoder_windows_named("full") == FULL_WINDOWS == (FULL_FRAMES,)
        assert encoder_windows_named("sized") == SHORT_WINDOWS == DEFAULT_WINDOWS

    def test_unknown_policy_names_the_choices(self) -> None:
        with pytest.raises(ValueError, match="use one of: full, sized"):
            encoder_windows_named("short")


class TestEncoderFrames:
    def test_short_note_gets_the_shortest_window(self) -> None:
        assert encoder_frames(3 * RATE, SHORT_WINDOWS) == SHORT_WINDOWS[0] < FULL_FRAMES

    def test_margin_counts(self) -> None:
        """19.5 s of speech plus the 1 s margin no longer fits 20 s."""
        assert encoder_frames(19 * RATE, SHORT_WINDOWS) == 2000
        assert encoder_frames(int(19.5 * RATE), SHORT_WINDOWS) == FULL_FRAMES

    def test_full_window_is_the_ceiling(self) -> None:
        assert encoder_frames(30 * RATE, SHORT_WINDOWS) == FULL_FRAMES
        assert encoder_frames(45 * RATE, SHORT_WINDOWS) == FULL_FRAMES

    def test_only_given_windows(self) -> None:
        assert encoder_frames(2 * RATE, FULL_WINDOWS) == FULL_FRAMES
        assert encoder_frames(2 * RATE, (1500, 1000, FULL_FRAMES)) == 1000


class TestWindowSpeech:
    def test_full_windows_hold_30_s(self) -> None:
        assert window_speech_s(FULL_WINDOWS) == 30.0

    @pytest.mark.parametrize("windows", [SHORT_WINDOWS, (1000, 1500, 2000, FULL_FRAMES)])
    def test_sized_windows_hold_what_the_largest_short_one_holds(self, windows: tuple[int, ...]) -> None:
        """19 s: with its 1 s margin it fits the 20 s window, so a long note never needs the 30 s one."""
        limit = window_speech_s(windows)
        assert limit == 19.0
        assert encoder_frames(int(limit * RATE), windows) == 2000
        assert encoder_frames(int(limit * RATE) + 160, windows) == FULL_FRAMES


class TestLeadFrames:
    def test_a_short_note_gets_the_whole_lead(self) -> None:
        assert lead_frames(4 * RATE, 2000) == LEAD_FRAMES == 200
        assert lead_frames(4 * RATE, FULL_FRAMES) == LEAD_FRAMES

    def test_the_lead_only_takes_the_room_the_speech_and_margin_leave(self) -> None:
        """18.5 s in 20 s: 0.5 s of room after the 1 s margin; 19 s: none. The speech is never cut."""
        assert lead_frames(int(18.5 * RATE), 2000) == 2000 - 1850 - MARGIN_FRAMES == 50
        assert lead_frames(19 * RATE, 2000) == 0
        assert lead_frames(30 * RATE, FULL_FRAMES) == 0

    @pytest.mark.parametrize("seconds", [0.3, 2, 10, 17.5, 18.9, 19, 19.5, 25, 28.5, 29, 29.5])
    def test_a_lead_never_pushes_speech_or_margin_out_of_the_window(self, seconds: float) -> None:
        samples = int(seconds * RATE)
        frames = encoder_frames(samples, SHORT_WINDOWS)
        lead = lead_frames(samples, frames)
        assert lead == 0 or lead + samples // 160 + MARGIN_FRAMES <= frames


class TestGuard:
    @pytest.mark.parametrize(
        ("text", "audio_s"),
        [
            ("Yes.", 0.9),
            ("Show me the git log.", 1.4),
            ("Rename the method load_data to read_records.", 3.5),
            ("Run the test, and fix any failures.", 2.9),
            (LONG_REQUEST, 30.0),
            ("ejecuta las nuevas y corrige los errores.", 3.1),
        ],
    )
    def test_ordinary_decodes_pass(self, text: str, audio_s: float) -> None:
        assert implausible(heard(text), audio_s) is None

    def test_hesitant_but_confident_speech_passes(self) -> None:
        """A high no-speech probability alone is not Whisper's verdict: the words must be improbable too."""
        assert implausible(heard("Re name the variable data", no_speech=0.8, logprob=-0.5), 2.5) is None

    def test_nothing_heard(self) -> None:
        assert implausible(heard(""), 3.0) == "no words"
        assert implausible(heard(" ... "), 3.0) == "no words"

    def test_whisper_says_no_speech(self) -> None:
        assert implausible(heard("You", no_speech=0.9, logprob=-1.4), 2.0) == "no speech"

    def test_one_word_for_a_long_note(self) -> None:
        assert implausible(heard("Show"), 6.0) == "too few words"

    def test_more_words_than_anyone_speaks(self) -> None:
        prompt_recited = " ".join(f"word{i}" for i in range(30))
        assert implausible(heard(prompt_recited), 3.0) == "too many words"

    def test_repetition_loop(self) -> None:
        loop = "log in, " * 12
        assert implausible(heard(loop), 12.0) == "repetition"
