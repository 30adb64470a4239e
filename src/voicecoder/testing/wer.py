"""
Word error rate with the tolerant normalisation of the voice fixtures (``transcripts.json``).

Normalisation: lowercase; a ``.`` between word characters becomes `` dot `` (``test.txt`` counts as
"test dot txt"); whole numbers 0-12 and 20 become words; other punctuation is removed (apostrophes
dropped); split on whitespace. ``strict=True`` skips the dot and number mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

__all__ = ["corpus_wer", "corpus_wer_with", "normalise", "wer", "word_errors"]

_NUMBERS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
    "11": "eleven",
    "12": "twelve",
    "20": "twenty",
}
_DOT_BETWEEN_WORDS = re.compile(r"(?<=\w)\.(?=\w)")
_APOSTROPHES = re.compile(r"['’]")
_PUNCTUATION = re.compile(r"[^\w\s]")


def normalise(text: str, *, strict: bool = False) -> list[str]:
    """The words of *text* after the fixture normalisation."""
    text = text.lower()
    if not strict:
        text = _DOT_BETWEEN_WORDS.sub(" dot ", text)
    text = _APOSTROPHES.sub("", text)
    text = _PUNCTUATION.sub(" ", text).replace("_", " ")
    words = text.split()
    if not strict:
        words = [_NUMBERS.get(w, w) for w in words]
    return words


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (ref_word != hyp_word),
                )
            )
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str, *, strict: bool = False) -> float:
    """
    Word error rate of *hypothesis* against *reference*.

    An empty reference gives 0.0 for an empty hypothesis and 1.0 otherwise.
    """
    return corpus_wer([(reference, hypothesis)], strict=strict)


def corpus_wer(pairs: Iterable[tuple[str, str]], *, strict: bool = False) -> float:
    """Sum of word errors over the sum of reference words for (reference, hypothesis) *pairs*."""
    return corpus_wer_with(pairs, lambda text: normalise(text, strict=strict))


def corpus_wer_with(pairs: Iterable[tuple[str, str]], words_of: Callable[[str], Sequence[str]]) -> float:
    """`corpus_wer` with another normalisation: *words_of* turns a text into the words that are compared."""
    errors = 0
    words = 0
    for reference, hypothesis in pairs:
        ref = words_of(reference)
        errors += word_errors(ref, words_of(hypothesis))
        words += len(ref)
    if words == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / words
