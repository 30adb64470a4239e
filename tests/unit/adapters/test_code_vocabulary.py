from __future__ import annotations

from voicecoder.adapters.stt.code_vocabulary import (
    CODING_CONTEXT,
    CODING_VOCABULARY,
    apply_spoken_forms,
    recognizer_terms,
    whisper_prompt,
)
from voicecoder.domain.model import TranscriptionHints

NAMES = ("main.py", "test_api.py", "README.md", ".gitignore", "parse_config", "OrderService", "utils.py")


class TestRecognizerTerms:
    def test_coding_words_then_spoken_names(self) -> None:
        """The coding vocabulary comes first, then the workspace's names as they are said."""
        terms = recognizer_terms(NAMES)

        assert terms[: len(CODING_VOCABULARY)] == CODING_VOCABULARY
        assert terms[len(CODING_VOCABULARY) :] == (
            "main",
            "test api",
            ".gitignore",
            "parse config",
            "OrderService",
            "utils",
        )


class TestSpokenForms:
    def test_file_said_with_dot(self) -> None:
        """ "main dot py" becomes main.py when the workspace has main.py."""
        assert apply_spoken_forms("rename count in main dot py", NAMES) == "rename count in main.py"

    def test_unknown_file_left_alone(self) -> None:
        """A file the workspace does not have keeps its spoken form."""
        assert apply_spoken_forms("open foo dot py", NAMES) == "open foo dot py"

    def test_multi_word_names(self) -> None:
        """Identifiers and multi-word file names are written as the workspace spells them."""
        text = "fix test api dot py and rename parse config in order service, then add build to dot gitignore"

        assert apply_spoken_forms(text, NAMES) == (
            "fix test_api.py and rename parse_config in OrderService, then add build to .gitignore"
        )

    def test_repeated_extension_collapsed(self) -> None:
        """Whisper's "api.py.py" for a file the workspace has is that file; an unknown one is left alone."""
        names = (*NAMES, "api.py")

        assert apply_spoken_forms("Rename data in api.py.py", names) == "Rename data in api.py"
        assert apply_spoken_forms("Rename data in api.py.py.py.", names) == "Rename data in api.py."
        assert apply_spoken_forms("open other.py.py", names) == "open other.py.py"
        assert apply_spoken_forms("open main.py.txt", names) == "open main.py.txt"

    def test_misheard_extension_of_a_workspace_file(self) -> None:
        """A workspace file's stem heard with a near-miss of its extension is that file."""
        names = (*NAMES, "api.py", "requirements.txt")

        assert apply_spoken_forms("Rename data to payload in API.poi.", names) == "Rename data to payload in api.py."
        assert apply_spoken_forms("update requirements.dxt with flask", names) == "update requirements.txt with flask"
        assert apply_spoken_forms("lint utils dot pie", names) == "lint utils.py"

    def test_misheard_extension_leaves_real_names_alone(self) -> None:
        """New names, real extensions, ambiguous stems and ordinary English keep what was heard."""
        names = (*NAMES, "api.py", "api.md", "config.json", "notes.txt")

        # A real extension is another file the user may mean (or is creating), not a mishearing.
        assert apply_spoken_forms("create config.js and main.pyi", names) == "create config.js and main.pyi"
        assert apply_spoken_forms("rename main.py to main.rs", names) == "rename main.py to main.rs"
        # Two files share the stem: which one was meant is not the post-pass's to decide.
        assert apply_spoken_forms("open api.poi", names) == "open api.poi"
        # A stem the workspace has no file for is a new name.
        assert apply_spoken_forms("create billing.poi", names) == "create billing.poi"
        # Far from the extension, part of a longer dotted name, or ordinary words and numbers.
        assert apply_spoken_forms("the notes dot point is", names) == "the notes dot point is"
        assert apply_spoken_forms("open main.poi.txt", names) == "open main.poi.txt"
        assert apply_spoken_forms("e.g. version 1.2 of the main idea", names) == "e.g. version 1.2 of the main idea"
        assert apply_spoken_forms("Take notes. Then stop.", names) == "Take notes. Then stop."

    def test_read_me_after_a_determiner(self) -> None:
        """ "the read me" is the README when the workspace has one; "read me" as ordinary English is not."""
        assert apply_spoken_forms("Fix the typo in the read me.", NAMES) == "Fix the typo in the README."
        assert apply_spoken_forms("update our read-me file", NAMES) == "update our README file"
        assert apply_spoken_forms("read me the git log", NAMES) == "read me the git log"
        assert apply_spoken_forms("Can you read me the diff?", NAMES) == "Can you read me the diff?"
        assert apply_spoken_forms("the ready message", NAMES) == "the ready message"
        assert apply_spoken_forms("Fix the typo in the read me.", ("main.py",)) == "Fix the typo in the read me."

    def test_nothing_known_nothing_changed(self) -> None:
        """Without workspace names the text is returned unchanged."""
        assert apply_spoken_forms("parse config in main dot py", ()) == "parse config in main dot py"


class TestPublicSurface:
    def test_stt_names_reexported(self) -> None:
        """The STT adapters and the intake checks are importable from voicecoder.adapters."""
        from voicecoder import adapters  # noqa: PLC0415
        from voicecoder.adapters import stt  # noqa: PLC0415

        assert adapters.OpenAITranscriber is stt.OpenAITranscriber
        assert adapters.check_audio is stt.check_audio
        transcribers = {n for n in stt.__all__ if n.endswith("Transcriber")}
        assert transcribers <= set(adapters.__all__)
        assert all(getattr(adapters, n) is getattr(stt, n) for n in transcribers)


class TestCodeAwareTranscriber:
    async def test_hints_spoken_and_text_spelled(self) -> None:
        """The inner engine gets coding words and spoken names; its text comes back spelled as the workspace does."""
        from voicecoder.adapters.stt.code_aware import CodeAwareTranscriber  # noqa: PLC0415
        from voicecoder.domain.model import TranscriptionHints  # noqa: PLC0415
        from voicecoder.testing.fakes import FakeTranscriber  # noqa: PLC0415
        from voicecoder.testing.voice_clips import voice_clip  # noqa: PLC0415

        clip = voice_clip("08_rename_variable.ogg")
        inner = FakeTranscriber()
        inner.learn(clip.read(), "rename the variable count to total in main dot py")

        result = await CodeAwareTranscriber(inner).transcribe(
            clip.audio(), TranscriptionHints(keyterms=("main.py", "parse_config"), language="en")
        )

        sent = inner.calls[-1][1]
        assert sent is not None
        assert sent.keyterms == (*CODING_VOCABULARY, "main", "parse config")
        assert sent.language == "en"
        assert sent.context == CODING_CONTEXT
        assert result.text == "rename the variable count to total in main.py"


class TestWhisperPrompt:
    def test_keyterms_only(self) -> None:
        """Without a context the prompt is the keyterms, as a keyterm API would get them."""
        assert whisper_prompt(TranscriptionHints(keyterms=("main.py", "pytest"))) == "main.py, pytest."

    def test_context_then_unsaid_names(self) -> None:
        """With a context, the names it does not already say follow it."""
        hints = TranscriptionHints(keyterms=("git", "parse config", "utils"), context="Show the git log.")

        assert whisper_prompt(hints) == "Show the git log. In this project: parse config, utils."

    def test_nothing_to_say(self) -> None:
        """No hints, no prompt: the engine hears the audio alone."""
        assert whisper_prompt(None) is None
        assert whisper_prompt(TranscriptionHints(language="en")) is None

    async def test_no_context_for_other_languages(self) -> None:
        """The English sample sentences are not given for a note in another language."""
        from voicecoder.adapters.stt.code_aware import CodeAwareTranscriber  # noqa: PLC0415
        from voicecoder.testing.fakes import FakeTranscriber  # noqa: PLC0415
        from voicecoder.testing.voice_clips import voice_clip  # noqa: PLC0415

        clip = voice_clip("es_run_tests.ogg")
        inner = FakeTranscriber()
        inner.learn(clip.read(), clip.text)

        await CodeAwareTranscriber(inner).transcribe(clip.audio(), TranscriptionHints(language="es"))

        sent = inner.calls[-1][1]
        assert sent is not None
        assert sent.context is None
