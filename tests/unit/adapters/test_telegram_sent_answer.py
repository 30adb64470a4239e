"""The send answer's quick read: whatever it accepts, a full JSON parse reads the same way (ADR 0042)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voicecoder.adapters.telegram.api import _sent_message_id

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet='ab"\\{}:,\n ok_message_idresult0123456789', max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["message_id", "ok", "result", "text", "chat"]), inner, max_size=4)
    ),
    max_leaves=8,
)
_KEYS = st.sampled_from(["ok", "result", "message_id", "text", "description", "error_code"])


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """Bot API-like answers: a message_id first or not, of any type, nested ids, other keys, JSON whitespace."""
    result: dict[str, Any] = {}
    if draw(st.booleans()):
        result["message_id"] = draw(st.one_of(st.integers(min_value=-5, max_value=2**70), _VALUES))
    result.update(draw(st.dictionaries(_KEYS, _VALUES, max_size=3)))
    top: dict[str, Any] = {}
    for key in draw(st.permutations(["ok", "result", "description"])):
        if key == "ok":
            top["ok"] = draw(st.one_of(st.booleans(), _VALUES))
        elif key == "result":
            top["result"] = draw(st.one_of(st.just(result), _VALUES))
        elif draw(st.booleans()):
            top["description"] = draw(_VALUES)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(top, separators=separators, indent=draw(st.sampled_from([None, 1])))
    return text.encode()


@settings(max_examples=400)
@given(answers())
@example(b'{"ok":true,"result":{"message_id":42,"from":{"message_id":1},"text":"ok"}}')
@example(b'{"ok":true,"result":{"message_id":4.5}}')
@example(b'{"ok":true,"result":{"message_id":1e3}}')
@example(b'{"ok":true,"result":{"message_id":07}}')
@example(b'{"ok":true,"result":{"text":"\\"message_id\\":5,","message_id":6}}')
@example(b'{"ok":false,"result":{"message_id":5}}')
def test_a_quick_read_agrees_with_the_full_parse(raw: bytes) -> None:
    quick = _sent_message_id(raw)
    if quick is None:
        return
    parsed = json.loads(raw)
    assert parsed["ok"] is True
    assert type(parsed["result"]["message_id"]) is int
    assert quick == {"message_id": parsed["result"]["message_id"]}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"ok":true,"result":{"message_id":7,"from":{"id":1,"is_bot":true},"chat":{"id":2},"date":1,"text":"hi"}}',
        b'{"ok": true, "result": {"message_id": 7, "text": "hi"}}',
        b'{\n "ok": true,\n "result": {\n  "message_id": 7\n }\n}',
    ],
)
def test_telegrams_own_layout_is_read_quickly(raw: bytes) -> None:
    """The answer as Telegram (and json.dumps with any separators) writes it takes the quick path."""
    assert _sent_message_id(raw) == {"message_id": 7}
