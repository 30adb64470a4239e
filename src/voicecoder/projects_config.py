"""
The projects one bot serves: ``PROJECTS`` (``api=/srv/api;web=git@host:web.git``) or ``PROJECTS_FILE`` (TOML).

Without either, voicecoder drives the single ``WORKSPACE_DIR`` exactly as before. With them, every allow-listed
user gets a workspace per project under ``WORKSPACES_ROOT`` (cloned from the project's path or remote on first
use), unless the project says ``shared = true``: then everyone works in the project's own tree.

Every error names the setting and the fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.projects import MAX_PROJECT_NAME, PROJECT_NAME_RE

__all__ = ["ProjectSpec", "load_projects_file", "parse_projects"]

# scp-like (git@host:path), or a URL with a scheme git understands.
_REMOTE_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/\s:@]+@[^/\s:]+:)", re.IGNORECASE)
_FILE_KEYS = frozenset({"name", "path", "remote", "shared", "branch", "host"})
_HOST_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9._/-]{1,100}$")


@attrs.frozen
class ProjectSpec:
    """One project: its *name* (what the chat shows) and where its code is (a local *path* or a git *remote*)."""

    name: str
    path: Path | None = None
    remote: str | None = None
    shared: bool = False
    """Every user works in the project's own tree (*path*) instead of a clone of their own."""
    branch: str | None = None
    """The branch a new workspace starts on (default: the source's current branch)."""
    host: str | None = None
    """In a cluster, the host (``--host-id``) whose workers hold this project's workspaces (default: the first
    worker host that needs one)."""

    @property
    def credential(self) -> str | None:
        """The password or token in the remote's URL (``https://user:TOKEN@host/…``), which is never shown."""
        if self.remote is None or "://" not in self.remote:
            return None
        userinfo = urlsplit(self.remote).password
        return userinfo or None

    @property
    def source(self) -> str:
        """What a workspace is cloned from: the remote URL or the local path."""
        return self.remote if self.remote is not None else str(self.path)


def _check_name(name: str, where: str, seen: set[str]) -> str:
    if not PROJECT_NAME_RE.fullmatch(name):
        raise ConfigurationError(
            f"{where}: the project name {name!r} is not usable. Use 1 to {MAX_PROJECT_NAME} characters of "
            "a-z, 0-9, '-' and '_' (lowercase, no spaces): it is shown on the phone and carried by its buttons."
        )
    if name in seen:
        raise ConfigurationError(f"{where}: the project name {name!r} is used twice. Give every project its own name.")
    seen.add(name)
    return name


def _where_from(value: str) -> tuple[Path | None, str | None]:
    if _REMOTE_RE.match(value):
        return None, value
    return Path(value).expanduser(), None


def parse_projects(value: str) -> tuple[ProjectSpec, ...]:
    """
    ``PROJECTS``: ``name=path-or-remote`` entries separated by ``;`` (or newlines).

    Raises:
        ConfigurationError: An entry has no ``=``, an empty side, a bad or repeated name, or nothing is listed.
    """
    seen: set[str] = set()
    specs: list[ProjectSpec] = []
    for raw in re.split(r"[;\n]", value):
        entry = raw.strip()
        if not entry:
            continue
        name, eq, where = (part.strip() for part in entry.partition("="))
        if not eq or not where:
            raise ConfigurationError(
                f"PROJECTS entry {entry!r} needs the form name=path-or-remote, e.g. "
                "PROJECTS=api=/srv/api;web=git@example.org:team/web.git (entries separated by ';')."
            )
        path, remote = _where_from(where)
        specs.append(ProjectSpec(_check_name(name, "PROJECTS", seen), path=path, remote=remote))
    if not specs:
        raise ConfigurationError("PROJECTS is set but lists no project: give name=path entries or unset it.")
    return tuple(specs)


def load_projects_file(path: Path) -> tuple[ProjectSpec, ...]:
    """
    ``PROJECTS_FILE``: a TOML file of ``[[project]]`` tables.

    Each has a name, a path or a remote, and optionally shared, branch and host (the cluster host it lives on).

    Raises:
        ConfigurationError: The file cannot be read or parsed, or a project in it is not valid (the message names
            the project and the key to fix).
    """
    where = f"PROJECTS_FILE {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{where} cannot be read ({exc.strerror}): fix the path or the file's mode.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where} is not valid TOML ({exc}). Fix the line it names.") from None
    tables = data.get("project")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigurationError(
            f'{where} lists no project: add [[project]] tables, e.g.\n[[project]]\nname = "api"\npath = "/srv/api"'
        )
    seen: set[str] = set()
    return tuple(_file_spec(table, where, seen) for table in tables)


def _file_spec(table: Mapping[str, object], where: str, seen: set[str]) -> ProjectSpec:
    name = table.get("name")
    if not isinstance(name, str):
        raise ConfigurationError(f'{where}: every [[project]] needs name = "..." (a short lowercase name).')
    _check_name(name, where, seen)
    unknown = sorted(set(table) - _FILE_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: project {name!r} has unknown keys {', '.join(unknown)}; "
            "use name, path, remote, shared, branch, host."
        )
    path, remote, shared, branch, host = (table.get(k) for k in ("path", "remote", "shared", "branch", "host"))
    if (path is None) == (remote is None) or not isinstance(path or remote, str) or not (path or remote):
        raise ConfigurationError(f'{where}: project {name!r} needs exactly one of path = "..." or remote = "...".')
    if not isinstance(shared, bool | None):
        raise ConfigurationError(f"{where}: project {name!r}: shared must be true or false.")
    if branch is not None and (not isinstance(branch, str) or not _BRANCH_RE.match(branch)):
        raise ConfigurationError(f'{where}: project {name!r}: branch must be a branch name such as "main".')
    if host is not None and (not isinstance(host, str) or not _HOST_RE.match(host)):
        raise ConfigurationError(
            f'{where}: project {name!r}: host must be a worker host id such as "build-1" (its --host-id).'
        )
    if shared and remote is not None:
        raise ConfigurationError(
            f"{where}: project {name!r} is shared but has a remote; a shared project is one tree on this "
            "machine: give its path instead."
        )
    return ProjectSpec(
        name,
        path=Path(str(path)).expanduser() if path is not None else None,
        remote=str(remote) if remote is not None else None,
        shared=bool(shared),
        branch=branch if isinstance(branch, str) else None,
        host=host if isinstance(host, str) else None,
    )
