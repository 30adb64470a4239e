"""
The library's use cases called directly, as a bot without buttons would: approve, reject, show_diff, git_status,
text; `press(answer=False)`; and the error boundary every public use case has.

Runs on asyncio and trio (tests/unit/domain/conftest.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from tests.unit.domain.scenario import ALICE, CHAT, MALLORY, OGG, button, change
from voicecoder.domain.errors import (
    AgentRunError,
    AgentTimeoutError,
    DeliveryError,
    NoSpeechError,
    NotARepositoryError,
    StaleChangeError,
    StateStoreError,
    UnexpectedAdapterError,
    VoicecoderError,
    WorkspaceError,
)
from voicecoder.domain.model import Audio, ChangeStatus
from voicecoder.domain.replies import (
    Action,
    Button,
    CallbackAnswer,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeSummary,
    Decision,
    DiffView,
    ErrorReply,
    GitStatusView,
    HelpText,
    InfoReport,
    SessionCleared,
    StatusReport,
    Unauthorized,
    Welcome,
    buttons_of,
)
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing.fakes import AgentScript, FakePorts, build_voicecoder, fake_ports


class TestApproveDirectly:
    async def test_approve_commits_the_pending_change_without_abutton(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """approve(chat, user) commits the chat's pending change; the summary loses Approve/Reject; no callback."""
        summary = await change(app, fakes, {"hello.py": b"print('hi')\n"})

        commit = await app.approve(CHAT, ALICE)

        assert commit is not None
        assert fakes.workspace.commits == [commit]
        assert fakes.workspace.head["hello.py"][0] == b"print('hi')\n"
        assert fakes.messenger.of_type(ChangeCommitted) == [
            ChangeCommitted(summary.change_id, commit, 1, prompt="do it")
        ]
        (edited,) = [reply for _, reply in fakes.messenger.edits if isinstance(reply, ChangeSummary)]
        assert edited.decision is Decision.APPROVED
        assert [b.action for b in buttons_of(edited)] == [Action.SHOW_DIFF]
        assert fakes.messenger.callbacks == []
        session = await fakes.store.load_session(CHAT)
        assert session is not None
        assert session.latest_change is not None
        assert session.latest_change.status is ChangeStatus.APPROVED

    async def test_approve_with_nothing_pending_says_so_and_returns_none(
        self, app: VoiceCoder, fakes: FakePorts
    ) -> None:
        """Nothing pending: None, an ErrorReply, no commit; a second approve of a decided change is the same."""
        assert await app.approve(CHAT, ALICE) is None
        await change(app, fakes, {"a.txt": b"a\n"})
        assert await app.approve(CHAT, ALICE) is not None

        assert await app.approve(CHAT, ALICE) is None

        assert len(fakes.workspace.commits) == 1
        errors = fakes.messenger.of_type(ErrorReply)
        assert len(errors) == 2
        assert all("pending" in e.message.lower() for e in errors)

    async def test_approve_checks_the_fingerprint_the_caller_showed(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """Not (an ≥ 8-character prefix of) the diff's fingerprint is refused as stale; then the right one works."""
        summary = await change(app, fakes, {"a.txt": b"a\n"})
        fingerprint = summary.diff.fingerprint

        assert await app.approve(CHAT, ALICE, fingerprint="0" * 16) is None
        assert await app.approve(CHAT, ALICE, fingerprint=fingerprint[:7]) is None
        assert fakes.workspace.commits == []
        stale = fakes.messenger.of_type(ErrorReply)
        assert [e.message for e in stale] == [str(StaleChangeError("the buttons belong to an older diff"))] * 2

        commit = await app.approve(CHAT, ALICE, change_id=summary.change_id, fingerprint=fingerprint[:8])

        assert commit is not None
        assert fakes.workspace.commits == [commit]

    async def test_approve_after_the_tree_changed_commits_nothing(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """The user approves what voicecoder showed: a workspace edited since then is refused, not committed."""
        summary = await change(app, fakes, {"a.txt": b"a\n"})
        fakes.workspace.write("a.txt", b"tampered\n")

        assert await app.approve(CHAT, ALICE, fingerprint=summary.diff.fingerprint) is None

        assert fakes.workspace.commits == []
        assert "changed since" in fakes.messenger.of_type(ErrorReply)[-1].message

    async def test_stranger_cannot_approve(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await change(app, fakes, {"a.txt": b"a\n"})

        assert await app.approve(CHAT, MALLORY) is None

        assert fakes.workspace.commits == []
        assert fakes.messenger.replies()[-1] == Unauthorized(MALLORY.value)


class TestRejectDirectly:
    async def test_reject_puts_back_exactly_the_turn(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """reject(chat, user) restores the turn's files and keeps the user's own edit; True once, then False."""
        fakes.workspace.write("mine.txt", "user edit\n")
        before = dict(fakes.workspace.files)
        summary = await change(app, fakes, {"README.md": None, "new.py": b"x\n"})

        assert await app.reject(CHAT, ALICE) is True

        assert fakes.workspace.files == before
        assert fakes.workspace.commits == []
        assert fakes.messenger.of_type(ChangeDiscarded) == [ChangeDiscarded(summary.change_id, ("README.md", "new.py"))]
        assert await app.reject(CHAT, ALICE) is False
        assert "pending" in fakes.messenger.of_type(ErrorReply)[-1].message.lower()
        assert fakes.messenger.callbacks == []

    async def test_stranger_cannot_reject(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await change(app, fakes, {"a.txt": b"a\n"})

        assert await app.reject(CHAT, MALLORY) is False

        assert fakes.workspace.read("a.txt") == b"a\n"


class TestShowDiffAndStatusDirectly:
    async def test_show_diff_returns_and_sends_the_pending_diff(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """The pending diff comes back and goes to the chat with ✅ ❌; once decided, its diff is marked."""
        summary = await change(app, fakes, {"a.txt": b"a\n"})

        diff = await app.show_diff(CHAT, ALICE)

        assert diff == summary.diff
        view = fakes.messenger.of_type(DiffView)[-1]
        assert view == DiffView(summary.diff, summary.change_id)
        assert [b.action for b in buttons_of(view)] == [Action.APPROVE, Action.REJECT]

        await app.reject(CHAT, ALICE)
        assert await app.show_diff(CHAT, ALICE) is None
        assert await app.show_diff(CHAT, ALICE, change_id=summary.change_id) == summary.diff
        decided = fakes.messenger.of_type(DiffView)[-1]
        assert decided.decision is Decision.REJECTED
        assert buttons_of(decided) == ()

    async def test_show_diff_of_an_unknown_change(self, app: VoiceCoder, fakes: FakePorts) -> None:
        assert await app.show_diff(CHAT, ALICE, change_id="0123456789abcdef") is None

        (error,) = fakes.messenger.of_type(ErrorReply)
        assert fakes.messenger.of_type(DiffView) == []
        assert error.message

    async def test_git_status_returns_and_sends_the_status(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await change(app, fakes, {"a.txt": b"a\n"})

        status = await app.git_status(CHAT, ALICE)

        assert status is not None
        assert status == await fakes.workspace.status()
        assert "a.txt" in status.untracked
        assert fakes.messenger.of_type(GitStatusView) == [GitStatusView(status)]

    async def test_git_status_of_a_broken_workspace_is_a_reply(self) -> None:
        """A workspace that cannot be read: None and an ErrorReply naming the problem, nothing raised."""
        workspace = Faulty(fake_ports().workspace, "status")
        app, fakes = build_voicecoder(allowed_users=[ALICE.value], workspace=workspace)
        workspace.arm(NotARepositoryError("/srv/ws is not a git repository."))

        assert await app.git_status(CHAT, ALICE) is None

        assert fakes.messenger.replies() == [ErrorReply("/srv/ws is not a git repository.")]

    async def test_stranger_gets_no_diff_or_status(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await change(app, fakes, {"a.txt": b"a\n"})
        sent = len(fakes.messenger.sent)

        assert await app.show_diff(CHAT, MALLORY) is None
        assert await app.git_status(CHAT, MALLORY) is None

        assert fakes.messenger.replies()[sent:] == [Unauthorized(MALLORY.value)] * 2


class TestText:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ("/start", Welcome),
            ("/help", HelpText),
            ("/status", StatusReport),
            ("/status@voicecoder_bot", StatusReport),
            ("/clear", SessionCleared),
            ("/info", InfoReport),
            ("/HELP extra words", HelpText),
            ("/frobnicate", HelpText),
            ("/", HelpText),
        ],
    )
    async def test_commands_run_their_use_case_and_never_reach_the_agent(
        self, app: VoiceCoder, fakes: FakePorts, text: str, kind: type[object]
    ) -> None:
        """A slash command runs its command; an unknown one shows the help instead of becoming a prompt."""
        await app.text(CHAT, ALICE, text, user_name="Alice", username="alice")

        (reply,) = fakes.messenger.replies()
        assert isinstance(reply, kind)
        assert fakes.agent.requests == []

    async def test_start_greets_by_name_and_status_names_the_user(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await app.text(CHAT, ALICE, "/start", user_name="Alice")
        await app.text(CHAT, ALICE, "/status", user_name="Alice Liddell", username="alice")

        welcome, status = fakes.messenger.replies()
        assert isinstance(welcome, Welcome)
        assert welcome.user_name == "Alice"
        assert isinstance(status, StatusReport)
        assert (status.user_name, status.username) == ("Alice Liddell", "alice")

    async def test_other_text_is_a_prompt(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await app.text(CHAT, ALICE, "  add a test for parse()  ")

        assert [r.prompt for r in fakes.agent.requests] == ["add a test for parse()"]

    async def test_undo_through_text(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await change(app, fakes, {"a.txt": b"a\n"})
        await app.approve(CHAT, ALICE)

        await app.text(CHAT, ALICE, "/undo")

        assert "a.txt" not in fakes.workspace.files
        assert len(fakes.workspace.commits) == 2

    async def test_stranger_gets_unauthorized_for_commands_and_prompts(self, app: VoiceCoder, fakes: FakePorts) -> None:
        await app.text(CHAT, MALLORY, "/status")
        await app.text(CHAT, MALLORY, "rm -rf /")

        assert fakes.messenger.replies() == [Unauthorized(MALLORY.value)] * 2
        assert fakes.agent.requests == []


class TestPressAnswers:
    @pytest.mark.parametrize("answer", [True, False])
    @pytest.mark.parametrize(
        ("action", "expected"),
        [
            (Action.APPROVE, "✅ Committed"),
            (Action.REJECT, "❌ Changes discarded"),
            (Action.SHOW_DIFF, None),
            (Action.GIT_STATUS, None),
            (Action.CANCEL, "Nothing is running."),
        ],
    )
    async def test_each_press_is_answered_exactly_once(
        self, app: VoiceCoder, fakes: FakePorts, action: Action, expected: str | None, answer: bool
    ) -> None:
        """
        press() returns its CallbackAnswer; with answer=True it also answers through the messenger (once), with
        answer=False never (the caller's framework answers).
        """
        summary = await change(app, fakes, {"a.txt": b"a\n"})
        pressed = button(summary, action) if action is not Action.CANCEL else Button(Action.CANCEL)

        ack = await app.press(CHAT, ALICE, "cb-1", pressed, answer=answer)

        assert isinstance(ack, CallbackAnswer)
        assert ack.alert is False
        if expected is None:
            assert ack.text is None
        else:
            assert ack.text is not None
            assert ack.text.startswith(expected)
        if action is Action.APPROVE:
            assert ack.text == f"✅ Committed {fakes.workspace.commits[0].short_sha}"
        assert fakes.messenger.callbacks == ([("cb-1", ack.text)] if answer else [])
        assert fakes.messenger.alerts == ([("cb-1", False)] if answer else [])

    @pytest.mark.parametrize("answer", [True, False])
    async def test_refusals_are_alerts_answered_once(self, app: VoiceCoder, fakes: FakePorts, answer: bool) -> None:
        """A stale button and a stranger get an alert answer (returned, and sent only when asked to)."""
        summary = await change(app, fakes, {"a.txt": b"a\n"})
        stale = Button(Action.APPROVE, summary.change_id, "0" * 16)

        refused = await app.press(CHAT, ALICE, "cb-stale", stale, answer=answer)
        stranger = await app.press(CHAT, MALLORY, "cb-stranger", button(summary, Action.APPROVE), answer=answer)

        assert refused.alert
        assert refused.text is not None
        assert "older diff" in refused.text
        assert stranger == CallbackAnswer("⛔ Not authorized", alert=True)
        assert fakes.workspace.commits == []
        sent = [("cb-stale", refused.text), ("cb-stranger", stranger.text)]
        assert fakes.messenger.callbacks == (sent if answer else [])

    async def test_answer_false_still_sends_the_result(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """Only the acknowledgement is left to the caller: the diff, the commit and its announcement still go out."""
        summary = await change(app, fakes, {"a.txt": b"a\n"})

        await app.press(CHAT, ALICE, "cb-1", button(summary, Action.SHOW_DIFF), answer=False)
        await app.press(CHAT, ALICE, "cb-2", button(summary, Action.APPROVE), answer=False)

        assert len(fakes.messenger.of_type(DiffView)) == 1
        assert len(fakes.messenger.of_type(ChangeCommitted)) == 1
        assert fakes.messenger.callbacks == []


# --- the error boundary ----------------------------------------------------------------------------------------


@attrs.define
class Faulty:
    """Wraps a port; once armed, every call of the named methods raises the armed exception."""

    inner: Any
    methods: tuple[str, ...] | str
    error: BaseException | None = None
    calls: int = 0

    def arm(self, error: BaseException) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        names = (self.methods,) if isinstance(self.methods, str) else self.methods
        if name not in names or not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.error is not None:
                self.calls += 1
                raise self.error
            return await attr(*args, **kwargs)

        return call


UseCase = Callable[[VoiceCoder, ChangeSummary], Awaitable[object]]

USE_CASES: dict[str, UseCase] = {
    "start": lambda app, s: app.start(CHAT, ALICE, "Alice"),
    "help": lambda app, s: app.help(CHAT, ALICE),
    "status": lambda app, s: app.status(CHAT, ALICE),
    "clear": lambda app, s: app.clear(CHAT, ALICE),
    "info": lambda app, s: app.info(CHAT, ALICE),
    "undo": lambda app, s: app.undo(CHAT, ALICE),
    "text": lambda app, s: app.text(CHAT, ALICE, "/status"),
    "prompt": lambda app, s: app.prompt(CHAT, ALICE, "again"),
    "voice": lambda app, s: app.voice(CHAT, ALICE, Audio(OGG)),
    "approve": lambda app, s: app.approve(CHAT, ALICE),
    "reject": lambda app, s: app.reject(CHAT, ALICE),
    "show_diff": lambda app, s: app.show_diff(CHAT, ALICE),
    "git_status": lambda app, s: app.git_status(CHAT, ALICE),
    "cancel": lambda app, s: app.cancel(CHAT, ALICE),
    "unauthorized": lambda app, s: app.unauthorized(CHAT, MALLORY),
    "press approve": lambda app, s: app.press(CHAT, ALICE, "cb", button(s, Action.APPROVE)),
    "press reject": lambda app, s: app.press(CHAT, ALICE, "cb", button(s, Action.REJECT)),
    "press diff": lambda app, s: app.press(CHAT, ALICE, "cb", button(s, Action.SHOW_DIFF)),
    "press status": lambda app, s: app.press(CHAT, ALICE, "cb", button(s, Action.GIT_STATUS)),
}

# Which port methods each kind of port exposes to the use cases.
PORT_METHODS: dict[str, tuple[str, ...]] = {
    "messenger": ("send", "edit", "answer_callback"),
    "store": ("load_session", "save_session", "load_change", "append_audit", "audit_trail"),
    "workspace": (
        "begin_turn",
        "changes_since",
        "commit_turn",
        "restore_turn",
        "release_turn",
        "status",
        "revert_commit",
    ),
    "agent": ("run", "compact"),
    "transcriber": ("transcribe",),
}

# What each port documents it raises (its `Raises:`): use cases turn these into replies, except the two a caller
# must handle (DeliveryError, StateStoreError).
DOCUMENTED: dict[str, tuple[VoicecoderError, ...]] = {
    "messenger": (DeliveryError("chat unreachable"),),
    "store": (StateStoreError("disk full"),),
    "workspace": (WorkspaceError("git failed"), NotARepositoryError("not a repository")),
    "agent": (AgentRunError("crashed"), AgentTimeoutError(5)),
    "transcriber": (NoSpeechError(),),
}

ALLOWED = (DeliveryError, StateStoreError, UnexpectedAdapterError)


async def _armed_app(port: str, error: BaseException) -> tuple[VoiceCoder, ChangeSummary, Faulty]:
    """An app with a pending change, whose *port* raises *error* from now on."""
    fakes = fake_ports()  # wrapped below, then wired once
    wrappers = {name: Faulty(getattr(fakes, name), PORT_METHODS[name]) for name in PORT_METHODS}
    app, _ = build_voicecoder(
        allowed_users=[ALICE.value],
        messenger=wrappers["messenger"],
        store=wrappers["store"],
        workspace=wrappers["workspace"],
        agent=wrappers["agent"],
        transcriber=wrappers["transcriber"],
    )
    fakes.transcriber.learn(OGG, "say something")
    fakes.agent.script(AgentScript(text="Edited.", writes={"a.txt": b"a\n"}))
    await app.prompt(CHAT, ALICE, "do it")
    (summary,) = fakes.messenger.of_type(ChangeSummary)
    await app.approve(CHAT, ALICE)  # something for /undo to revert
    fakes.agent.script(AgentScript(text="Edited.", writes={"b.txt": b"b\n"}))
    await app.prompt(CHAT, ALICE, "do more")
    summary = fakes.messenger.of_type(ChangeSummary)[-1]
    wrappers[port].arm(error)
    return app, summary, wrappers[port]


class TestErrorBoundary:
    @pytest.mark.parametrize("use_case", list(USE_CASES))
    @pytest.mark.parametrize("port", list(PORT_METHODS))
    @pytest.mark.parametrize("error", [KeyError("k"), TimeoutError()], ids=type)
    async def test_an_exception_outside_the_contract_becomes_unexpected_adapter_error(
        self, port: str, use_case: str, error: Exception
    ) -> None:
        """
        Whatever a port raises outside its documented errors, the caller sees UnexpectedAdapterError (with the
        original as its cause) or nothing at all — never the raw exception.
        """
        app, summary, faulty = await _armed_app(port, error)

        raised = await _outcome(USE_CASES[use_case](app, summary))

        if raised is None:
            # Not every use case touches every port: then it must not have called it at all.
            assert faulty.calls == 0
        else:
            assert isinstance(raised, UnexpectedAdapterError), f"{use_case} let {raised!r} escape from the {port}"
            assert _caused_by(raised, error)
            assert type(error).__name__ in str(raised)

    @pytest.mark.parametrize("use_case", list(USE_CASES))
    @pytest.mark.parametrize("port", list(PORT_METHODS))
    async def test_documented_port_errors_are_replies_or_pass_through(self, port: str, use_case: str) -> None:
        """
        A documented port error is either shown to the user as a reply or raised as one of the three errors a
        caller handles (DeliveryError, StateStoreError, UnexpectedAdapterError).
        """
        for error in DOCUMENTED[port]:
            app, summary, _ = await _armed_app(port, error)

            raised = await _outcome(USE_CASES[use_case](app, summary))

            assert raised is None or isinstance(raised, ALLOWED), f"{use_case} let {raised!r} escape from the {port}"
            if raised is not None and isinstance(error, DeliveryError | StateStoreError):
                assert raised is error

    async def test_delivery_error_is_the_same_object(self) -> None:
        """DeliveryError passes through untouched: the caller knows what the reply said has happened."""
        error = DeliveryError("chat unreachable")
        app, _, _ = await _armed_app("messenger", error)

        with pytest.raises(DeliveryError) as raised:
            await app.help(CHAT, ALICE)

        assert raised.value is error
        assert not isinstance(raised.value, UnexpectedAdapterError)

    async def test_timeout_inside_the_agent_run_surfaces_as_unexpected(self) -> None:
        """A TimeoutError from inside the turn's task group is unwrapped from the group and translated."""
        error = TimeoutError("read timed out")
        app, _, _ = await _armed_app("agent", error)

        with pytest.raises(UnexpectedAdapterError) as raised:
            await app.prompt(CHAT, ALICE, "go")

        assert "TimeoutError" in str(raised.value)
        assert _caused_by(raised.value, error)


async def _outcome(call: Awaitable[object]) -> BaseException | None:
    """What *call* raised (anything at all), or None."""
    try:
        await call
    except BaseException as exc:
        return exc
    return None


def _caused_by(exc: BaseException, original: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if seen is original:
            return True
        if isinstance(seen, BaseExceptionGroup) and any(_caused_by(e, original) for e in seen.exceptions):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
