"""Shared by the tool-approval tests: what the phone was asked, and answering the first question once it is there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from voicecoder.domain.model import ChatId, UserId
from voicecoder.domain.replies import Action, Button, ToolQuestion, ToolQuestionClosed
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing.fakes import FakePorts, RecordingMessenger


def questions(fakes: FakePorts) -> list[ToolQuestion]:
    """The tool questions sent so far."""
    return fakes.messenger.of_type(ToolQuestion)


def closed(fakes: FakePorts) -> list[ToolQuestionClosed]:
    """The questions as they were edited once answered (or timed out, cancelled, ended by a restart)."""
    return [r for _, r in fakes.messenger.edits if isinstance(r, ToolQuestionClosed)]


def button(question: ToolQuestion, action: Action) -> Button:
    return next(b for b in question.buttons if b.action is action)


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
