"""serve's log handler: the lines of one event-loop iteration are written together, in order, and none is lost."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import textwrap

from voicecoder.entrypoints.logs import IterationBatchingHandler


class RecordingStream(io.StringIO):
    """Remembers each write: how many system calls the handler would have made."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def _logger(stream: RecordingStream, name: str) -> logging.Logger:
    handler = IterationBatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def test_an_iterations_lines_are_one_write_at_its_end_in_order() -> None:
    stream = RecordingStream()
    log = _logger(stream, "test.batching.iteration")
    seen_during: list[str] = []

    async def main() -> None:
        for n in range(3):
            log.info("update processed %d", n)
        seen_during.append(stream.getvalue())
        await asyncio.sleep(0)  # the iteration ends; the handler's call_soon runs before we resume
        await asyncio.sleep(0)

    asyncio.run(main())

    assert seen_during == [""]
    assert stream.writes == ["INFO update processed 0\nINFO update processed 1\nINFO update processed 2\n"]


def test_a_warning_writes_what_waits_and_itself_at_once() -> None:
    stream = RecordingStream()
    log = _logger(stream, "test.batching.warning")
    seen: list[str] = []

    async def main() -> None:
        log.info("first")
        log.warning("trouble")
        seen.append(stream.getvalue())

    asyncio.run(main())

    assert seen == ["INFO first\nWARNING trouble\n"]


def test_without_a_running_loop_each_line_is_written_at_once() -> None:
    stream = RecordingStream()
    log = _logger(stream, "test.batching.sync")
    log.info("one")
    assert stream.getvalue() == "INFO one\n"
    log.info("two")
    assert stream.writes == ["INFO one\n", "INFO two\n"]


def test_lines_of_the_next_loop_do_not_wait_for_a_stopped_one() -> None:
    """A loop stopped in the iteration that logged never writes its line; the next loop's first iteration does."""
    stream = RecordingStream()
    log = _logger(stream, "test.batching.two-loops")
    first = asyncio.new_event_loop()

    def last_callback() -> None:
        log.info("last words of the first loop")
        first.stop()  # the handler's callback, queued by this one, never runs

    first.call_soon(last_callback)
    first.run_forever()
    first.close()
    seen_after_first = stream.getvalue()
    seen_during_second: list[str] = []

    async def second() -> None:
        log.info("from the second loop")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen_during_second.append(stream.getvalue())

    asyncio.run(second())

    assert seen_after_first == ""
    assert seen_during_second == ["INFO last words of the first loop\nINFO from the second loop\n"]


def test_a_line_whose_iteration_never_ended_is_written_at_exit() -> None:
    """The loop is closed with the handler's callback still queued; logging's shutdown at exit writes the line."""
    program = textwrap.dedent(
        """
        import asyncio, logging
        from voicecoder.entrypoints.logs import configure_logging

        configure_logging(fmt="json", level="INFO")

        loop = asyncio.new_event_loop()

        def last_callback():
            logging.getLogger("voicecoder.updates").info("last words")
            loop.stop()  # the handler's callback, queued by this one, never runs

        loop.call_soon(last_callback)
        loop.run_forever()
        loop.close()
        print(len(logging.getLogger().handlers[0]._waiting))  # still waiting when the program ends
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]
    assert '"msg": "last words"' in done.stderr
