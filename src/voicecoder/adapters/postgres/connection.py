"""
Connecting to the cluster's PostgreSQL: the URL without its password for messages, connection settings, the schema.

The password of ``DATABASE_URL`` is a secret: `safe_target` is what any message, log line or error names instead
of the URL, and `connect` turns every failure into a `StateStoreError` that says where it tried and what to fix,
never with the URL itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg

from voicecoder.domain.errors import StateStoreError

__all__ = [
    "IDLE_IN_TRANSACTION_S",
    "SCHEMA_VERSION",
    "configure_session",
    "connect",
    "connection_options",
    "database_password",
    "migrate",
    "safe_target",
    "scrub",
]

_CONNECT_TIMEOUT_S = 5
# A dead peer (host gone, cable cut) is noticed within ~10 s (keepalives, unacknowledged data) instead of the
# kernel's default of hours.
_TCP_USER_TIMEOUT_MS = 10_000
# A process paused (SIGSTOP, a frozen VM) inside a transaction keeps its row locks: every other worker's takeover
# UPDATE or send-budget UPDATE would wait on it forever. The server ends such a session after this long instead;
# our own transactions never sit idle between statements for more than milliseconds.
IDLE_IN_TRANSACTION_S = 5.0
_MIGRATION_LOCK = 0x766F6963  # any constant: serialises concurrent first starts of ingress and workers

_MIGRATIONS: tuple[str, ...] = (
    # v1: the inbox (a workspace id on every row, set when it is claimed), polling offset, workspaces and leases.
    """
    CREATE TABLE voicecoder_inbox (
        update_id    bigint PRIMARY KEY,
        lane         text             NOT NULL,
        body         bytea            NOT NULL,
        state        text             NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'done', 'failed')),
        attempts     integer          NOT NULL DEFAULT 0,
        last_error   text,
        received_at  double precision NOT NULL,
        finished_at  timestamptz,
        not_before   timestamptz      NOT NULL DEFAULT now(),
        workspace_id text,
        owner        text,
        epoch        bigint,
        claimed_at   timestamptz
    );
    CREATE INDEX voicecoder_inbox_open ON voicecoder_inbox (lane, update_id) WHERE state IN ('pending', 'running');
    CREATE INDEX voicecoder_inbox_finished ON voicecoder_inbox (finished_at) WHERE state IN ('done', 'failed');
    -- The backstop of lane order: whatever a claim query gets wrong, two items of one lane never run at once.
    CREATE UNIQUE INDEX voicecoder_inbox_one_running_per_lane ON voicecoder_inbox (lane) WHERE state = 'running';
    CREATE TABLE voicecoder_meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE TABLE voicecoder_workspaces (
        id          text PRIMARY KEY,
        host        text        NOT NULL,
        path        text        NOT NULL,
        owner       text,
        epoch       bigint      NOT NULL DEFAULT 0,
        lease_until timestamptz
    );
    CREATE TABLE voicecoder_workers (
        id        text PRIMARY KEY,
        host      text        NOT NULL,
        heartbeat timestamptz NOT NULL
    );
    CREATE TABLE voicecoder_send_budget (
        id     integer PRIMARY KEY CHECK (id = 1),
        tokens double precision NOT NULL,
        at     timestamptz      NOT NULL
    );
    """,
    # v2: which workspace a chat (or a forum topic of it) works in; a chat without a row uses the default one.
    """
    CREATE TABLE voicecoder_chat_routes (
        chat         text   NOT NULL,
        thread       bigint NOT NULL DEFAULT 0,
        workspace_id text   NOT NULL REFERENCES voicecoder_workspaces (id),
        PRIMARY KEY (chat, thread)
    );
    """,
    # v3: several projects (PROJECTS). A workspace is a (user, project) pair (or a shared project's one tree) placed
    # on a host when first needed; a chat (or topic) routes to a project; prompts that wait for a chat's choice
    # live here, so any worker may ask and any owner may run them after a failover. The lobby (host '*') is the
    # workspace of chats with no project yet: any live worker may lease it.
    """
    ALTER TABLE voicecoder_workspaces ADD COLUMN project text, ADD COLUMN user_id bigint;
    ALTER TABLE voicecoder_inbox ADD COLUMN chat bigint, ADD COLUMN thread bigint NOT NULL DEFAULT 0,
        ADD COLUMN sender bigint, ADD COLUMN tag text;
    CREATE TABLE voicecoder_projects (
        name   text    PRIMARY KEY,
        shared boolean NOT NULL,
        host   text
    );
    CREATE TABLE voicecoder_project_routes (
        chat       bigint      NOT NULL,
        thread     bigint      NOT NULL DEFAULT 0,
        project    text        NOT NULL,
        chosen_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (chat, thread)
    );
    CREATE TABLE voicecoder_held_prompts (
        id         bigserial PRIMARY KEY,
        chat       bigint    NOT NULL,
        thread     bigint    NOT NULL,
        user_id    bigint    NOT NULL,
        kind       text      NOT NULL,
        text       text      NOT NULL,
        audio      bytea,
        mime_type  text,
        filename   text,
        duration_s double precision,
        language   text,
        reply_to   bigint,
        user_name  text
    );
    CREATE INDEX voicecoder_held_prompts_chat ON voicecoder_held_prompts (chat, thread, id);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def database_password(url: str) -> str | None:
    """The password in *url* (percent-decoded), or None; what the log redactor must hide."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def safe_target(url: str) -> str:
    """*url* as ``postgresql://user@host:port/db``: everything an operator needs to find it, never the password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "the database in DATABASE_URL (which is not a valid URL)"
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def scrub(text: str, url: str) -> str:
    """*text* with the URL's password (raw and percent-encoded) replaced, for messages built from driver errors."""
    password = database_password(url)
    raw = urlsplit(url).password if "://" in url else None
    for secret in {password, raw} - {None, ""}:
        text = text.replace(str(secret), "[redacted]")
    return text


def configure_session(conn: psycopg.Connection[Any], *, idle_in_transaction_s: float = IDLE_IN_TRANSACTION_S) -> None:
    """
    The session settings every connection of ours gets (a pool's ``configure`` calls it too).

    A commit is acknowledged only once it is on the server's disk: the webhook's 200 depends on it, so a server or
    database configured with synchronous_commit=off does not weaken it. A session left idle inside a transaction
    for *idle_in_transaction_s* (its process paused) is ended by the server, which releases its locks.

    Raises:
        psycopg.Error: The server refused a setting.
    """
    conn.execute("SET synchronous_commit = on")
    conn.execute(f"SET idle_in_transaction_session_timeout = {max(1, round(idle_in_transaction_s * 1000))}")


def connection_options() -> dict[str, Any]:
    """The connection arguments every connection of ours uses, a pool's too: bounded connect time, keepalives."""
    return {
        "connect_timeout": _CONNECT_TIMEOUT_S,
        "tcp_user_timeout": _TCP_USER_TIMEOUT_MS,
        "application_name": "voicecoder",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
    }


def connect(url: str, *, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection[Any]:
    """
    A connection with bounded connect time, TCP keepalives and the settings of `configure_session`.

    Raises:
        StateStoreError: It cannot connect (the message names the server and the fix, never the password).
    """
    try:
        conn = psycopg.connect(url, autocommit=autocommit, **(connection_options() | kwargs))
    except psycopg.Error as exc:
        raise StateStoreError(
            f"Cannot connect to PostgreSQL at {safe_target(url)}: {scrub(_first_line(exc), url)}. Check that the "
            "server runs and DATABASE_URL names its host, port, database, user and password."
        ) from None
    try:
        configure_session(conn)
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        conn.close()
        raise StateStoreError(f"PostgreSQL at {safe_target(url)} refused a setting: {scrub(str(exc), url)}") from None
    return conn


def migrate(conn: psycopg.Connection[Any]) -> None:
    """
    Bring the schema to `SCHEMA_VERSION` (each step once, in order), serialised across processes; commits.

    Raises:
        psycopg.Error: A migration failed (nothing of it stays).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS voicecoder_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM voicecoder_schema").fetchone()
        if row is None:
            conn.execute("INSERT INTO voicecoder_schema VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        for step in _MIGRATIONS[version:]:
            conn.execute(step.encode())
        conn.execute("UPDATE voicecoder_schema SET version = %s", (max(version, SCHEMA_VERSION),))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[-1:]) if text else type(exc).__name__
