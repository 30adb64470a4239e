"""
The text normalisation `bench/stt.py` scores WER with: Whisper's English-normaliser conventions, written here.

WER studies (the Whisper paper's evaluation, the Open ASR Leaderboard, which reuses it) do not count
formatting that a listener would not call a mistake. Before words are compared, reference and hypothesis
both go through the same steps, whatever engine produced the hypothesis:

* case: everything lower-case;
* bracketed asides (``[music]``, ``(laughs)``) and hesitations (uh, um, hmm, mhm) dropped;
* contractions spelled out: "won't" → "will not", "can't" → "can not", "let's" → "let us", "-n't" → " not",
  "'re" → " are", "'ll" → " will", "'ve" → " have", "'m" → " am", "'d" → " would", "it's"/"that's"/… → "… is";
* numbers written the same way: digits become words ("3" → "three", "21" → "twenty one", "2nd" → "second"),
  "%" → "percent" (Whisper maps the other way, words to digits; the two conventions make the same pairs equal);
* spelling: British forms become American ("colour" → "color", "initialise" → "initialize",
  "behaviour" → "behavior", "cancelled" → "canceled", a hand-written list of common words), and "okay" → "ok";
* symbols: a hyphen, slash or underscore separates words ("pull-request" → "pull request"), other
  punctuation is dropped, except…
* …one rule of this benchmark's own, because its references are what was *said*: a "." between two word
  characters is the spoken "dot" ("main.py" ↔ "main dot py"), as in the project's fixture WER
  (`voicecoder.testing.wer`);
* CamelCase splits into words as an underscore does: a capital after a lower-case letter starts a word
  ("UserRepository" → "user repository", "parseHTTPHeader" → "parse http header"; "README" and "pytest" stay
  one word). Whisper writes a name its prompt spells in CamelCase the workspace's way for the words the
  reference says, which is formatting like "parse_config" for "parse config" (added in ADR 0018, follow-up 5).

Not normalised (they are real recognition differences here): compounds ("read me" vs "readme",
"set up" vs "setup"), homophones, and anything code-specific beyond the "dot".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from voicecoder.testing.wer import corpus_wer_with

__all__ = ["corpus_wer", "normalise"]

_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_FILLERS = frozenset({"uh", "um", "umm", "hmm", "hm", "mm", "mmm", "mhm", "er", "erm", "ah"})
_CONTRACTIONS = (
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\blet's\b"), "let us"),
    (re.compile(r"\bain't\b"), "is not"),
    (re.compile(r"\bgonna\b"), "going to"),
    (re.compile(r"\bwanna\b"), "want to"),
    (re.compile(r"\bgotta\b"), "got to"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'d\b"), " would"),
    (re.compile(r"\b(it|that|there|what|where|who|here|he|she)'s\b"), r"\1 is"),
)
#: British → American spellings (whole words), hand-written: the common ones and those of software talk.
_AMERICAN = {
    "colour": "color",
    "colours": "colors",
    "behaviour": "behavior",
    "behaviours": "behaviors",
    "favourite": "favorite",
    "favourites": "favorites",
    "honour": "honor",
    "labour": "labor",
    "neighbour": "neighbor",
    "centre": "center",
    "centred": "centered",
    "metre": "meter",
    "litre": "liter",
    "licence": "license",
    "defence": "defense",
    "offence": "offense",
    "catalogue": "catalog",
    "dialogue": "dialog",
    "analogue": "analog",
    "grey": "gray",
    "programme": "program",
    "cheque": "check",
    "cancelled": "canceled",
    "cancelling": "canceling",
    "labelled": "labeled",
    "labelling": "labeling",
    "modelled": "modeled",
    "modelling": "modeling",
    "travelled": "traveled",
    "travelling": "traveling",
    "signalled": "signaled",
    "signalling": "signaling",
    "analyse": "analyze",
    "analysed": "analyzed",
    "analyses": "analyzes",
    "analysing": "analyzing",
    "okay": "ok",
}
#: Stems whose British -ise/-isation forms become -ize/-ization (words like "promise" or "otherwise" are not here).
_ISE_STEMS = (
    "initial",
    "normal",
    "serial",
    "deserial",
    "optim",
    "organ",
    "real",
    "recogn",
    "author",
    "custom",
    "minim",
    "maxim",
    "prior",
    "summar",
    "synchron",
    "token",
    "util",
    "visual",
    "standard",
    "categor",
    "memo",
    "parameter",
    "capital",
    "local",
    "special",
    "general",
    "modular",
    "sanit",
    "emphas",
    "apolog",
)
_ISE = re.compile(
    r"\b(" + "|".join(_ISE_STEMS) + r")is(e|es|ed|ing|er|ers|ation|ations)\b",
)
_UNITS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_NUMBER = re.compile(r"\b(\d{1,6})(st|nd|rd|th)?\b")
_DOT_BETWEEN_WORDS = re.compile(r"(?<=\w)\.(?=\w)")
_SEPARATORS = re.compile(r"[-‐‑–—/_]")
_APOSTROPHES = re.compile(r"['’`]")
_SYMBOLS = re.compile(r"[^\w\s]")
#: Between a lower-case letter and a capital, or before the last capital of a run followed by lower case.
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _say(number: int) -> str:
    """*number* (0-999,999) as it is said: 21 → "twenty one", 305 → "three hundred five"."""
    if number < 20:
        return _UNITS[number]
    if number < 100:
        tens, unit = divmod(number, 10)
        return _TENS[tens] + (f" {_UNITS[unit]}" if unit else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_UNITS[hundreds]} hundred" + (f" {_say(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    return f"{_say(thousands)} thousand" + (f" {_say(rest)}" if rest else "")


def _ordinal(words: str) -> str:
    """ "twenty one" → "twenty first", "four" → "fourth", "twenty" → "twentieth"."""
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _number_words(match: re.Match[str]) -> str:
    words = _say(int(match.group(1)))
    return f" {_ordinal(words) if match.group(2) else words} "


def normalise(text: str) -> list[str]:
    """The words of *text* after the conventions above."""
    text = _CAMEL_BOUNDARY.sub(" ", text).lower().replace("’", "'")
    text = _BRACKETED.sub(" ", text)
    for pattern, spelled in _CONTRACTIONS:
        text = pattern.sub(spelled, text)
    text = _DOT_BETWEEN_WORDS.sub(" dot ", text)
    text = text.replace("%", " percent ")
    text = _NUMBER.sub(_number_words, text)
    text = _SEPARATORS.sub(" ", text)
    text = _APOSTROPHES.sub("", text)
    text = _SYMBOLS.sub(" ", text)
    text = _ISE.sub(lambda m: f"{m.group(1)}iz{m.group(2)}", text)
    words = [_AMERICAN.get(word, word) for word in text.split()]
    return [word for word in words if word not in _FILLERS]


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Sum of word errors over the sum of reference words, both sides normalised by `normalise`."""
    return corpus_wer_with(pairs, normalise)
