"""Shared by the agent adapter's tests: an event recorder and /proc probes for leftover processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voicecoder.domain.model import AgentEvent


class Recorder:
    """An EventSink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []

    async def __call__(self, event: AgentEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def _running(stat: str) -> bool:
    return stat.rsplit(")", 1)[-1].split(maxsplit=1)[0] != "Z"


def alive_with(var: str, value: str) -> list[int]:
    """Pids of live (non-zombie) processes whose environment has var=value."""
    needle = f"{var}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _running(stat):
            pids.append(int(entry.name))
    return pids


def is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return _running(stat)


def describe(pids: list[int]) -> list[str]:
    """``pid (ppid): command line`` of each pid, for an assertion message."""
    lines = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1]
        except OSError:
            continue
        lines.append(f"{pid} ({ppid}): {cmdline[:200]}")
    return lines


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def roots(pids: list[int]) -> list[int]:
    """The pids whose parent is not among *pids*: one per process tree."""
    alive = set(pids)
    return [pid for pid in pids if parent_of(pid) not in alive]
