"""
Look-only checks of what the first start creates: directories, the state database, the workspace.

`voicecoder doctor` must not change the machine it inspects (no `git init`, no data dir, no database), so where
the adapters' own diagnoses would create what they check, these say instead what the first start will do and
whether it can (the directory, or the nearest existing parent, is writable by this user).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from voicecoder.domain.model import Diagnostic


def nearest_existing(path: Path) -> Path:
    """*path* itself, or its closest ancestor that exists."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _writable(directory: Path) -> bool:
    # access(2) also answers EROFS for a read-only mount, which is what a sandboxed service would hit.
    return directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)


def directory_diagnostic(name: str, path: Path, *, variable: str) -> Diagnostic:
    """*path* is (or can be created as) a directory this user can write to."""
    shown = path.absolute()
    if path.exists() and not path.is_dir():
        return Diagnostic(name, ok=False, detail=f"{shown} is not a directory", fix=f"point {variable} elsewhere")
    exists = path.exists()
    checked = path if exists else nearest_existing(path)
    if _writable(checked):
        return Diagnostic(name, ok=True, detail=f"{shown} is {'writable' if exists else 'created on first start'}")
    problem = "is not writable" if exists else f"does not exist and {checked} is not writable"
    remedy = "chown it to" if exists else "create it for"
    return Diagnostic(
        name,
        ok=False,
        detail=f"{shown} {problem} by uid {os.getuid()}",
        fix=f"{remedy} the service user, or point {variable} at a writable directory",
    )


def sqlite_file_diagnostic(name: str, path: Path, *, schema_version: int) -> Diagnostic:
    """A SQLite file opened read-only: its schema version against this release's; a missing file is fine."""
    if not path.exists():
        return Diagnostic(name, ok=True, detail=f"{path.absolute()} will be created on first start")
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return Diagnostic(
            name, ok=False, detail=f"{path} cannot be read: {exc}", fix="check the file's owner and the disk"
        )
    if version > schema_version:
        return Diagnostic(
            name,
            ok=False,
            detail=f"{path} has schema v{version}, newer than this release (v{schema_version})",
            fix="upgrade voicecoder to the release that wrote it",
        )
    upgrade = "" if version == schema_version else f" (upgraded to v{schema_version} on next start)"
    return Diagnostic(name, ok=True, detail=f"{path}: schema v{version}{upgrade}")


def is_repository(path: Path) -> bool:
    return (path / ".git").exists()


def new_workspace_diagnostic(path: Path) -> Diagnostic:
    """What the first start will do with a workspace directory that is not a git repository yet."""
    shown = path.absolute()
    for parent in shown.parents:
        if (parent / ".git").exists():
            return Diagnostic(
                "workspace",
                ok=False,
                detail=f"{shown} is inside the git repository {parent}",
                fix=f"point WORKSPACE_DIR at {parent} or at a directory outside it",
            )
    where = directory_diagnostic("workspace", path, variable="WORKSPACE_DIR")
    if not where.ok:
        return where
    action = "created with `git init` and an empty first commit" if not path.exists() else "initialised with `git init`"
    return Diagnostic("workspace", ok=True, detail=f"{shown} is not a repository yet: {action} on first start")


__all__ = [
    "directory_diagnostic",
    "is_repository",
    "nearest_existing",
    "new_workspace_diagnostic",
    "sqlite_file_diagnostic",
]
