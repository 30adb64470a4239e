"""
A real, throw-away PostgreSQL server for tests and benchmarks: Debian's binaries, a temporary directory, loopback.

`PostgresServer.start_new` runs ``initdb`` and ``pg_ctl`` from the newest ``/usr/lib/postgresql/<major>/bin`` (the
``postgresql`` Debian package; ``python3 dev.py test`` installs it when it can). ``initdb`` refuses to run as
root, so under root every server command runs as the ``postgres`` system user (``runuser``), in a directory that
user owns. The server listens on 127.0.0.1 on a free port and on a unix socket in that directory, with
``fsync=on`` (so kill -9 tests prove what they claim) and password authentication (scram-sha-256) for a random
password, so a test can check that the password of a ``DATABASE_URL`` never leaks.

Only the server's own processes are ever signalled: the postmaster's pid from ``postmaster.pid`` and its children
read from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import attrs

from voicecoder.testing.ports import free_port

__all__ = ["PostgresServer", "PostgresUnavailableError", "find_postgres_bin"]

_SUPERUSER = "voicecoder"
_SYSTEM_USER = "postgres"


class PostgresUnavailableError(RuntimeError):
    """No server can be started here; the message names what is missing (a test skips with it)."""


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has ``initdb`` and ``pg_ctl``, or None."""
    candidates = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        major = initdb.parent.parent.name
        if major.isdigit() and (initdb.parent / "pg_ctl").exists():
            candidates.append((int(major), initdb.parent))
    return max(candidates)[1] if candidates else None


def _children(pid: int) -> list[int]:
    """Every descendant of *pid*, read from /proc (the server's backends are the postmaster's children)."""
    found: list[int] = []
    parents = {pid}
    changed = True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid in parents:
                found.append(int(entry.name))
                parents.add(int(entry.name))
                changed = True
    return found


@attrs.define
class PostgresServer:
    """One running test server; `destroy` stops it and removes its directory."""

    root: Path
    bin_dir: Path
    port: int
    password: str = attrs.field(repr=False)
    run_as: str | None
    user: str = _SUPERUSER

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    # --- life cycle ------------------------------------------------------------------------

    @classmethod
    def start_new(cls, *, base: Path | None = None) -> PostgresServer:
        """
        Initdb + start a fresh server in a new temporary directory (under *base*, default the system's temp).

        Raises:
            PostgresUnavailableError: The binaries, the ``postgres`` user (under root) or ``runuser`` are missing,
                or the server did not start (its log's tail is in the message).
        """
        bin_dir = find_postgres_bin()
        if bin_dir is None:
            raise PostgresUnavailableError(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): install the Debian package "
                "`postgresql` (python3 dev.py test does, as root)"
            )
        run_as = None
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresUnavailableError("runuser (util-linux) is missing: initdb cannot run as root")
            try:
                account = pwd.getpwnam(_SYSTEM_USER)
            except KeyError:
                raise PostgresUnavailableError(
                    "the `postgres` system user is missing (the Debian package `postgresql` creates it)"
                ) from None
            run_as = _SYSTEM_USER
        root = Path(tempfile.mkdtemp(prefix="voicecoder-pg-", dir=base))
        root.chmod(0o700)
        if run_as is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        server = cls(root=root, bin_dir=bin_dir, port=free_port(), password=secrets.token_urlsafe(18), run_as=run_as)
        try:
            server._initdb()
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    def _command(self, *argv: str | Path) -> list[str]:
        command = [str(a) for a in argv]
        return ["runuser", "-u", self.run_as, "--", *command] if self.run_as else command

    def _run(self, *argv: str | Path) -> None:
        result = subprocess.run(self._command(*argv), capture_output=True, text=True, check=False, cwd=self.root)
        if result.returncode != 0:
            raise PostgresUnavailableError(
                f"{Path(str(argv[0])).name} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            return "\nserver log: " + self.log_file.read_text()[-800:]
        except OSError:
            return ""

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text)
        path.chmod(0o600)
        if self.run_as is not None:
            account = pwd.getpwnam(self.run_as)
            os.chown(path, account.pw_uid, account.pw_gid)

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        self._write_owned(pwfile, self.password + "\n")
        self._run(
            self.bin_dir / "initdb", "-D", self.data_dir, "-U", self.user, "--pwfile", pwfile,
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# voicecoder test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = on\n"
                "synchronous_commit = on\n"
                "max_connections = 200\n"
                "shared_buffers = 16MB\n"
            )

    def start(self) -> None:
        """
        Start the server on its data directory (again, after `stop` or `kill`) and wait until it accepts.

        Raises:
            PostgresUnavailableError: It did not start.
        """
        self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop it now (``-m immediate``: no checkpoint; the next start does crash recovery)."""
        with contextlib.suppress(PostgresUnavailableError):
            self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-w", "-m", "immediate", "stop")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self) -> list[int]:
        """The postmaster and every backend it runs (empty when the server is down)."""
        pid = self.postmaster_pid()
        if pid is None or not Path(f"/proc/{pid}").exists():
            return []
        return [pid, *_children(pid)]

    def signal_all(self, signum: signal.Signals) -> list[int]:
        """Send *signum* to the postmaster and its backends; returns the pids signalled."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    def kill(self) -> None:
        """Kill -9 every server process (a crash, not a shutdown) and wait until they are gone."""
        pids = self.signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and not _is_zombie(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise PostgresUnavailableError(f"server processes {pids} outlived SIGKILL for 30 s")
            time.sleep(0.01)
        # A killed postmaster may linger as a zombie until its adoptive parent reaps it, and the next start would
        # take its pid in the lock file for a live server: the processes are gone, so the lock file goes too.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for lock in self.root.glob(".s.PGSQL.*.lock"):  # the unix socket's lock file names the dead pid too
            lock.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Stop the server (if it runs) and remove its directory."""
        if self.postmaster_pid() is not None:
            self.stop()
            if self.pids():
                self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- addresses -------------------------------------------------------------------------

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A libpq URL for *database* on 127.0.0.1 (with the server's password unless *password* is given)."""
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    @contextlib.contextmanager
    def database(self, name: str | None = None) -> Iterator[str]:
        """A fresh, empty database for one test; yields its URL and drops it (with its connections) afterwards."""
        import psycopg  # noqa: PLC0415 - the postgres extra; only callers that use a database need it

        name = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            with contextlib.suppress(psycopg.Error), psycopg.connect(self.url(), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
