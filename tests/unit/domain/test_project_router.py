"""`ProjectRouter`: the chat's project, the held prompt, and presses that always act in their own project."""

from __future__ import annotations

import attrs
import pytest

from tests.unit.domain.scenario import ALICE, CHAT, MALLORY, OGG
from voicecoder.domain.app import COMMANDS_WITH_PROJECTS
from voicecoder.domain.callbacks import decode_callback, encode_callback, project_buttons, starts_a_turn
from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.domain.model import Audio, ChangeId, ChatId, UserId
from voicecoder.domain.replies import (
    Action,
    Button,
    ChangeCommitted,
    ChangeSummary,
    ErrorReply,
    HelpText,
    InfoReport,
    ProjectChosen,
    ProjectPicker,
    StatusReport,
    Unauthorized,
)
from voicecoder.domain.router import MAX_HELD, ProjectRouter
from voicecoder.testing.fakes import AgentScript, RecordingMessenger
from voicecoder.testing.projects import FakeProjectWorkspaces, InMemoryProjectChoices

BOB = UserId(2)
USERS = frozenset({ALICE, BOB})


@attrs.define
class Rig:
    router: ProjectRouter
    messenger: RecordingMessenger
    workspaces: FakeProjectWorkspaces
    choices: InMemoryProjectChoices


@pytest.fixture(name="rig")
def _rig() -> Rig:
    messenger = RecordingMessenger()
    workspaces = FakeProjectWorkspaces(messenger, USERS, shared=frozenset({"docs"}))
    choices = InMemoryProjectChoices()
    router = ProjectRouter(("api", "web", "docs"), workspaces, choices, messenger, USERS, COMMANDS_WITH_PROJECTS)
    return Rig(router, messenger, workspaces, choices)


async def choose(rig: Rig, project: str, chat: ChatId = CHAT, user: UserId = ALICE) -> None:
    await rig.router.press(chat, user, "cb", Button(Action.CHOOSE_PROJECT, project=project))


async def test_a_chat_without_a_project_is_asked_once_and_its_prompts_run_in_the_one_chosen(rig: Rig) -> None:
    rig.workspaces.transcriber.learn(OGG, "hello world")
    await rig.router.prompt(CHAT, ALICE, "first")
    await rig.router.voice(CHAT, ALICE, Audio(OGG, "audio/ogg"))

    pickers = rig.messenger.of_type(ProjectPicker)
    assert pickers == [ProjectPicker(("api", "web", "docs"), None, held=True)]
    assert rig.workspaces.apps == {}  # nothing ran anywhere yet

    await choose(rig, "web")

    web = rig.workspaces.fakes(ALICE, "web")
    assert [r.prompt for r in web.agent.requests] == ["first", "hello world"]
    assert rig.messenger.of_type(ProjectChosen) == [ProjectChosen("web", "/trees/web/user-1", running_held=2)]
    assert rig.choices.choices == {(CHAT.value, 0): "web"}
    # The next prompt goes straight to the chosen project, without a question.
    await rig.router.prompt(CHAT, ALICE, "third")
    assert [r.prompt for r in web.agent.requests][-1] == "third"
    assert len(rig.messenger.of_type(ProjectPicker)) == 1


async def test_a_chat_that_keeps_writing_without_choosing_is_told_when_nothing_more_can_wait(rig: Rig) -> None:
    for n in range(MAX_HELD + 1):
        await rig.router.prompt(CHAT, ALICE, f"prompt {n}")

    assert len(rig.messenger.of_type(ProjectPicker)) == 1
    refusal = rig.messenger.of_type(ErrorReply)[-1]
    assert f"{MAX_HELD} messages already wait" in refusal.message
    await choose(rig, "api")
    assert [r.prompt for r in rig.workspaces.fakes(ALICE, "api").agent.requests] == [
        f"prompt {n}" for n in range(MAX_HELD)
    ]


async def test_a_held_prompt_outlives_a_restart_of_the_router(rig: Rig) -> None:
    await rig.router.prompt(CHAT, ALICE, "survive the restart")
    restarted = ProjectRouter(
        ("api", "web", "docs"), rig.workspaces, rig.choices, rig.messenger, USERS, COMMANDS_WITH_PROJECTS
    )

    await restarted.press(CHAT, ALICE, "cb", Button(Action.CHOOSE_PROJECT, project="docs"))

    assert [r.prompt for r in rig.workspaces.fakes(ALICE, "docs").agent.requests] == ["survive the restart"]
    assert rig.messenger.of_type(ProjectChosen)[-1].running_held == 1
    assert await rig.choices.held(CHAT) == 0


async def test_in_a_group_a_held_message_runs_in_its_authors_workspace(rig: Rig) -> None:
    group = ChatId(-500)
    await rig.router.prompt(group, BOB, "bob's idea")
    await choose(rig, "web", chat=group, user=ALICE)

    assert [r.prompt for r in rig.workspaces.fakes(BOB, "web").agent.requests] == ["bob's idea"]
    assert not rig.workspaces.fakes(ALICE, "web").agent.requests


async def test_each_user_has_their_own_workspace_unless_the_project_is_shared(rig: Rig) -> None:
    bob_chat = ChatId(200)
    for chat, user in ((CHAT, ALICE), (bob_chat, BOB)):
        await rig.router.project(chat, user, "api")
        await rig.router.prompt(chat, user, f"from {user.value}")
    alice_api, bob_api = rig.workspaces.fakes(ALICE, "api"), rig.workspaces.fakes(BOB, "api")
    assert alice_api is not bob_api
    assert [r.prompt for r in alice_api.agent.requests] == ["from 1"]
    assert [r.prompt for r in bob_api.agent.requests] == ["from 2"]

    for chat, user in ((CHAT, ALICE), (bob_chat, BOB)):
        await rig.router.project(chat, user, "docs")
        await rig.router.prompt(chat, user, f"docs by {user.value}")
    docs = rig.workspaces.fakes(ALICE, "docs")
    assert docs is rig.workspaces.fakes(BOB, "docs")
    assert [r.prompt for r in docs.agent.requests] == ["docs by 1", "docs by 2"]


async def test_a_press_acts_in_the_project_its_button_names_after_a_switch(rig: Rig) -> None:
    await rig.router.project(CHAT, ALICE, "api")
    api = rig.workspaces.fakes(ALICE, "api")
    api.agent.script(AgentScript(writes={"api.py": b"x = 1\n"}))
    await rig.router.prompt(CHAT, ALICE, "edit api")
    summary = rig.messenger.of_type(ChangeSummary)[-1]
    assert summary.project == "api"
    approve = next(b for b in summary.buttons if b.action is Action.APPROVE)
    # The messenger of api tags the button; what comes back from the chat carries the tag.
    with project_buttons("api"):
        pressed = decode_callback(encode_callback(approve))
    assert pressed.project == "api"

    await rig.router.project(CHAT, ALICE, "web")
    await rig.router.press(CHAT, ALICE, "cb-approve", pressed)

    assert rig.messenger.of_type(ChangeCommitted)
    assert "api.py" in api.workspace.head
    assert ("web", ALICE.value) not in rig.workspaces.apps or not rig.workspaces.fakes(ALICE, "web").agent.requests
    assert rig.choices.choices[(CHAT.value, 0)] == "web"  # the press did not switch the chat back


@pytest.mark.parametrize(
    ("button", "says"),
    [
        (Button(Action.APPROVE, ChangeId("0a1b2c3d"), "f" * 16), "from before this bot served several projects"),
        (Button(Action.APPROVE, ChangeId("0a1b2c3d"), "f" * 16, project="gone"), "'gone', which this bot no longer"),
        (Button(Action.CHOOSE_PROJECT, project="gone"), "'gone', which this bot no longer"),
    ],
)
async def test_a_button_of_no_or_an_unknown_project_is_refused_with_an_alert(
    rig: Rig, button: Button, says: str
) -> None:
    answer = await rig.router.press(CHAT, ALICE, "cb", button)

    assert answer.alert
    assert says in (answer.text or "")
    assert rig.messenger.callbacks == [("cb", answer.text)]
    assert rig.workspaces.apps == {}


async def test_status_info_and_help_name_the_project_and_the_command(rig: Rig) -> None:
    await rig.router.status(CHAT, ALICE)
    assert isinstance(rig.messenger.replies()[-1], ProjectPicker)  # no project yet: asked, nothing held
    await rig.router.project(CHAT, ALICE, "web")
    await rig.router.status(CHAT, ALICE)
    await rig.router.info(CHAT, ALICE)
    await rig.router.help(CHAT, ALICE)

    assert rig.messenger.of_type(StatusReport)[-1].project == "web"
    assert rig.messenger.of_type(InfoReport)[-1].project == "web"
    assert ("project", COMMANDS_WITH_PROJECTS[2][1]) in rig.messenger.of_type(HelpText)[-1].commands
    # The chosen project's prompt runs without any question: the held list was empty.
    assert rig.messenger.of_type(ProjectChosen) == [ProjectChosen("web", "/trees/web/user-1")]


async def test_an_unknown_project_name_lists_the_projects(rig: Rig) -> None:
    await rig.router.text(CHAT, ALICE, "/project nope")

    error = rig.messenger.of_type(ErrorReply)[-1]
    assert "no project 'nope'" in error.message
    assert "api, web, docs" in error.message
    assert rig.messenger.of_type(ProjectPicker)[-1] == ProjectPicker(("api", "web", "docs"), None)


async def test_an_unreachable_project_is_a_chat_error_and_the_held_prompt_stays(rig: Rig) -> None:
    rig.workspaces.unreachable.add("web")
    await rig.router.prompt(CHAT, ALICE, "keep me")
    await choose(rig, "web")

    error = rig.messenger.of_type(ErrorReply)[-1]
    assert error.message.startswith("📁 web: cannot clone")
    assert rig.choices.choices == {}  # the chat did not switch to a project it cannot use

    await choose(rig, "api")
    assert [r.prompt for r in rig.workspaces.fakes(ALICE, "api").agent.requests] == ["keep me"]


async def test_an_outsider_is_refused_everywhere_and_nothing_is_opened(rig: Rig) -> None:
    await rig.router.prompt(CHAT, MALLORY, "hi")
    await rig.router.text(CHAT, MALLORY, "/project api")
    answer = await rig.router.press(CHAT, MALLORY, "cb", Button(Action.CHOOSE_PROJECT, project="api"))

    assert answer.alert
    assert rig.messenger.of_type(Unauthorized) == [Unauthorized(MALLORY.value)] * 3
    assert rig.workspaces.apps == {}
    assert rig.choices.choices == {}


async def test_topics_of_one_chat_choose_their_own_projects(rig: Rig) -> None:
    topic_a, topic_b = ChatId(CHAT.value, thread=11), ChatId(CHAT.value, thread=22)
    await rig.router.project(topic_a, ALICE, "api")
    await rig.router.project(topic_b, ALICE, "web")
    await rig.router.prompt(topic_a, ALICE, "in a")
    await rig.router.prompt(topic_b, ALICE, "in b")

    assert [r.prompt for r in rig.workspaces.fakes(ALICE, "api").agent.requests] == ["in a"]
    assert [r.prompt for r in rig.workspaces.fakes(ALICE, "web").agent.requests] == ["in b"]
    assert rig.choices.choices == {(CHAT.value, 11): "api", (CHAT.value, 22): "web"}


def test_callback_data_with_a_project_round_trips_within_64_bytes() -> None:
    widest = Button(Action.APPROVE, ChangeId("f" * 32), "A" * 16, project="abcdefghijkl")
    data = encode_callback(widest)

    assert data == "abcdefghijkl/a:" + "f" * 32 + ":" + "A" * 16
    assert len(data.encode()) == 64
    assert decode_callback(data) == widest
    assert decode_callback("api/j::") == Button(Action.CHOOSE_PROJECT, project="api")
    assert starts_a_turn("api/j::")
    assert starts_a_turn("api/g::")
    assert not starts_a_turn("api/a:0a1b2c3d:")
    with pytest.raises(MalformedUpdateError):
        decode_callback("j::")  # a project button must say which project
    with pytest.raises(MalformedUpdateError):
        decode_callback("API/a::")
