"""A webhook bot process killed or stopped with a backlog: the next process handles every acked update once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests.integration.webhook_rig import (
    PATH,
    REPO,
    SECRET,
    text_update,
)
from voicecoder.adapters.telegram.webhook import (
    SECRET_HEADER,
)


@pytest.fixture(name="session")
async def _session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


BOT_PROCESS = (
    textwrap.dedent(
        """
    import json, sys, anyio
    from pathlib import Path
    from voicecoder.adapters.sqlite.inbox import SqliteInbox
    from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
    from voicecoder.adapters.telegram.webhook import WebhookSettings, serve_webhook

    inbox_path, port_file, log_file, release_file = map(Path, sys.argv[1:5])

    def lane_of(update):
        return (update["message"]["chat"]["id"], "message")

    async def handle(update):
        while not release_file.exists():
            await anyio.sleep(0.01)
        with log_file.open("a") as f:
            f.write(f"{update['update_id']}\\n")

    async def main():
        async with SqliteInbox(inbox_path) as inbox:
            dispatcher = UpdateDispatcher(inbox, handle, grace_s=1)
            async with anyio.create_task_group() as tg:
                port = await tg.start(lambda task_status: serve_webhook(
                    WebhookSettings(secret_token=SECRET, path=PATH), inbox=inbox, dispatcher=dispatcher,
                    lane_of=lane_of, port=0, task_status=task_status))
                port_file.write_text(str(port))
                # What this process resumed is all handled: say how much it took and did (the test waits for it).
                await dispatcher.join()
                stats = dispatcher.stats
                port_file.with_suffix(".idle").write_text(f"{stats.submitted} {stats.processed}")

    anyio.run(main)
    """
    )
    .replace("SECRET", repr(SECRET))
    .replace("PATH", repr(PATH))
)


class TestBotProcessRestart:
    async def _start(self, tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
        port_file = tmp_path / f"port-{name}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                BOT_PROCESS,
                str(tmp_path / "inbox.db"),
                str(port_file),
                str(tmp_path / "processed.log"),
                str(tmp_path / "release"),
            ],
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with anyio.fail_after(20):
            while not port_file.exists() or not port_file.read_text():
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "bot exited")
                await anyio.sleep(0.02)
        return proc, f"http://127.0.0.1:{port_file.read_text()}"

    @staticmethod
    def _finish(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    @pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
    async def test_acked_backlog_survives_process_death(
        self, tmp_path: Path, session: aiohttp.ClientSession, how: signal.Signals
    ) -> None:
        """Every acked update of a backlog is processed by the next process after SIGKILL or SIGTERM, once each."""
        proc, url = await self._start(tmp_path, "first")
        try:
            statuses = []
            for update_id in range(1, 41):
                async with session.post(
                    url + PATH,
                    json=text_update(update_id, chat=update_id % 4, text="x"),
                    headers={SECRET_HEADER: SECRET},
                ) as response:
                    statuses.append(response.status)
            proc.send_signal(how)
            with anyio.fail_after(10):
                while proc.poll() is None:
                    await anyio.sleep(0.02)
        finally:
            self._finish(proc)
        log = tmp_path / "processed.log"
        nothing_before = not log.exists()
        (tmp_path / "release").touch()
        proc2, _ = await self._start(tmp_path, "second")
        idle = tmp_path / "port-second.idle"
        try:
            with anyio.fail_after(15):
                while not idle.exists() or not idle.read_text():
                    await anyio.sleep(0.02)
        finally:
            self._finish(proc2)

        processed = [int(x) for x in log.read_text().split()]
        assert statuses == [200] * 40
        assert nothing_before
        assert idle.read_text() == "40 40"
        assert sorted(processed) == list(range(1, 41))
