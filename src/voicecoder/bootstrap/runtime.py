"""
The one place that opens what the container built and closes it again.

Providers stay synchronous (the container is backend-neutral: asyncio or trio); what needs an async open or close
— the databases, the workspace, HTTP sessions, warm agent processes, a speech engine's connections — is opened
here, in order, and closed in reverse order, each close shielded and its failure logged so the others still run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from voicecoder.adapters.claude import hide_own_environment
from voicecoder.domain.ports import Closeable

if TYPE_CHECKING:
    from voicecoder.adapters.telegram.api import TelegramBotApi
    from voicecoder.bootstrap.container import Container
    from voicecoder.bootstrap.telegram import Telegram

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _closing(close: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await close()
            except Exception:
                log.exception("shutdown: closing failed")


@contextlib.asynccontextmanager
async def bot_api_session(telegram: Telegram) -> AsyncIterator[TelegramBotApi]:
    """The Bot API client of *telegram* (the chat side built alone), its HTTP session closed on exit."""
    api = telegram.bot_api()
    async with _closing(api.close):
        yield api


@contextlib.asynccontextmanager
async def lifetime(
    container: Container,
    *,
    store: bool = False,
    inbox: bool = False,
    workspace: bool = False,
    agent: bool = False,
    speech: bool = False,
    bot_api: bool = False,
) -> AsyncIterator[None]:
    """
    Open the named parts of *container* (building them), yield, then close exactly those, last opened first.

    Raises:
        StateStoreError: A database cannot be opened.
        WorkspaceError: The workspace cannot be opened or created.
        OSError: The data directory cannot be created.
    """
    async with contextlib.AsyncExitStack() as stack:
        if bot_api:
            await stack.enter_async_context(_closing(container.telegram.bot_api().close))
        if store or (inbox and container.settings().database_url is None):  # a cluster's inbox is in PostgreSQL
            container.settings().data_dir.mkdir(parents=True, exist_ok=True)
        if store:
            state = container.core.store()
            await state.open()
            await stack.enter_async_context(_closing(state.close))
        if inbox:
            updates = container.core.inbox()
            await updates.open()
            await stack.enter_async_context(_closing(updates.aclose))
        if speech:
            # Built now, so that what is closed is what was built; engines holding connections say so by Closeable.
            engine = container.speech.engine()
            if isinstance(engine, Closeable):
                await stack.enter_async_context(_closing(engine.aclose))
        if workspace and container.settings().projects:
            # Several projects: each (user, project) workspace is opened on first use and closed here.
            await stack.enter_async_context(_closing(container.core.project_choices().aclose))
            await stack.enter_async_context(_closing(container.project_workspaces().aclose))
        elif workspace:
            await container.core.workspace().open()
        if agent:
            # Warm agent processes (and whatever they started) never outlive the runtime: closed first.
            await stack.enter_async_context(_closing(container.core.claude().aclose))
        yield


@contextlib.asynccontextmanager
async def open_runtime(container: Container, *, inbox: bool = True) -> AsyncIterator[Container]:
    """
    Open the state database, the workspace and (unless *inbox* is False) the update inbox; close all on exit.

    The Bot API's HTTP session, the speech engine and warm agent processes are closed on exit as well.

    Raises:
        StateStoreError: A database cannot be opened.
        WorkspaceError: The workspace cannot be opened or created.
    """
    hide_own_environment()  # the agent runs as this user: keep /proc/<pid>/environ (the token, …) from it
    async with lifetime(container, bot_api=True, store=True, inbox=inbox, speech=True, workspace=True, agent=True):
        yield container


__all__ = ["bot_api_session", "lifetime", "open_runtime"]
