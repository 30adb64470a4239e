"""
Workspace leases with fencing epochs, the per-lane claim, and the bot-wide send budget, in PostgreSQL.

A worker owns a workspace through a lease row: ``owner`` (a random id per process start), ``epoch`` (one more on
every acquisition) and ``lease_until`` (the database's clock; the only clock that decides expiry). Every write a
worker makes for a workspace first takes ``FOR SHARE`` on that row with its (owner, epoch) and a lease that has not
expired: a worker that was paused past its lease, or partitioned away while another took over, changes nothing
when it wakes — its write finds no row and raises `OwnershipLostError`. ``FOR SHARE`` also makes a concurrent
takeover wait for the write, so the check and the write cannot be split by one.

The holder keeps a conservative local deadline (`Lease.deadline`, monotonic: sent-at + ttl − margin); past it the
worker fences itself (stops claiming and sending, stops its agents) before the database would let anyone else in.

The claim keeps each lane's order across workers and failovers: an item is claimable only when no earlier item of
its lane is pending or running, rows are locked ``FOR UPDATE SKIP LOCKED``, and a unique index allows one running
item per lane whatever happens (the shape procrastinate's fetch uses, plus the fencing it lacks).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import psycopg
from psycopg_pool import ConnectionPool

from voicecoder.adapters.postgres.connection import (
    IDLE_IN_TRANSACTION_S,
    configure_session,
    connect,
    connection_options,
    migrate,
    safe_target,
    scrub,
)
from voicecoder.adapters.postgres.inbox import item_of
from voicecoder.domain.errors import OwnershipLostError, StateStoreError
from voicecoder.domain.inbox import InboxItem

__all__ = [
    "ANY_HOST",
    "DEFAULT_WORKSPACE",
    "FENCE",
    "LOBBY",
    "Lease",
    "LeaseStore",
    "OwnershipLostError",
    "Placement",
    "new_worker_id",
    "project_workspace",
]

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"
"""The one workspace of today's single-project bot; every chat without a route is claimed for it."""
LOBBY = "lobby"
"""With PROJECTS: the workspace of every chat that has chosen no project yet (and of outsiders); it has no tree."""
ANY_HOST = "*"
"""The lobby's host: any live worker may lease it, since it only asks questions and keeps held prompts in here."""
_MAX_ERROR_CHARS = 2000


def project_workspace(project: str, user: int | None) -> str:
    """The id of *user*'s workspace of *project*, or of the project's one tree when it is shared (user None)."""
    return f"p:{project}:shared" if user is None else f"p:{project}:u{user}"


@attrs.frozen
class Placement:
    """A workspace the claim needs and no host has yet: *project* for *user* (None: the shared tree)."""

    project: str
    user: int | None

    @property
    def workspace(self) -> str:
        return project_workspace(self.project, self.user)


_BOT_RATE_PER_S = 30.0
_BOT_BURST = 30.0

FENCE = (
    "SELECT 1 FROM voicecoder_workspaces WHERE id = %(ws)s AND owner = %(owner)s AND epoch = %(epoch)s "
    "AND lease_until > now() FOR SHARE"
)

# What both claims share: the oldest claimable items, each only when nothing earlier in its lane is pending or
# running (so order holds across workers, workspaces and failover).
_FIRST_OF_LANE = """NOT EXISTS (SELECT 1 FROM voicecoder_inbox e
                        WHERE e.lane = u.lane AND e.update_id < u.update_id
                          AND e.state IN ('pending', 'running'))
     ORDER BY u.update_id
     LIMIT %(limit)s
       FOR UPDATE OF u SKIP LOCKED
)"""
# Without PROJECTS: the items of the worker's workspaces; a chat without a route belongs to the default workspace.
_CLAIM = f"""
WITH ready AS (
    SELECT u.update_id, w.id AS ws, w.epoch
      FROM voicecoder_inbox u
      LEFT JOIN voicecoder_chat_routes r ON r.chat = split_part(u.lane, ':', 1) AND r.thread = 0
      JOIN voicecoder_workspaces w ON w.id = coalesce(r.workspace_id, %(default_ws)s)
     WHERE u.state = 'pending' AND u.not_before <= now()
       AND w.owner = %(owner)s AND w.lease_until > now()
       AND {_FIRST_OF_LANE}
UPDATE voicecoder_inbox i
   SET state = 'running', owner = %(owner)s, epoch = ready.epoch, workspace_id = ready.ws, claimed_at = now()
  FROM ready
 WHERE i.update_id = ready.update_id
RETURNING i.update_id, i.lane, i.body, i.state, i.attempts, i.last_error, i.received_at
"""  # noqa: S608 - fixed fragments, no input


# With PROJECTS the claim routes each item by the keys stored with it (adapters/postgres/routing.py): a button's
# project or `/project NAME` first, else the chat's (topic's) route; an outsider, an unknown project or a chat with
# no route goes to the lobby. The workspace is the sender's of that project (the project's own if shared).
_ROUTED_FROM = """
      FROM voicecoder_inbox u
      LEFT JOIN voicecoder_project_routes r ON r.chat = u.chat AND r.thread = u.thread
      LEFT JOIN voicecoder_projects p ON p.name = coalesce(u.tag, r.project) AND u.sender = ANY(%(allowed)s)
"""
_ROUTED_WS = (
    "CASE WHEN p.name IS NULL THEN 'lobby' WHEN p.shared THEN 'p:' || p.name || ':shared' "
    "ELSE 'p:' || p.name || ':u' || u.sender END"
)
_CLAIM_ROUTED = f"""
WITH ready AS (
    SELECT u.update_id
    {_ROUTED_FROM}
     WHERE u.state = 'pending' AND u.not_before <= now() AND {_ROUTED_WS} = %(ws)s
       AND {_FIRST_OF_LANE}
UPDATE voicecoder_inbox i
   SET state = 'running', owner = %(owner)s, epoch = %(epoch)s, workspace_id = %(ws)s, claimed_at = now()
  FROM ready
 WHERE i.update_id = ready.update_id
RETURNING i.update_id, i.lane, i.body, i.state, i.attempts, i.last_error, i.received_at
"""  # noqa: S608 - fixed fragments, no input
_UNPLACED = f"""
SELECT DISTINCT p.name, CASE WHEN p.shared THEN NULL ELSE u.sender END
{_ROUTED_FROM}
 WHERE u.state = 'pending' AND p.name IS NOT NULL AND coalesce(p.host, %(host)s) = %(host)s
   AND NOT EXISTS (SELECT 1 FROM voicecoder_workspaces w WHERE w.id = {_ROUTED_WS})
"""  # noqa: S608 - fixed fragments, no input


def new_worker_id(host: str) -> str:
    """A worker id that no earlier process start shares: a restarted worker never inherits an epoch."""
    return f"{host}/{uuid.uuid4().hex[:12]}"


@attrs.frozen
class Lease:
    """Ownership of *workspace* by *owner* at *epoch*; act on it only before the local monotonic *deadline*."""

    workspace: str
    owner: str
    epoch: int
    deadline: float

    def live(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.deadline

    def params(self) -> dict[str, Any]:
        return {"ws": self.workspace, "owner": self.owner, "epoch": self.epoch}


class LeaseStore:
    """
    The lease, claim and fenced-write statements of one worker process, on a small connection pool (blocking calls).

    Every method raises `StateStoreError` when PostgreSQL cannot be reached; the fenced ones raise
    `OwnershipLostError` when the lease is no longer this worker's.
    """

    def __init__(self, url: str, *, owner: str, host: str, ttl_s: float, margin_s: float | None = None) -> None:
        self.url = url
        self.owner = owner
        self.host = host
        self.ttl_s = ttl_s
        self.margin_s = margin_s if margin_s is not None else max(0.2, ttl_s / 5)
        # A worker paused inside a transaction holds row locks (its workspace row, the send budget): the server
        # ends its session within about half a lease, so the takeover waits for the lease, not for the pause.
        self.idle_in_transaction_s = min(IDLE_IN_TRANSACTION_S, max(2.0, ttl_s / 2))
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    def __repr__(self) -> str:
        return f"LeaseStore({safe_target(self.url)!r}, owner={self.owner!r})"

    def open(self) -> None:
        """
        Connect and bring the schema up to date.

        Raises:
            StateStoreError: The database cannot be reached or prepared.
        """
        with connect(self.url, autocommit=True) as conn:
            try:
                migrate(conn)
            except psycopg.Error as exc:
                raise StateStoreError(f"Cannot prepare {safe_target(self.url)}: {scrub(str(exc), self.url)}") from None
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=4,
            open=True,
            timeout=10.0,
            kwargs={"autocommit": True, **connection_options()},
            configure=functools.partial(configure_session, idle_in_transaction_s=self.idle_in_transaction_s),
            name="voicecoder-leases",
        )

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=5)

    def run(self, what: str, work: Any) -> Any:
        """
        *work(conn)* in one transaction on this store's pool (the project choices share it).

        Raises:
            StateStoreError: PostgreSQL failed (the message says what to *what*), or `OwnershipLostError`.
        """
        return self._run(what, work)

    def _run(self, what: str, work: Any) -> Any:
        if self._pool is None:
            raise StateStoreError("The lease store is not open.")
        try:
            with self._pool.connection() as conn, conn.transaction():
                return work(conn)
        except OwnershipLostError:
            raise
        except (psycopg.Error, TimeoutError) as exc:  # the pool's timeout is a PoolTimeout, also an OperationalError
            raise StateStoreError(
                f"PostgreSQL at {safe_target(self.url)} failed to {what}: {scrub(str(exc).strip(), self.url)}"
            ) from None

    # --- workspaces and leases ---------------------------------------------------------------

    def register(self, workspace: str, path: str) -> None:
        """Record that *workspace*'s tree is at *path* on this host (a first start creates the row)."""
        self._run(
            "register the workspace",
            lambda conn: conn.execute(
                "INSERT INTO voicecoder_workspaces (id, host, path) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET path = excluded.path WHERE voicecoder_workspaces.host = excluded.host",
                (workspace, self.host, path),
            ),
        )

    def register_projects(self, projects: Sequence[tuple[str, bool, str | None]]) -> None:
        """
        Record the configured projects as (name, shared, host or None: placed on the first host that needs it).

        The lobby's row is created too. Workers of one cluster must share one PROJECTS setting; the last start wins.
        """

        def write(conn: psycopg.Connection[Any]) -> None:
            for name, shared, host in projects:
                conn.execute(
                    "INSERT INTO voicecoder_projects (name, shared, host) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET shared = excluded.shared, host = excluded.host",
                    (name, shared, host),
                )
            conn.execute(
                "INSERT INTO voicecoder_workspaces (id, host, path) VALUES (%s, %s, '') ON CONFLICT (id) DO NOTHING",
                (LOBBY, ANY_HOST),
            )

        self._run("register the projects", write)

    def unplaced(self, allowed: Sequence[int]) -> list[Placement]:
        """The workspaces pending updates need that no host has yet and this host may take (see `place`)."""
        rows = self._run(
            "look for unplaced workspaces",
            lambda conn: conn.execute(_UNPLACED, {"allowed": list(allowed), "host": self.host}).fetchall(),
        )
        return [Placement(str(name), None if user is None else int(user)) for name, user in rows]

    def place(self, placement: Placement, path: str) -> bool:
        """
        Put *placement*'s workspace on this host, its tree at *path*, unless a host has it already; whether it did.

        A workspace stays where it was placed: its tree and state are on that host's disk (ADR 0027).
        """
        row = self._run(
            "place a workspace",
            lambda conn: conn.execute(
                "INSERT INTO voicecoder_workspaces (id, host, path, project, user_id) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING RETURNING 1",
                (placement.workspace, self.host, path, placement.project, placement.user),
            ).fetchone(),
        )
        return row is not None

    def free_workspaces(self) -> list[str]:
        """The workspaces this worker may lease now: on its host (or the lobby), free or lapsed, oldest id first."""
        rows = self._run(
            "list free workspaces",
            lambda conn: conn.execute(
                "SELECT id FROM voicecoder_workspaces WHERE (host = %s OR host = %s) "
                "AND (owner IS NULL OR lease_until < now()) ORDER BY id",
                (self.host, ANY_HOST),
            ).fetchall(),
        )
        return [str(row[0]) for row in rows]

    def workspace_of(self, workspace: str) -> tuple[str | None, int | None]:
        """The (project, user) of a placed workspace; (None, None) for the default workspace and the lobby."""
        row = self._run(
            "read a workspace",
            lambda conn: conn.execute(
                "SELECT project, user_id FROM voicecoder_workspaces WHERE id = %s", (workspace,)
            ).fetchone(),
        )
        if row is None:
            return None, None
        return (None if row[0] is None else str(row[0])), (None if row[1] is None else int(row[1]))

    def acquire(self, workspace: str) -> Lease | None:
        """
        Take *workspace* when it is free or its lease has lapsed (on its own host only), at a new epoch; else None.

        In the same transaction the items its previous owner left running go back to pending (attempts kept, so
        an update that crashes workers again and again still ends failed), to be claimed again in lane order.
        """
        sent = time.monotonic()

        def take(conn: psycopg.Connection[Any]) -> int | None:
            row = conn.execute(
                "UPDATE voicecoder_workspaces SET owner = %s, epoch = epoch + 1, "
                "lease_until = now() + make_interval(secs => %s) "
                "WHERE id = %s AND (host = %s OR host = %s) AND (owner IS NULL OR lease_until < now()) RETURNING epoch",
                (self.owner, self.ttl_s, workspace, self.host, ANY_HOST),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE voicecoder_inbox SET state = 'pending', owner = NULL "
                "WHERE workspace_id = %s AND state = 'running'",
                (workspace,),
            )
            return int(row[0])

        epoch = self._run("acquire a lease", take)
        if epoch is None:
            return None
        return Lease(workspace, self.owner, epoch, sent + self.ttl_s - self.margin_s)

    def renew(self, lease: Lease) -> Lease:
        """
        Extend *lease* by the ttl; the new local deadline counts from before the request was sent.

        Raises:
            OwnershipLostError: The lease lapsed or another worker holds the workspace now.
        """
        sent = time.monotonic()

        def extend(conn: psycopg.Connection[Any]) -> None:
            row = conn.execute(
                "UPDATE voicecoder_workspaces SET lease_until = now() + make_interval(secs => %(ttl)s) "
                "WHERE id = %(ws)s AND owner = %(owner)s AND epoch = %(epoch)s AND lease_until > now() "
                "RETURNING 1",
                {**lease.params(), "ttl": self.ttl_s},
            ).fetchone()
            if row is None:
                raise OwnershipLostError(f"The lease on workspace {lease.workspace} (epoch {lease.epoch}) is lost.")

        self._run("renew a lease", extend)
        return attrs.evolve(lease, deadline=sent + self.ttl_s - self.margin_s)

    def release(self, lease: Lease) -> None:
        """Give *lease* up (a graceful stop): another worker may take the workspace at once."""
        self._run(
            "release a lease",
            lambda conn: conn.execute(
                "UPDATE voicecoder_workspaces SET owner = NULL, lease_until = NULL "
                "WHERE id = %(ws)s AND owner = %(owner)s AND epoch = %(epoch)s",
                lease.params(),
            ),
        )

    # --- claiming and fenced writes -------------------------------------------------------------

    def claim(self, limit: int, default_workspace: str = DEFAULT_WORKSPACE) -> list[InboxItem]:
        """Up to *limit* claimable items of the workspaces this worker holds, oldest first, now running."""
        rows = self._run(
            "claim updates",
            lambda conn: conn.execute(
                _CLAIM, {"owner": self.owner, "limit": limit, "default_ws": default_workspace}
            ).fetchall(),
        )
        return [item_of(row) for row in sorted(rows)]

    def claim_routed(self, lease: Lease, limit: int, allowed: Sequence[int]) -> list[InboxItem]:
        """
        With PROJECTS: up to *limit* claimable items routed to *lease*'s workspace, oldest first, now running.

        Raises:
            OwnershipLostError: The lease is no longer this worker's (nothing was claimed).
        """

        def take(conn: psycopg.Connection[Any]) -> list[Any]:
            if conn.execute(FENCE, lease.params()).fetchone() is None:
                raise OwnershipLostError(f"Workspace {lease.workspace} is no longer owned: no claim.")
            return conn.execute(_CLAIM_ROUTED, {**lease.params(), "limit": limit, "allowed": list(allowed)}).fetchall()

        rows = self._run("claim updates", take)
        return [item_of(row) for row in sorted(rows)]

    def fenced(self, lease: Lease, what: str, statements: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """
        Run *statements* in one transaction behind the fence of *lease*; the rows the last one changed.

        Raises:
            OwnershipLostError: The lease is no longer this worker's (nothing was written).
        """

        def write(conn: psycopg.Connection[Any]) -> int:
            if conn.execute(FENCE, lease.params()).fetchone() is None:
                raise OwnershipLostError(
                    f"Workspace {lease.workspace} is no longer owned at epoch {lease.epoch}: {what} refused."
                )
            changed = 0
            for sql, params in statements:
                changed = conn.execute(sql.encode(), {**lease.params(), **params}).rowcount
            return changed

        result: int = self._run(what, write)
        return result

    def attempt(self, lease: Lease, update_id: int) -> None:
        """Count one more processing attempt of a running item (fenced)."""
        self.fenced(
            lease,
            "count an attempt",
            [(_OWN + "SET attempts = attempts + 1 WHERE update_id = %(id)s AND " + _MINE, {"id": update_id})],
        )

    def complete(self, lease: Lease, update_id: int) -> None:
        """Mark a running item done (fenced)."""
        self.fenced(
            lease,
            "mark an update done",
            [
                (
                    _OWN + "SET state = 'done', finished_at = now(), owner = NULL WHERE update_id = %(id)s AND "
                    "state = 'running' AND " + _MINE,
                    {"id": update_id},
                )
            ],
        )

    def fail(self, lease: Lease, update_id: int, error: str) -> None:
        """Mark a running item failed for good with *error* (fenced)."""
        self.fenced(
            lease,
            "mark an update failed",
            [
                (
                    _OWN + "SET state = 'failed', finished_at = now(), owner = NULL, last_error = %(error)s "
                    "WHERE update_id = %(id)s AND state = 'running' AND " + _MINE,
                    {"id": update_id, "error": error[:_MAX_ERROR_CHARS]},
                )
            ],
        )

    def record_error(self, lease: Lease, update_id: int, error: str) -> None:
        """Remember an attempt's error; the item stays running in its lane (fenced)."""
        self.fenced(
            lease,
            "record an error",
            [
                (
                    _OWN + "SET last_error = %(error)s WHERE update_id = %(id)s AND " + _MINE,
                    {"id": update_id, "error": error[:_MAX_ERROR_CHARS]},
                )
            ],
        )

    def unclaim(self, lease: Lease) -> int:
        """Put every item this worker holds running back to pending (a graceful stop); how many (fenced)."""
        return self.fenced(
            lease,
            "give items back",
            [(_OWN + "SET state = 'pending', owner = NULL WHERE state = 'running' AND " + _MINE, {})],
        )

    # --- the bot-wide send budget ---------------------------------------------------------------

    def heartbeat(self) -> int:
        """Record that this worker lives; how many workers have a heartbeat within the ttl (itself included)."""

        def beat(conn: psycopg.Connection[Any]) -> int:
            conn.execute(
                "INSERT INTO voicecoder_workers (id, host, heartbeat) VALUES (%s, %s, now()) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat = now()",
                (self.owner, self.host),
            )
            row = conn.execute(
                "SELECT count(*) FROM voicecoder_workers WHERE heartbeat > now() - make_interval(secs => %s)",
                (self.ttl_s,),
            ).fetchone()
            return int(row[0]) if row else 1

        live: int = self._run("record a heartbeat", beat)
        return live

    def take_send(self, lease: Lease) -> float:
        """
        Take one send from the bot's shared budget (~30 messages/s across every worker); seconds to wait first.

        A token bucket in one row, refilled by the database clock: the returned wait is how long until the token
        taken now is really there, so a burst above the rate is spread out instead of meeting Telegram's 429.
        Fenced: a worker that lost its lease does not send.
        """

        def take(conn: psycopg.Connection[Any]) -> float:
            if conn.execute(FENCE, lease.params()).fetchone() is None:
                raise OwnershipLostError(f"Workspace {lease.workspace} is no longer owned: no send.")
            conn.execute(
                "INSERT INTO voicecoder_send_budget (id, tokens, at) VALUES (1, %s, now()) ON CONFLICT DO NOTHING",
                (_BOT_BURST,),
            )
            row = conn.execute(
                "UPDATE voicecoder_send_budget SET "
                "tokens = least(%(burst)s, tokens + extract(epoch FROM now() - at)::float8 * %(rate)s) - 1, "
                "at = now() WHERE id = 1 RETURNING tokens",
                {"burst": _BOT_BURST, "rate": _BOT_RATE_PER_S},
            ).fetchone()
            tokens = float(row[0]) if row else 0.0
            return max(0.0, -tokens / _BOT_RATE_PER_S)

        wait: float = self._run("take from the send budget", take)
        return wait


_OWN = "UPDATE voicecoder_inbox "
_MINE = "owner = %(owner)s AND epoch = %(epoch)s AND workspace_id = %(ws)s"
