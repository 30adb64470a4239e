"""Lanes of a bot with projects and topics: per topic, a 📁 choice on the message lane, tagged tool answers."""

from __future__ import annotations

from typing import Any

import pytest

from voicecoder.adapters.telegram.routing import lane_of, route

CHAT = 1001
USER = {"id": CHAT, "is_bot": False, "first_name": "Dev"}


def message(text: str = "hi", *, topic: int | None = None, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"message_id": 50, "date": 1, "chat": {"id": CHAT, "type": "private"}, "from": USER}
    m["text"] = text
    if topic is not None:
        m.update(message_thread_id=topic, is_topic_message=True)
    m.update(extra)
    return m


def press(data: str, *, topic: int | None = None) -> dict[str, Any]:
    bot_message = message("summary", topic=topic)
    bot_message["from"] = {"id": 9, "is_bot": True, "first_name": "bot"}
    return {
        "update_id": 2,
        "callback_query": {"id": "1", "from": USER, "chat_instance": "1", "data": data, "message": bot_message},
    }


def test_a_topic_has_lanes_of_its_own() -> None:
    assert lane_of({"update_id": 1, "message": message(topic=7)}) == (CHAT, "message@7")
    assert lane_of({"update_id": 1, "message": message()}) == (CHAT, "message")
    assert route({"update_id": 1, "message": message(topic=7)}).lane == f"{CHAT}:message@7"
    assert lane_of(press("api/a:0a1b2c3d:ffffffffffffffff", topic=7)) == (CHAT, "callback@7")


def test_a_reply_thread_that_is_no_topic_shares_the_chat_lane() -> None:
    """message_thread_id without is_topic_message is a reply thread, not a topic."""
    assert lane_of({"update_id": 1, "message": message(message_thread_id=40)}) == (CHAT, "message")


@pytest.mark.parametrize("data", ["api/j::", "api/g::", "g::"])
def test_a_press_that_may_start_a_turn_goes_to_the_message_lane(data: str) -> None:
    assert lane_of(press(data, topic=3)) == (CHAT, "message@3")


def test_a_reply_to_a_tagged_tool_question_has_the_answer_lane() -> None:
    keyboard = {"inline_keyboard": [[{"text": "✅ Allow", "callback_data": "api/y:0a1b2c3d:"}]]}
    question = message("💻 Claude wants to run", reply_markup=keyboard)
    question["from"] = {"id": 9, "is_bot": True, "first_name": "b"}
    reply = message("no", topic=5, reply_to_message=question)

    assert lane_of({"update_id": 3, "message": reply}) == (CHAT, "answer@5")
