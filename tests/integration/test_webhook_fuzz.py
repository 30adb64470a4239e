"""
Fuzzing the real webhook: every body and header a stranger (or a broken proxy) can send gets an answer below 500,
no ERROR log line and no traceback; every Update with the right secret is acknowledged; nothing acked then fails.

The ingress is the production one (`tests.ingress_rig.running_ingress`: real lane_of, durable inbox, dispatcher,
TelegramUpdateHandler → VoiceCoder on fakes → TelegramMessenger → local fake Bot API), reached with exact bytes over
a raw keep-alive HTTP/1.1 connection. One Hypothesis example is one request. Bodies: realistic message and button
updates, the same with a field deleted or replaced by a value of another type at any depth, nesting from 0 to
200,000 levels, arbitrary JSON, arbitrary bytes, non-UTF-8 text, bodies over the size limit. Headers: the secret
right, missing, wrong, not UTF-8 or doubled; odd Content-Types, Content-Encodings and extra headers.

Where the generator knows the answer, it is checked exactly (a correct secret and an object with an integer
update_id nested at most 64 deep: 200; wrong secret: 401; over the limit: 413; not an Update: 400). After each
acknowledged update the test waits for the dispatcher to finish it, so a processing failure points at its request.

CI runs a fixed, derandomized set (``VOICECODER_FUZZ_EXAMPLES``, default 1,500; explain phase off). For hunting,
``VOICECODER_FUZZ=deep`` runs 12,000 random examples (or ``VOICECODER_FUZZ_EXAMPLES``) and prints the tally.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.ingress_rig import ALLOWED, PATH, SECRET, Ingress, RawHttp, RecordsAtLeast, running_ingress, watching_logs
from voicecoder.adapters.telegram.webhook import MAX_JSON_DEPTH, SECRET_HEADER

DEEP = os.environ.get("VOICECODER_FUZZ") == "deep"
EXAMPLES = int(os.environ.get("VOICECODER_FUZZ_EXAMPLES") or (12_000 if DEEP else 1_500))
MAX_BODY = 64 * 1024  # a smaller limit than production's 1 MiB keeps oversize bodies cheap to generate
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not DEEP,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no explain phase: failures print fast
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

Json = Any


@attrs.frozen
class Case:
    """One request and, when the generator knows it, the status it must get."""

    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    expected: int | None
    kind: str


# --- bodies -----------------------------------------------------------------------------------------------------

ids = st.integers(1, 2**52)
texts = st.text(max_size=300)
leaf_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    leaf_values,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def users(draw: st.DrawFn) -> dict[str, Json]:
    user: dict[str, Json] = {
        "id": draw(st.sampled_from([ALLOWED]) | ids),
        "is_bot": draw(st.booleans()) if draw(st.integers(0, 9)) == 0 else False,
        "first_name": draw(st.text(max_size=20)),
    }
    if draw(st.booleans()):
        user["username"] = draw(st.from_regex(r"[a-z][a-z0-9_]{3,20}", fullmatch=True))
    if draw(st.booleans()):
        user["language_code"] = draw(st.sampled_from(["en", "de", "es", "fr"]))
    return user


@st.composite
def messages(draw: st.DrawFn, *, sender: dict[str, Json] | None = None) -> dict[str, Json]:
    user = sender if sender is not None else draw(users())
    chat_id = user["id"] if draw(st.integers(0, 4)) else -draw(ids)
    message: dict[str, Json] = {
        "message_id": draw(ids),
        "from": user,
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "first_name": "X"},
        "date": draw(st.integers(1_600_000_000, 1_800_000_000)),
    }
    body = draw(st.sampled_from(["text", "command", "voice", "audio", "document", "photo"]))
    if body == "text":
        message["text"] = draw(texts)
    elif body == "command":
        command = draw(st.sampled_from(["/start", "/help", "/status", "/clear", "/info", "/undo", "/nope"]))
        message["text"] = command + draw(st.sampled_from(["", "@voicecoder_bot", "@other_bot", " extra"]))
        message["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
    elif body in {"voice", "audio", "document"}:
        attachment: dict[str, Json] = {"file_id": draw(st.text(min_size=1, max_size=30)), "file_unique_id": "u"}
        attachment["file_size"] = draw(st.integers(0, 60_000_000))
        if body != "document":
            attachment["duration"] = draw(st.integers(0, 4000))
        attachment["mime_type"] = draw(st.sampled_from(["audio/ogg", "audio/mpeg", "application/pdf", "text/plain"]))
        message[body] = attachment
        if draw(st.booleans()):
            message["caption"] = draw(texts)
    else:
        message["photo"] = [{"file_id": "p", "file_unique_id": "u", "width": 90, "height": 90}]
    if draw(st.integers(0, 5)) == 0:
        message["reply_to_message"] = {"message_id": draw(ids), "chat": message["chat"], "date": 1, "text": "earlier"}
    return message


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Json]:
    update_id = draw(st.integers(0, 2**40))
    if draw(st.integers(0, 2)):
        return {"update_id": update_id, "message": draw(messages())}
    user = draw(users())
    query: dict[str, Json] = {
        "id": str(draw(st.integers(1, 2**63))),
        "from": user,
        "chat_instance": str(draw(st.integers(-(2**63), 2**63))),
        "data": draw(
            st.sampled_from(["approve:abc123:0123456789abcdef", "reject:x:y", "diff:1:2", "status", "cancel", "junk"])
            | st.text(max_size=64)
        ),
    }
    if draw(st.integers(0, 4)):
        query["message"] = draw(messages(sender={"id": 7000000001, "is_bot": True, "first_name": "VoiceCoder"}))
    else:
        query["inline_message_id"] = "inline"
    return {"update_id": update_id, "callback_query": query}


def _paths(value: Json, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _other_type(value: Json) -> st.SearchStrategy[Json]:
    return json_values.filter(lambda v: type(v) is not type(value))


@st.composite
def mutated_updates(draw: st.DrawFn) -> Json:
    """A realistic update with one to three fields, at any depth, deleted, retyped or buried in nesting."""
    update: Json = draw(updates())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(update)))
        if not path:
            continue
        parent = update
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        action = draw(st.sampled_from(["delete", "retype", "nest"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "nest":
            value = parent[key]
            for _ in range(draw(st.integers(1, 80))):
                value = [value] if draw(st.booleans()) else {"k": value}
            parent[key] = value
        else:
            parent[key] = draw(_other_type(parent[key]))
    return update


def depth(value: Json) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def expected_for(value: Json) -> int:
    """What the ingress must answer a correctly authenticated JSON body *value*."""
    is_update = isinstance(value, dict) and type(value.get("update_id")) is int
    return 200 if is_update and depth(value) <= MAX_JSON_DEPTH else 400


@st.composite
def json_bodies(draw: st.DrawFn) -> tuple[bytes, int | None, str]:
    value = draw(
        st.one_of(
            updates(),
            updates(),
            mutated_updates(),
            mutated_updates(),
            json_values,
            st.fixed_dictionaries({"update_id": json_values | st.integers()}, optional={"message": json_values}),
        )
    )
    body = json.dumps(value).encode()
    if len(body) > MAX_BODY:
        return body, 413, "json-oversize"
    return body, expected_for(value), "json"


@st.composite
def nested_bodies(draw: st.DrawFn) -> tuple[bytes, int | None, str]:
    levels = draw(st.sampled_from([0, 1, 63, 64, 65, 100, 950, 990, 1000, 5000, 100_000]) | st.integers(0, 200_000))
    shape = draw(st.sampled_from(["arrays", "objects", "in-update", "unclosed"]))
    if shape == "arrays":
        body, expected = b"[" * levels + b"]" * levels, 400
    elif shape == "objects":
        body = b'{"k":' * levels + b"1" + b"}" * levels
        expected = 400  # no update_id at the top
    elif shape == "in-update":
        body = b'{"update_id": 5, "message": ' + b"[" * levels + b"1" + b"]" * levels + b"}"
        expected = 200 if levels + 1 <= MAX_JSON_DEPTH else 400
    else:
        body, expected = b"[" * levels, 400
    return body, (413 if len(body) > MAX_BODY else expected), f"nested-{shape}"


@st.composite
def raw_bodies(draw: st.DrawFn) -> tuple[bytes, int | None, str]:
    choice = draw(st.sampled_from(["bytes", "latin1", "oversize", "truncated"]))
    if choice == "bytes":
        body = draw(st.binary(max_size=400))
        return body, (None if body.strip().startswith((b"{", b"[")) else 400), "bytes"
    if choice == "latin1":
        text = json.dumps({"update_id": 3, "message": {"text": draw(st.text(min_size=1, max_size=20))}}) + "é"
        return text.encode("latin-1", "replace"), 400, "latin1"
    if choice == "oversize":
        return b" " * (MAX_BODY + draw(st.integers(1, 5000))), 413, "oversize"
    body = json.dumps(draw(updates())).encode()
    return body[: draw(st.integers(0, max(0, len(body) - 1)))], 400, "truncated"


# --- headers ----------------------------------------------------------------------------------------------------

header_names = st.from_regex(rb"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True).filter(
    lambda n: n.lower() not in {b"content-length", b"transfer-encoding", b"host", b"connection"}
)
header_values = st.binary(max_size=40).filter(lambda v: b"\r" not in v and b"\n" not in v)
# What HTTP allows in a header value (visible ASCII, space, tab, obs-text 0x80-0xFF): the server must parse these.
field_bytes = st.lists(st.sampled_from([9, *range(0x20, 0x7F), *range(0x80, 0x100)]), min_size=1, max_size=30).map(
    bytes
)


STANDARD_CONTENT_TYPES = [b"application/json"] * 6 + [b"text/plain", b"application/json; charset=latin-1", b""]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    body, expected, kind = draw(st.one_of(json_bodies(), json_bodies(), json_bodies(), nested_bodies(), raw_bodies()))
    headers: list[tuple[bytes, bytes]] = []
    content_type = draw(st.sampled_from(STANDARD_CONTENT_TYPES) | header_values)
    exact = content_type in STANDARD_CONTENT_TYPES
    if content_type:
        headers.append((b"Content-Type", content_type))
    secret = draw(st.sampled_from(["right"] * 8 + ["missing", "wrong", "non-utf8", "suffix", "twice"]))
    name = SECRET_HEADER.encode()
    if secret == "right":
        headers.append((name, SECRET.encode()))
    elif secret == "wrong":
        headers.append((name, draw(st.from_regex(rb"[A-Za-z0-9_-]{1,40}", fullmatch=True))))
    elif secret == "non-utf8":
        headers.append((name, draw(field_bytes.filter(_not_utf8))))
    elif secret == "suffix":
        headers.append((name, SECRET.encode() + draw(field_bytes) + b"x"))  # HTTP strips trailing whitespace
    elif secret == "twice":
        headers += [(name, SECRET.encode()), (name, b"other")]
        exact = False
    if draw(st.integers(0, 4)) == 0:
        encoding = draw(st.sampled_from([b"gzip", b"deflate", b"br", b"identity", b"x-unknown"]) | header_values)
        headers.append((b"Content-Encoding", encoding))
        exact = False
    for _ in range(draw(st.integers(0, 2))):
        headers.append((draw(header_names), draw(header_values)))
        exact = False
    if secret not in {"right", "twice"}:
        expected = 401  # the secret is checked before the size and the body
    return Case(tuple(headers), body, expected if exact else None, kind)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


# --- the test ---------------------------------------------------------------------------------------------------


@attrs.define
class Tally:
    statuses: Counter[int] = attrs.field(factory=Counter)
    kinds: Counter[str] = attrs.field(factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


class Rig:
    def __init__(self, ingress: Ingress, http: RawHttp, logs: RecordsAtLeast, tally: Tally) -> None:
        self.ingress = ingress
        self.http = http
        self.logs = logs
        self.tally = tally

    def __repr__(self) -> str:  # what Hypothesis prints for the fixture in a failing example
        return f"<the webhook on 127.0.0.1:{self.ingress.port}>"


@pytest.fixture(name="rig")
async def _rig(tmp_path: Path) -> AsyncIterator[Rig]:
    tally = Tally()
    async with watching_logs(logging.ERROR) as logs, running_ingress(tmp_path, max_body_bytes=MAX_BODY) as ingress:
        http = RawHttp(ingress.port)
        try:
            yield Rig(ingress, http, logs, tally)
        finally:
            await http.aclose()
    sys.stderr.write(
        f"\nwebhook fuzz: {tally.requests} requests; statuses {dict(sorted(tally.statuses.items()))}; "
        f"bodies {dict(tally.kinds.most_common())}; processed {ingress.dispatch.processed}, "
        f"failed {ingress.dispatch.failed}\n"
    )


class TestWebhookFuzz:
    @FUZZ
    @given(case=cases())
    async def test_no_5xx_no_traceback_and_every_update_acked(self, rig: Rig, case: Case) -> None:
        """
        Whatever the body and headers: an answer below 500, the exact one where it is known, no ERROR log or
        traceback, and an acknowledged update is processed without a failure.
        """
        acked_before = rig.ingress.stats.accepted
        logged_before = len(rig.logs.records)
        failed_before = rig.ingress.dispatch.failed

        with anyio.fail_after(30):
            status = await rig.http.post(PATH, case.headers, case.body)
            if rig.ingress.stats.accepted > acked_before:
                await rig.ingress.dispatcher.join()
        rig.tally.statuses[status] += 1
        rig.tally.kinds[case.kind] += 1

        assert status < 500
        if case.expected is not None:
            assert status == case.expected
        assert rig.logs.lines()[logged_before:] == []
        assert rig.ingress.dispatch.failed == failed_before
