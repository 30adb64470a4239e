"""
One long-lived ``claude`` process in bidirectional stream-json mode, and the hygiene around it.

`CliProcess.start` runs the CLI in its own session (``start_new_session=True``, so its pid is also its
process group id) with a random marker in its environment. Turns are NDJSON lines on stdin
(``{"type": "user", …}``); control requests go the same way (``interrupt``) and control responses answer
the CLI's ``can_use_tool`` requests. stdout is read through a bounded `LineSplitter`. stderr goes to an
append-only temporary file whose tail explains a crash; it is emptied at the start of every turn.

Stopping (`CliProcess.close`): closing stdin ends an idle CLI by itself; one that does not exit gets
SIGINT, then SIGTERM, then SIGKILL on its process group, each after a grace period and only while the
leader is un-reaped (a reaped leader's pid may be reused). Every process still carrying the marker (a
background job the agent started, a grandchild that left the group) is killed too; `CliProcess.sweep_strays`
does that between turns for processes that are no longer the CLI's descendants. The marker sweep reads
``/proc`` (Linux); elsewhere only the group is signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc

from voicecoder.adapters.claude.events import LineSplitter, parse_line

__all__ = ["MARKER_VAR", "CliProcess", "descendants", "leader_is_ours", "lend_to_agents", "marked_pids", "proc_state"]

log = logging.getLogger(__name__)

MARKER_VAR = "VOICECODER_AGENT_RUN"
_READ_CHUNK = 64 * 1024
_HAVE_PROCFS = Path("/proc/self/stat").exists()

# A cluster worker's tree lock, by tree: every agent started in that tree inherits the descriptor, so the lock is
# free only when the owner and every agent it started are gone (see `voicecoder.adapters.postgres.tree_fence`).
_LENT: dict[str, int] = {}


def lend_to_agents(tree: Path, fd: int | None) -> None:
    """Let every agent started in *tree* from now on inherit *fd* (None: stop lending)."""
    key = str(tree.resolve())
    if fd is None:
        _LENT.pop(key, None)
    else:
        _LENT[key] = fd


def _lent_for(cwd: Path) -> tuple[int, ...]:
    if not _LENT:
        return ()
    fd = _LENT.get(str(cwd.resolve()))
    return () if fd is None else (fd,)


# --- /proc helpers ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields follow the parenthesised command name, which may itself contain ") ".
    return stat.rsplit(")", 1)[-1].split()


def proc_alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] != ["Z"]


def proc_state(pid: int) -> str | None:
    """The state letter of *pid* (``R``, ``S``, ``T`` stopped, ``Z`` …), or None when it is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _has_marker(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def marked_pids(marker: str) -> list[int]:
    """Live processes whose environment carries *marker* (Linux /proc; empty elsewhere)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    try:
        entries = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return []
    return [pid for pid in entries if _has_marker(pid, needle) and proc_alive(pid)]


def descendants(root: int) -> set[int]:
    """Every live process below *root* in the parent tree (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return set()
    for pid in entries:
        fields = _stat_fields(pid)
        if fields is not None and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def leader_is_ours(pid: int, marker: str) -> bool:
    """
    Whether *pid* is still the un-reaped leader this process object started.

    asyncio reaps a child in its watcher before it publishes the return code, so ``returncode is
    None`` alone leaves a short window in which the pid may already belong to someone else. With
    /proc the leader is recognised by its marker (or, once exited, as a zombie that still holds the
    group id); without /proc the return code is all there is.
    """
    if not _HAVE_PROCFS:
        return True
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if f"{MARKER_VAR}={marker}".encode() in environ.split(b"\0"):
        return True
    return not proc_alive(pid) and Path(f"/proc/{pid}").exists()


def _kill_pids(pids: Iterable[int], marker: str, sig: signal.Signals) -> None:
    needle = f"{MARKER_VAR}={marker}".encode()
    for pid in pids:
        # Re-check right before signalling so a recycled pid is never hit.
        if _has_marker(pid, needle):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def _read_tail(handle: IO[bytes], limit: int) -> str:
    handle.flush()
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - limit))
    return handle.read().decode("utf-8", errors="replace")


# --- the process --------------------------------------------------------------------------------


class CliProcess:
    """
    A running ``claude -p --input-format stream-json --output-format stream-json`` process.

    Not safe for two turns at once: the runner keeps one turn per process.
    """

    def __init__(
        self,
        proc: anyio.abc.Process,
        marker: str,
        stderr: IO[bytes],
        *,
        max_line_bytes: int,
        grace_s: float,
        session_id: str,
    ) -> None:
        self._proc = proc
        self.marker = marker
        self._stderr = stderr
        self._splitter = LineSplitter(max_line_bytes)
        self._lines: list[bytes] = []
        self._grace_s = grace_s
        self._eof = False
        self._send_lock = anyio.Lock()
        self.session_id = session_id
        self.turns = 0
        self.idle_since: float | None = None

    @classmethod
    async def start(
        cls,
        command: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        session_id: str,
        max_line_bytes: int = 8 * 1024 * 1024,
        grace_s: float = 2.0,
    ) -> CliProcess:
        """
        Start the CLI.

        Raises:
            FileNotFoundError, PermissionError: The binary cannot be executed.
            OSError: The process could not be started for another reason.
        """
        marker = uuid.uuid4().hex
        # Append mode: the CLI's writes always land at the end, so the runner may truncate the file between turns.
        stderr = tempfile.TemporaryFile(mode="a+b")  # noqa: SIM115 - lives as long as the process
        try:
            proc = await anyio.open_process(
                list(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=cwd,
                env={**env, MARKER_VAR: marker},
                start_new_session=True,
                pass_fds=_lent_for(cwd),
            )
        except BaseException:
            stderr.close()
            raise
        return cls(proc, marker, stderr, max_line_bytes=max_line_bytes, grace_s=grace_s, session_id=session_id)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None and not self._eof

    # --- writing --------------------------------------------------------------------------

    async def send(self, message: Mapping[str, Any]) -> None:
        """
        Write one NDJSON message to the CLI's stdin.

        Raises:
            anyio.BrokenResourceError: The CLI is gone (or closed its stdin).
        """
        stdin = self._proc.stdin
        if stdin is None:  # pragma: no cover - started with stdin=PIPE
            raise anyio.BrokenResourceError
        data = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        async with self._send_lock:
            try:
                await stdin.send(data)
            except (anyio.ClosedResourceError, OSError) as exc:
                raise anyio.BrokenResourceError from exc

    async def send_user(self, text: str) -> None:
        await self.send({"type": "user", "message": {"role": "user", "content": text}})

    async def interrupt(self) -> None:
        """Ask the CLI to stop the running turn (it answers with a control_response and an error result)."""
        await self.send(
            {
                "type": "control_request",
                "request_id": f"interrupt-{uuid.uuid4().hex}",
                "request": {"subtype": "interrupt"},
            }
        )

    # --- reading --------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any] | None:
        """The next JSON object the CLI wrote, or None at the end of its output. Garbage lines are skipped."""
        stdout = self._proc.stdout
        while True:
            while self._lines:
                obj = parse_line(self._lines.pop(0))
                if obj is not None:
                    return obj
            if self._eof or stdout is None:
                return None
            try:
                chunk = await stdout.receive(_READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._eof = True
                last = self._splitter.finish()
                if last is not None:
                    self._lines.append(last)
                continue
            self._lines.extend(self._splitter.feed(chunk))

    def clear_stderr(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.truncate(0)

    async def stderr_tail(self, limit: int = 4000) -> str:
        try:
            return await anyio.to_thread.run_sync(_read_tail, self._stderr, limit)
        except (OSError, ValueError):
            return ""

    # --- stopping -------------------------------------------------------------------------

    async def wait(self) -> int:
        return await self._proc.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        """Signal the CLI's process group, but only while its leader is un-reaped (PGID reuse)."""
        if self._proc.returncode is not None or not leader_is_ours(self._proc.pid, self.marker):
            return
        log.info("sending %s to claude's process group %d", sig.name, self._proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def close(self) -> None:
        """Stop the CLI and everything it started; never raises; runs shielded."""
        with anyio.CancelScope(shield=True):
            try:
                stdin = self._proc.stdin
                if stdin is not None:
                    with contextlib.suppress(Exception):
                        await stdin.aclose()
                with anyio.move_on_after(self._grace_s):
                    await self._proc.wait()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    if self._proc.returncode is not None:
                        break
                    self._signal_group(sig)
                    with anyio.move_on_after(self._grace_s):
                        await self._proc.wait()
                if self._proc.returncode is None:
                    log.warning("claude ignored SIGINT and SIGTERM; killing process group %d", self._proc.pid)
                    self._signal_group(signal.SIGKILL)
                    with anyio.move_on_after(5):
                        await self._proc.wait()
                    if self._proc.returncode is None:
                        log.error("claude (pid %d) could not be stopped", self._proc.pid)
                await self._sweep(await anyio.to_thread.run_sync(marked_pids, self.marker))
            except Exception:
                log.exception("could not stop the claude process cleanly")
            finally:
                self._eof = True
                with contextlib.suppress(Exception):
                    await self._proc.aclose()
                with contextlib.suppress(Exception):
                    self._stderr.close()

    async def sweep_strays(self) -> None:
        """Kill what the last turn left behind that is no longer the CLI's own (background jobs, daemons)."""

        def strays() -> list[int]:
            ours = descendants(self._proc.pid) | {self._proc.pid}
            return [pid for pid in marked_pids(self.marker) if pid not in ours]

        await self._sweep(await anyio.to_thread.run_sync(strays))

    async def _sweep(self, pids: list[int]) -> None:
        pids = [p for p in pids if p != self._proc.pid or self._proc.returncode is not None]
        if not pids:
            return
        log.warning("killing %d process(es) left behind by claude", len(pids))
        for sig, wait in ((signal.SIGTERM, self._grace_s), (signal.SIGKILL, 2.0)):
            _kill_pids(pids, self.marker, sig)
            with anyio.move_on_after(wait):
                while pids:
                    await anyio.sleep(0.05)
                    pids = [p for p in pids if proc_alive(p)]
            if not pids:
                return
        log.error("processes %s survived SIGKILL", pids)
