"""The STT corpora's separation: tuning sets never use a held-out voice, no two sets share a request, clips as made."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import make_stt_corpus
from bench.make_stt_corpus import DEFAULT_OUT, SETS, TUNING_SETS, check_apart


def test_the_shipped_sets_are_apart() -> None:
    check_apart()


def test_a_tuning_set_with_a_held_out_voice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    requests, voices, workspace = SETS["tuning2"]
    leaked = (*voices[:-1], SETS["heldout2"][1][0])
    monkeypatch.setitem(make_stt_corpus.SETS, "tuning2", (requests, leaked, workspace))

    with pytest.raises(SystemExit, match="must not use a (held-out|tuning) voice: " + re.escape(leaked[-1])):
        check_apart()


def test_a_held_out_set_with_a_voice_of_the_second_tuning_set_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    requests, voices, workspace = SETS["heldout"]
    leaked = (*voices[:-1], SETS["tuning2"][1][0])
    monkeypatch.setitem(make_stt_corpus.SETS, "heldout", (requests, leaked, workspace))

    with pytest.raises(SystemExit, match="heldout set must not use a tuning voice"):
        check_apart()


def test_a_request_two_sets_share_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    requests, voices, workspace = SETS["tuning2"]
    monkeypatch.setitem(make_stt_corpus.SETS, "tuning2", ((*requests, SETS["tuning"][0][0]), voices, workspace))

    with pytest.raises(SystemExit, match="must not share requests"):
        check_apart()


@pytest.mark.parametrize("name", TUNING_SETS)
def test_a_tuning_set_on_disk_is_what_the_generator_describes(name: str) -> None:
    """The committed clips are the generator's requests, voices and 130-190 wpm, each file its recorded bytes."""
    requests, voices, workspace = SETS[name]
    meta = json.loads((DEFAULT_OUT / name / "transcripts.json").read_text(encoding="utf-8"))

    assert [clip["text"] for clip in meta["clips"]] == list(requests)
    assert {clip["voice"] for clip in meta["clips"]} == set(voices)
    assert all(130 <= clip["wpm"] <= 190 for clip in meta["clips"])
    assert meta["workspace"] == workspace
    for clip in meta["clips"]:
        assert hashlib.sha256((DEFAULT_OUT / name / clip["file"]).read_bytes()).hexdigest() == clip["sha256"]
