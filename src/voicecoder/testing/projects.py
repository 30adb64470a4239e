"""
Fakes for a bot with several projects: the chats' choices in memory, and workspaces built on fakes.

`FakeProjectWorkspaces` opens one `VoiceCoder` per (user, project) on the fakes of `build_voicecoder`, with the
messenger shared and tagged per project exactly as `voicecoder.bootstrap.projects` does it.
"""

from __future__ import annotations

import attrs

from voicecoder.domain.errors import StateStoreError, WorkspaceError
from voicecoder.domain.model import ChatId, UserId
from voicecoder.domain.ports import Messenger
from voicecoder.domain.projects import HeldPrompt, ProjectMessenger
from voicecoder.domain.services import Settings, VoiceCoder
from voicecoder.testing.fakes import FakePorts, FakeTranscriber, build_voicecoder

__all__ = ["FakeProjectWorkspaces", "InMemoryProjectChoices"]


@attrs.define
class InMemoryProjectChoices:
    """The `ProjectChoices` port in memory; `fail_next` makes the next calls raise `StateStoreError`."""

    choices: dict[tuple[int, int], str] = attrs.field(factory=dict)
    waiting: dict[tuple[int, int], list[HeldPrompt]] = attrs.field(factory=dict)
    fail_next: int = 0

    def _check(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise StateStoreError("fake project choices failure")

    async def chosen(self, chat: ChatId, /) -> str | None:
        self._check()
        return self.choices.get((chat.value, chat.thread or 0))

    async def choose(self, chat: ChatId, project: str, /) -> None:
        self._check()
        self.choices[(chat.value, chat.thread or 0)] = project

    async def hold(self, chat: ChatId, prompt: HeldPrompt, /) -> int:
        self._check()
        waiting = self.waiting.setdefault((chat.value, chat.thread or 0), [])
        waiting.append(prompt)
        return len(waiting)

    async def held(self, chat: ChatId, /) -> int:
        self._check()
        return len(self.waiting.get((chat.value, chat.thread or 0), []))

    async def pop_held(self, chat: ChatId, /) -> HeldPrompt | None:
        self._check()
        waiting = self.waiting.get((chat.value, chat.thread or 0), [])
        return waiting.pop(0) if waiting else None


@attrs.define
class FakeProjectWorkspaces:
    """
    The `ProjectWorkspaces` port on fakes: each (user, project) gets its own fake workspace, agent and store.

    *shared* projects give every user the same app. A project in *unreachable* fails to open with `WorkspaceError`
    (as an unreachable remote does); `opens` counts how often each workspace was built.
    """

    messenger: Messenger
    allowed_users: frozenset[UserId]
    shared: frozenset[str] = frozenset()
    transcriber: FakeTranscriber = attrs.field(factory=FakeTranscriber)
    """Shared by every workspace, as the service shares its speech engine."""
    unreachable: set[str] = attrs.field(factory=set)
    apps: dict[tuple[str, int], tuple[VoiceCoder, FakePorts]] = attrs.field(factory=dict)
    opens: dict[tuple[str, int], int] = attrs.field(factory=dict)

    def _key(self, user: UserId, project: str) -> tuple[str, int]:
        return project, 0 if project in self.shared else user.value

    async def open(self, user: UserId, project: str, /) -> VoiceCoder:
        if project in self.unreachable:
            raise WorkspaceError(f"cannot clone {project}'s remote: check that the server can reach it")
        key = self._key(user, project)
        if key not in self.apps:
            self.opens[key] = self.opens.get(key, 0) + 1
            path = f"/trees/{project}/user-{key[1]}"
            settings = Settings(allowed_users=self.allowed_users, workspace_path=path, project=project)
            self.apps[key] = build_voicecoder(
                messenger=ProjectMessenger(self.messenger, project), settings=settings, transcriber=self.transcriber
            )
        return self.apps[key][0]

    def opened(self) -> tuple[VoiceCoder, ...]:
        return tuple(app for app, _ in self.apps.values())

    def fakes(self, user: UserId, project: str) -> FakePorts:
        """The fakes of *user*'s workspace of *project* (opened already)."""
        return self.apps[self._key(user, project)][1]
