"""
N-best rescoring toward the hints' keyterms (`hypothesis_bias`): what it chooses, and what it must leave alone.

The hypotheses here are written out as Whisper's beam returns them (text, length-normalised log-probability);
real decodes through it are in test_local_whisper_transcriber.py and measured by bench/stt_ab.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecoder.adapters.stt.code_vocabulary import recognizer_terms
from voicecoder.adapters.stt.hypothesis_bias import HypothesisBias, words_of
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber

WORKSPACE = ("main.py", "api.py", "worker.py", "parse_config", "UserRepository", "tests/test_api.py")
BIAS = HypothesisBias.of(recognizer_terms(WORKSPACE), bonus=0.05, cap=0.1)


def test_words_split_as_names_are_spoken() -> None:
    assert words_of("Add login to UserRepository in worker.py, then parse_config!") == (
        "add",
        "login",
        "to",
        "user",
        "repository",
        "in",
        "worker",
        "py",
        "then",
        "parse",
        "config",
    )


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Show me the git log", 1),
        ("Show me the get log", 0),
        ("Rename parse config in main.py", 2),  # "parse config" once, not "parse" and "config"
        ("Add a docstring to the UserRepository class", 2),
        ("Add a doc string to the user repository class", 1),
        ("Commit, commit, commit", 3),
        ("Buy some milk on the way home", 0),
    ],
)
def test_term_occurrences(text: str, found: int) -> None:
    assert BIAS.matches(text) == found


def test_a_term_the_model_found_nearly_as_likely_wins() -> None:
    beam = [("Show me the good log.", -0.30), ("Show me the git log.", -0.34)]

    assert BIAS.choose(beam) == 1


def test_a_plain_sentence_without_terms_is_kept() -> None:
    """Ordinary English, no hypothesis holds a term: Whisper's first choice stands, whatever the scores."""
    beam = [
        ("I'll get the milk on the way home.", -0.25),
        ("I'll get the milk on the way home", -0.26),
        ("I will get the milk on the way home.", -0.31),
        ("I'll get a milk on the way home.", -0.40),
    ]

    assert BIAS.choose(beam) == 0


def test_a_sure_plain_sentence_is_not_pushed_onto_a_term() -> None:
    """The best hypothesis has no term, another has one, but the model is surer than the cap allows to overturn."""
    beam = [("Get the milk from the store.", -0.18), ("Git the milk from the store.", -0.45)]

    assert BIAS.choose(beam) == 0


def test_the_cap_bounds_a_string_of_terms() -> None:
    """Many terms cannot buy a hypothesis the model found far less likely: the bonus stops at the cap."""
    beam = [("Merge the branch.", -0.20), ("Merge git commit branch, rebase, stash, pip, npm.", -0.45)]

    assert BIAS.score(beam[1][0], beam[1][1]) == pytest.approx(-0.35)
    assert BIAS.choose(beam) == 0


def test_a_hypothesis_with_the_terms_already_first_stays_first() -> None:
    beam = [("Show me the git log for api.py", -0.20), ("Show me the good log for api.py", -0.21)]

    assert BIAS.choose(beam) == 0


def test_inactive_bias_keeps_whispers_choice() -> None:
    beam = [("Show me the good log.", -0.30), ("Show me the git log.", -0.31)]

    for bias in (
        HypothesisBias.of(recognizer_terms(WORKSPACE), bonus=0.0, cap=0.1),
        HypothesisBias.of(recognizer_terms(WORKSPACE), bonus=0.05, cap=0.0),
        HypothesisBias.of((), bonus=0.05, cap=0.1),
    ):
        assert not bias.active
        assert bias.choose(beam) == 0


def test_ties_keep_the_models_order() -> None:
    beam = [("Run pytest.", -0.30), ("Run pytest", -0.30)]

    assert BIAS.choose(beam) == 0


def test_the_transcriber_asks_for_hypotheses_only_when_a_bias_can_act() -> None:
    """Off by default with no keyterms: every note without hints decodes exactly as before (one hypothesis)."""
    whisper = LocalWhisperTranscriber()

    assert whisper.hypothesis_bias(()) is None
    assert LocalWhisperTranscriber(bias_bonus=0.0).hypothesis_bias(["git"]) is None
    assert LocalWhisperTranscriber(bias_bonus=0.05, bias_cap=0.1).hypothesis_bias(["git"]) is not None


_TEXTS = st.lists(
    st.sampled_from(["git", "get", "log", "the", "main", "api", "parse", "config", "milk", "show", "me", "good"]),
    min_size=1,
    max_size=8,
).map(" ".join)


@given(st.lists(st.tuples(_TEXTS, st.floats(min_value=-3.0, max_value=0.0)), min_size=1, max_size=5))
def test_the_choice_is_the_best_total_and_never_far_below_the_models(beam: list[tuple[str, float]]) -> None:
    beam.sort(key=lambda h: -h[1])  # the beam returns its hypotheses best first
    chosen = BIAS.choose(beam)
    totals = [BIAS.score(text, score) for text, score in beam]

    assert totals[chosen] == max(totals)
    assert beam[chosen][1] >= beam[0][1] - BIAS.cap - 1e-12
    if not any(BIAS.matches(text) for text, _ in beam):
        assert chosen == 0
