"""A prompt cut off by a restart and delivered again is settled and offered, never run a second time silently."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.unit.domain.scenario import ALICE, CHAT, OGG
from voicecoder.domain.model import Audio, AuditAction, Prompt, PromptSource, Session, TurnId
from voicecoder.domain.replies import (
    AgentAnswer,
    Button,
    ChangeSummary,
    InterruptedPrompt,
    NoChanges,
    StalePrompt,
    buttons_of,
)
from voicecoder.domain.services import Settings, VoiceCoder
from voicecoder.testing.fakes import AgentScript, FakePorts, build_voicecoder


async def cut_off(fakes: FakePorts, prompt: Prompt, sent_at: datetime, writes: dict[str, str]) -> None:
    """The state a process leaves when it dies mid-turn: the turn began and saved, the agent edited, no settle."""
    baseline = await fakes.workspace.begin_turn(TurnId("t-cut"))
    for path, text in writes.items():
        fakes.workspace.write(path, text)
    await fakes.store.save_session(
        Session(chat_id=CHAT, open_turn=baseline, open_prompt=prompt, open_prompt_sent_at=sent_at)
    )


def run_again(fakes: FakePorts) -> Button:
    (offer,) = fakes.messenger.of_type(InterruptedPrompt)
    (button,) = buttons_of(offer)
    return button


class TestInterruptedPrompt:
    async def test_a_redelivered_prompt_is_settled_and_offered_not_run(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        The cut-off turn's edits become a change to review, the chat is asked whether to run the prompt again, and
        the agent does not run.
        """
        sent = fakes.clock.now() - timedelta(minutes=2)
        await cut_off(fakes, Prompt.typed("add a README"), sent, {"README.md": "# half done\n"})

        await app.prompt(CHAT, ALICE, "add a README", sent_at=sent)

        assert fakes.agent.requests == []
        offer = fakes.messenger.of_type(InterruptedPrompt)
        assert offer == [InterruptedPrompt("add a README")]
        (summary,) = fakes.messenger.of_type(ChangeSummary)
        assert summary.diff.paths == ("README.md",)
        replies = fakes.messenger.replies(CHAT)
        assert replies.index(offer[0]) < replies.index(summary)
        session = await fakes.store.load_session(CHAT)
        assert session is not None
        assert (session.open_turn, session.open_prompt, session.rerun) == (None, None, Prompt.typed("add a README"))
        assert [r.action for r in await fakes.store.audit_trail(CHAT)][:1] == [AuditAction.INTERRUPTED]

    async def test_run_again_runs_it_once(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """🔁 runs the prompt (once: a second press finds nothing to run again)."""
        sent = fakes.clock.now()
        await cut_off(fakes, Prompt.typed("add a README"), sent, {})
        await app.prompt(CHAT, ALICE, "add a README", sent_at=sent)
        button = run_again(fakes)
        fakes.agent.script(AgentScript(text="Done.", writes={"README.md": b"# done\n"}))

        first = await app.press(CHAT, ALICE, "cb1", button)
        second = await app.press(CHAT, ALICE, "cb2", button)

        assert [r.prompt for r in fakes.agent.requests] == ["add a README"]
        assert (first.text, second.text, second.alert) == ("🔁 Running it again", "Nothing to run again.", True)
        assert fakes.messenger.of_type(AgentAnswer)[-1].text == "Done."

    async def test_nothing_changed_says_so_only_through_the_offer(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """A cut-off turn that changed nothing gets the offer and no 'no changes' notice on top of it."""
        sent = fakes.clock.now()
        await cut_off(fakes, Prompt.typed("look around"), sent, {})

        await app.prompt(CHAT, ALICE, "look around", sent_at=sent)

        assert fakes.messenger.replies(CHAT) == [InterruptedPrompt("look around")]
        assert fakes.messenger.of_type(NoChanges) == []

    async def test_the_same_words_sent_anew_run(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """The same text in a new message (another send time) is a new prompt: it runs, on top of the cut-off edits."""
        sent = fakes.clock.now() - timedelta(minutes=5)
        await cut_off(fakes, Prompt.typed("add a README"), sent, {"README.md": "# half\n"})

        await app.prompt(CHAT, ALICE, "add a README", sent_at=fakes.clock.now())

        assert [r.prompt for r in fakes.agent.requests] == ["add a README"]
        assert fakes.messenger.of_type(InterruptedPrompt) == []
        (summary,) = fakes.messenger.of_type(ChangeSummary)
        assert summary.diff.paths == ("README.md",)

    async def test_a_redelivered_voice_note_is_not_run_again(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """The same recording sent at the same moment is the same prompt, whatever it transcribes to now."""
        sent = fakes.clock.now()
        audio = Audio(OGG)
        spoken = Prompt("add a readme", PromptSource.VOICE, audio_digest=audio.digest)
        await cut_off(fakes, spoken, sent, {"README.md": "# voice\n"})
        fakes.transcriber.learn(OGG, "add a read me")

        await app.voice(CHAT, ALICE, audio, sent_at=sent)

        assert fakes.agent.requests == []
        assert fakes.messenger.of_type(InterruptedPrompt) == [InterruptedPrompt("add a readme", voice=True)]
        assert len(fakes.messenger.of_type(ChangeSummary)) == 1

    async def test_an_old_redelivered_prompt_is_settled_not_refused(self) -> None:
        """Past the maximum prompt age the cut-off turn is still settled and offered (not left open as stale)."""
        app, fakes = build_voicecoder(settings=Settings(allowed_users=frozenset({ALICE}), max_prompt_age_s=60))
        sent = fakes.clock.now() - timedelta(hours=1)
        await cut_off(fakes, Prompt.typed("add a README"), sent, {"README.md": "# half\n"})

        await app.prompt(CHAT, ALICE, "add a README", sent_at=sent)
        await app.prompt(CHAT, ALICE, "something else", sent_at=sent)

        assert fakes.agent.requests == []
        assert len(fakes.messenger.of_type(InterruptedPrompt)) == 1
        assert len(fakes.messenger.of_type(ChangeSummary)) == 1
        assert len(fakes.messenger.of_type(StalePrompt)) == 1

    async def test_a_run_again_cut_off_in_turn_is_offered_again(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """If the run 🔁 started is cut off too, the redelivered press settles it and offers the prompt again."""
        sent = fakes.clock.now()
        await cut_off(fakes, Prompt.typed("add a README"), sent, {})
        await app.prompt(CHAT, ALICE, "add a README", sent_at=sent)
        button = run_again(fakes)
        session = await fakes.store.load_session(CHAT)
        assert session is not None
        # The 🔁 run began (its prompt taken off the offer, its turn saved as open) and the process died.
        await fakes.store.save_session(
            Session(
                chat_id=CHAT,
                open_turn=await fakes.workspace.begin_turn(TurnId("t-again")),
                open_prompt=Prompt.typed("add a README"),
            )
        )

        await app.press(CHAT, ALICE, "cb-redelivered", button)

        assert fakes.agent.requests == []
        assert len(fakes.messenger.of_type(InterruptedPrompt)) == 2
