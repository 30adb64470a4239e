from __future__ import annotations

from datetime import timedelta

import pytest

from voicecoder.domain.model import Audio, ChatId, UserId
from voicecoder.domain.replies import AgentAnswer, Heard, StalePrompt
from voicecoder.domain.services import Settings, VoiceCoder
from voicecoder.testing.fakes import FakePorts, build_voicecoder

CHAT = ChatId(100)
ALICE = UserId(1)
HOUR = 3600.0
OGG = b"OggS" + b"\0" * 60


def wired(max_age_s: float | None) -> tuple[VoiceCoder, FakePorts]:
    return build_voicecoder(
        settings=Settings(allowed_users=frozenset({ALICE}), max_prompt_age_s=max_age_s),
    )


class TestMaxPromptAge:
    async def test_old_prompt_gets_a_notice_and_no_run(self) -> None:
        """
        A typed prompt that waited longer than the maximum (an outage) is answered with a notice naming its age,
        the agent never starts, and the audit trail says why.
        """
        app, fakes = wired(HOUR)
        sent = fakes.clock.now() - timedelta(hours=3)

        await app.prompt(CHAT, ALICE, "add a README", sent_at=sent)

        [notice] = fakes.messenger.replies(CHAT)
        assert notice == StalePrompt(age_s=3 * HOUR, max_age_s=HOUR, prompt="add a README")
        assert fakes.agent.requests == []
        trail = await fakes.store.audit_trail(CHAT)
        assert [r.action for r in trail] == ["stale-prompt"]
        assert trail[0].prompt == "add a README"

    async def test_old_voice_note_is_not_even_transcribed(self) -> None:
        """A stale voice note costs nothing: no transcription, no run, one notice with its duration."""
        app, fakes = wired(HOUR)
        fakes.transcriber.learn(OGG, "add a README")
        sent = fakes.clock.now() - timedelta(hours=2)

        await app.voice(CHAT, ALICE, Audio(OGG, declared_duration_s=30.0), sent_at=sent)

        assert fakes.messenger.replies(CHAT) == [
            StalePrompt(age_s=2 * HOUR, max_age_s=HOUR, prompt=None, voice_duration_s=30.0)
        ]
        assert fakes.transcriber.calls == []
        assert fakes.agent.requests == []

    @pytest.mark.parametrize(("limit", "age_s"), [(HOUR, HOUR - 1), (HOUR, HOUR), (None, 30 * 86400)])
    async def test_recent_prompt_or_no_limit_runs(self, limit: float | None, age_s: float) -> None:
        """Within the limit (or with none configured) the prompt runs as always."""
        app, fakes = wired(limit)

        await app.prompt(CHAT, ALICE, "explain", sent_at=fakes.clock.now() - timedelta(seconds=age_s))

        assert [r.prompt for r in fakes.agent.requests] == ["explain"]
        assert not any(isinstance(r, StalePrompt) for r in fakes.messenger.replies(CHAT))
        assert any(isinstance(r, AgentAnswer) for r in fakes.messenger.replies(CHAT))

    async def test_voice_within_the_limit_is_heard(self) -> None:
        """A fresh voice note is transcribed and run."""
        app, fakes = wired(HOUR)
        fakes.transcriber.learn(OGG, "explain")

        await app.voice(CHAT, ALICE, Audio(OGG), sent_at=fakes.clock.now() - timedelta(minutes=5))

        assert any(isinstance(r, Heard) for r in fakes.messenger.replies(CHAT))
        assert len(fakes.agent.requests) == 1

    async def test_unknown_send_time_runs(self) -> None:
        """Callers that do not know when the prompt was sent (embedders, the sandbox) are never refused."""
        app, fakes = wired(60.0)

        await app.prompt(CHAT, ALICE, "explain")

        assert len(fakes.agent.requests) == 1
