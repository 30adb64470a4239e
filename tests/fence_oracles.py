"""What a stale worker must not change, read through the systems themselves: git, SQLite, the fake Bot API."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

from voicecoder.simulators.bot_api import FakeBotApi

_TABLES = ("sessions", "changes", "audit", "owner_fence")


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=True).stdout


def snapshot(tree: Path, state: Path, bot_api: FakeBotApi) -> dict[str, Any]:
    """
    The tree's refs (checkpoints included), status and file contents by the git CLI; every row of the state file;
    everything the bot sent, edited or answered.
    """
    files = [f for f in _git(tree, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0") if f]
    with closing(sqlite3.connect(state)) as db:
        rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in _TABLES}
    return {
        "refs": _git(tree, "for-each-ref", "--format=%(refname) %(objectname)") + _git(tree, "rev-parse", "HEAD"),
        "status": _git(tree, "status", "--porcelain", "--untracked-files=all"),
        "contents": {f: _git(tree, "hash-object", "--", f).strip() for f in files if (tree / f).is_file()},
        "rows": rows,
        "sent": [e for e in bot_api.transcript() if e["side"] == "bot"],
    }
