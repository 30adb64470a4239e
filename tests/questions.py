"""Shared by the tool-approval tests: run a prompt and answer its first question once it is on the phone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from voicecoder.domain.model import ChatId, UserId
from voicecoder.domain.replies import ToolQuestion
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing.fakes import RecordingMessenger


async def answer_first_question(
    app: VoiceCoder,
    phone: RecordingMessenger,
    chat: ChatId,
    user: UserId,
    prompt: str,
    answer: Callable[[ToolQuestion], Awaitable[None]],
) -> None:
    """Run *prompt* in *chat*; when its first tool question has been sent to *phone*, *answer* it."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(app.prompt, chat, user, prompt)
        await answer(await phone.wait_for(ToolQuestion))
