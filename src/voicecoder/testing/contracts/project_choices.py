"""
The contract of the `ProjectChoices` port (`voicecoder.domain.projects`): subclass `ProjectChoicesContract`.

Provide ``choices`` (a fresh, empty store), ``reopen`` (an async callable that returns the same store as a new
process would see it, or the same object for an in-memory one that cannot outlive its process) and ``broken`` (a
store whose reads and writes fail).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.model import Audio, ChatId, UserId
from voicecoder.domain.projects import HeldKind, HeldPrompt, ProjectChoices

TYPED = HeldPrompt(UserId(1), HeldKind.PROMPT, text="add a <test> & run it", reply_to=12, user_name="Ada")
SPOKEN = HeldPrompt(
    UserId(2),
    HeldKind.VOICE,
    audio=Audio(b"OggS\x00voice", "audio/ogg", "note.ogg", 3.5),
    language="de",
)

__all__ = ["ProjectChoicesContract"]


class ProjectChoicesContract:
    """Every `ProjectChoices` keeps one choice per chat and per forum topic, durably, and raises what it says."""

    @pytest.fixture
    def choices(self) -> ProjectChoices:
        raise NotImplementedError("override `choices` with a fresh store")

    @pytest.fixture
    def reopen(self, choices: ProjectChoices) -> Callable[[], Awaitable[ProjectChoices]]:
        raise NotImplementedError("override `reopen`: the store as the next process sees it")

    @pytest.fixture
    def broken(self) -> ProjectChoices:
        raise NotImplementedError("override `broken` with a store that cannot be read or written")

    async def test_a_chat_that_chose_nothing_has_no_project(self, choices: ProjectChoices) -> None:
        assert await choices.chosen(ChatId(1)) is None

    async def test_a_choice_is_per_chat_and_per_topic_and_the_last_one_counts(self, choices: ProjectChoices) -> None:
        await choices.choose(ChatId(1), "api")
        await choices.choose(ChatId(1, thread=7), "web")
        await choices.choose(ChatId(2), "web")
        await choices.choose(ChatId(2), "docs")

        assert await choices.chosen(ChatId(1)) == "api"
        assert await choices.chosen(ChatId(1, thread=7)) == "web"
        assert await choices.chosen(ChatId(1, thread=8)) is None
        assert await choices.chosen(ChatId(2)) == "docs"

    async def test_a_choice_outlives_the_process(
        self, choices: ProjectChoices, reopen: Callable[[], Awaitable[ProjectChoices]]
    ) -> None:
        await choices.choose(ChatId(5, thread=3), "web")

        again = await reopen()

        assert await again.chosen(ChatId(5, thread=3)) == "web"
        assert await again.chosen(ChatId(5)) is None

    async def test_held_prompts_come_back_oldest_first_once_each(self, choices: ProjectChoices) -> None:
        assert await choices.hold(ChatId(1), TYPED) == 1
        assert await choices.hold(ChatId(1), SPOKEN) == 2
        await choices.hold(ChatId(1, thread=4), SPOKEN)

        assert await choices.held(ChatId(1)) == 2
        assert await choices.pop_held(ChatId(1)) == TYPED
        assert await choices.pop_held(ChatId(1)) == SPOKEN
        assert await choices.pop_held(ChatId(1)) is None
        assert await choices.held(ChatId(1)) == 0
        assert await choices.held(ChatId(1, thread=4)) == 1

    async def test_held_prompts_outlive_the_process(
        self, choices: ProjectChoices, reopen: Callable[[], Awaitable[ProjectChoices]]
    ) -> None:
        await choices.hold(ChatId(9), SPOKEN)

        again = await reopen()

        assert await again.pop_held(ChatId(9)) == SPOKEN

    async def test_a_store_that_fails_raises_state_store_error(self, broken: ProjectChoices) -> None:
        with pytest.raises(StateStoreError):
            await broken.chosen(ChatId(1))
        with pytest.raises(StateStoreError):
            await broken.choose(ChatId(1), "api")
        with pytest.raises(StateStoreError):
            await broken.hold(ChatId(1), TYPED)
        with pytest.raises(StateStoreError):
            await broken.held(ChatId(1))
        with pytest.raises(StateStoreError):
            await broken.pop_held(ChatId(1))
