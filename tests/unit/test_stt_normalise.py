"""The STT benchmark's WER normalisation: formatting is not an error, a different word still is."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.stt_normalise import corpus_wer, normalise


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        ("squash the last three commits", "Squash the last 3 commits."),
        ("bump the version to twenty one", "Bump the version to 21"),
        ("revert the second commit", "Revert the 2nd commit"),
        ("undo the twenty first change", "Undo the 21st change"),
        ("set coverage to one hundred percent", "Set coverage to 100%"),
        ("do not push", "Don't push."),
        ("it is broken", "It's broken"),
        ("we will not merge", "We won't merge"),
        ("initialize the colour setting", "Initialise the color setting"),
        ("ok run the tests", "Okay, run the tests"),
        ("create a pull request", "Create a pull-request"),
        ("checkout feature login", "Checkout feature/login"),
        ("open main dot py", "Open main.py"),
        ("rename parse config", "rename parse_config"),
        ("open the user repository class", "Open the UserRepository class"),
        ("call parse http header", "call parseHTTPHeader"),
        ("show the git log", "Um, show the git log [typing]"),
    ],
)
def test_formatting_is_not_an_error(reference: str, hypothesis: str) -> None:
    """Pairs that differ only in conventions every WER study normalises away score 0."""
    assert normalise(reference) == normalise(hypothesis)
    assert corpus_wer([(reference, hypothesis)]) == 0.0


@pytest.mark.parametrize(
    ("reference", "hypothesis", "errors"),
    [
        ("show the git log", "show the good log", 1),
        ("add a readme section", "add a read me section", 2),  # compounds are not merged
        ("run three tests", "run 4 tests", 1),
        ("promise the otherwise", "promize the otherwize", 2),  # only listed -ise stems change
        ("fix the typo", "", 3),
        ("update the readme", "Update the ReadMe", 2),  # a CamelCase split is words, like "read me"
        ("run pytest", "run PyTest", 2),
        ("open user repository", "open UserRepo", 1),
    ],
)
def test_real_differences_still_count(reference: str, hypothesis: str, errors: int) -> None:
    """A different word, a split compound or a missing word is still counted, once per word."""
    assert corpus_wer([(reference, hypothesis)]) == pytest.approx(errors / len(reference.split()))


def test_corpus_wer_sums_words_not_clips() -> None:
    """Corpus WER is all errors over all reference words, not a mean of per-clip rates."""
    pairs = [("one two three four", "one two three four"), ("git log", "good log")]
    assert corpus_wer(pairs) == pytest.approx(1 / 6)
    assert corpus_wer([]) == 0.0
