"""
The cluster worker's wiring (``voicecoder serve --role worker``).

The same container as `serve`, plus a lease store, the tree fence and a send gate on the Bot API client.

Sessions, pending changes and audit stay in the SQLite files of DATA_DIR on the worker's host, next to the tree
they describe and behind the same lease (ADR 0027): a lost host loses both together, and the interrupted-turn
record (ADR 0023) is read by whichever worker of that host owns the workspace next. Every state store the worker
writes is fenced by the lease epoch in its own file (ADR 0030).

With PROJECTS (ADR 0028) the worker holds every (user, project) workspace placed on its host, and the chats' project
choices and held prompts move to PostgreSQL (`PostgresProjectChoices`), where every worker sees them.
"""

from __future__ import annotations

import socket
from pathlib import Path

from dependency_injector import providers

from voicecoder.adapters.postgres.leases import DEFAULT_WORKSPACE, LeaseStore, new_worker_id, project_workspace
from voicecoder.adapters.postgres.project_choices import PostgresProjectChoices
from voicecoder.adapters.postgres.tree_fence import TreeFence
from voicecoder.adapters.postgres.worker import ClusterWorker, ProjectPlacement
from voicecoder.adapters.sqlite.state_store import SqliteStateStore
from voicecoder.bootstrap.container import Container
from voicecoder.bootstrap.projects import state_path, workspace_path
from voicecoder.config import Config
from voicecoder.domain.model import UserId

__all__ = ["DEFAULT_LEASE_TTL_S", "build_worker", "default_host_id"]

DEFAULT_LEASE_TTL_S = 15.0
"""Failover takes about this long after a worker dies; a pause or I/O stall shorter than ~4/5 of it is harmless."""


def default_host_id() -> str:
    """This machine's name: workers on one host share its workspaces' trees (and may take over from each other)."""
    return socket.gethostname()


def build_worker(container: Container, *, host: str, ttl_s: float = DEFAULT_LEASE_TTL_S) -> ClusterWorker:
    """
    A worker for the workspaces of *host*; its send gate is installed on the container's Bot API client.

    With PROJECTS the container's project choices are replaced by the worker's PostgreSQL ones: call this before
    the container builds its project router.

    Raises:
        ConfigurationError: DATABASE_URL is not set.
    """
    config = container.settings()
    url = config.require_cluster("worker")
    inbox = container.core.inbox()
    from voicecoder.adapters.postgres.inbox import PostgresInbox  # noqa: PLC0415 - the postgres extra

    if not isinstance(inbox, PostgresInbox):  # pragma: no cover - DATABASE_URL always builds one
        raise TypeError("a cluster worker needs the PostgreSQL inbox")
    store = LeaseStore(url, owner=new_worker_id(host), host=host, ttl_s=ttl_s)
    placement = _placement(config) if config.projects else None
    if placement is not None:
        container.core.project_choices.override(providers.Object(PostgresProjectChoices(store)))
    worker = ClusterWorker(
        store=store,
        reader=inbox,
        fence=TreeFence(Path(config.workspace_dir).resolve()),
        dispatcher_for=lambda leased: container.worker_dispatcher(inbox=leased),
        placement=placement,
        state_path=config.state_path,
    )
    container.telegram.bot_api().send_gate = worker.send_gate
    # Every state store the worker's apps write to is fenced by the lease of the workspace it belongs to.
    container.core.store.override(
        providers.Singleton(SqliteStateStore, config.state_path, fence=worker.state_fence(DEFAULT_WORKSPACE))
    )
    container.project_workspaces.add_kwargs(
        state_fence=lambda project, user: worker.state_fence(project_workspace(project, user))
    )
    return worker


def _placement(config: Config) -> ProjectPlacement:
    specs = {spec.name: spec for spec in config.projects}

    # A shared project's tree and state are its own whoever asks; user 0 only fills the argument.
    def path_of(project: str, user: int | None) -> Path:
        return workspace_path(config, specs[project], UserId(user if user is not None else 0))

    def state_of(project: str, user: int | None) -> Path:
        return state_path(config, specs[project], UserId(user if user is not None else 0))

    return ProjectPlacement(
        projects=tuple((spec.name, spec.shared, spec.host) for spec in config.projects),
        allowed=tuple(sorted(config.allowed_user_ids)),
        path_of=path_of,
        state_of=state_of,
    )
