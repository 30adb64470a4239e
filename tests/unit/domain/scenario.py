"""The chat, the users and the one-step scenario the domain tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from voicecoder.domain.model import ChatId, UserId
from voicecoder.domain.replies import Action, Button, ChangeSummary
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing.fakes import AgentScript, FakePorts

CHAT = ChatId(100)
ALICE = UserId(1)
MALLORY = UserId(666)
OGG = b"OggS" + b"\0" * 60


async def change(app: VoiceCoder, fakes: FakePorts, writes: dict[str, bytes | None]) -> ChangeSummary:
    """Alice prompts; the fake agent writes *writes*; returns the summary with its buttons."""
    fakes.agent.script(AgentScript(text="Edited.", writes=writes))
    await app.prompt(CHAT, ALICE, "do it")
    return fakes.messenger.of_type(ChangeSummary)[-1]


def button(summary: ChangeSummary, action: Action) -> Button:
    """The button for *action* under *summary*."""
    return next(b for b in summary.buttons if b.action is action)
