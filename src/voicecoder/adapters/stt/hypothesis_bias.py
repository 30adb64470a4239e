"""
Contextual biasing of Whisper's finished beam hypotheses toward the coding vocabulary and the workspace's names.

Beam search ends with several finished hypotheses (CTranslate2 returns up to the beam size of them for almost no
extra work). Each gets a bonus per occurrence of a hint term, capped, on top of the model's length-normalised
log-probability, and the best total wins: the model still decides between ordinary words, and a term wins only
when the model found it nearly as likely ("git log" over "good log"). This is shallow contextual biasing done
after the search, so the model and its search are untouched.

What it must not do: turn a sentence whose terms the model already heard into a different one. A hypothesis
gets a bonus only for terms it contains, so one that has no term is never raised; and the cap bounds how far
below the model's first choice a hypothesis can be and still win, so ordinary English the model is sure of stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import attrs

__all__ = ["HypothesisBias", "words_of"]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> tuple[str, ...]:
    """*text* as lower-case words: CamelCase, dots, underscores and other separators split it."""
    return tuple(_WORD.findall(_CAMEL.sub(" ", text).lower()))


@attrs.frozen
class HypothesisBias:
    """
    The terms a hypothesis earns `bonus` for (each occurrence, at most `cap` in all), as word sequences.

    Build it with `of`. Bonus and cap are in the units of CTranslate2's score: average log-probability per token.
    """

    terms: frozenset[tuple[str, ...]]
    bonus: float
    cap: float
    #: The longest term in words (matching looks no further).
    longest: int = attrs.field(init=False)

    @longest.default
    def _longest(self) -> int:
        return max((len(t) for t in self.terms), default=0)

    @classmethod
    def of(cls, terms: Iterable[str], *, bonus: float, cap: float) -> HypothesisBias:
        """The bias toward *terms* (as the hints spell them: ``parse config``, ``README``, ``UserRepository``)."""
        return cls(frozenset(w for w in (words_of(t) for t in terms) if w), bonus, cap)

    @property
    def active(self) -> bool:
        """Whether it can change a choice at all (some term, a positive bonus and cap)."""
        return bool(self.terms) and self.bonus > 0 and self.cap > 0

    def matches(self, text: str) -> int:
        """How many term occurrences *text* holds, longest first and without overlap."""
        words = words_of(text)
        found = index = 0
        while index < len(words):
            for size in range(min(self.longest, len(words) - index), 0, -1):
                if words[index : index + size] in self.terms:
                    found += 1
                    index += size
                    break
            else:
                index += 1
        return found

    def score(self, text: str, model_score: float) -> float:
        """*model_score* plus the capped bonus for *text*'s terms."""
        return model_score + min(self.cap, self.bonus * self.matches(text))

    def choose(self, hypotheses: Sequence[tuple[str, float]]) -> int:
        """
        The index of the hypothesis to keep among (text, model score) pairs in the model's order.

        A tie keeps the earlier one (the model's own order), so an inactive bias always keeps the first.
        """
        if not self.active or len(hypotheses) < 2:
            return 0
        totals = [self.score(text, score) for text, score in hypotheses]
        return max(range(len(totals)), key=lambda i: (totals[i], -i))
