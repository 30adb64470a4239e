"""background_priority on real threads: lowered inside, inherited by threads started there, restored after."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from voicecoder.adapters.thread_priority import BACKGROUND_NICE, background_priority

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def run_in_thread(work: threading.Thread) -> None:
    work.start()
    work.join()


class TestBackgroundPriority:
    def test_lowers_the_thread_and_what_it_starts(self) -> None:
        """Inside the block the worker and any thread it starts run at BACKGROUND_NICE; the caller is untouched."""
        seen: dict[str, int] = {}

        def worker() -> None:
            tid = threading.get_native_id()
            seen["before"] = nice_of(tid)
            with background_priority():
                seen["inside"] = nice_of(tid)
                child = threading.Thread(target=lambda: seen.__setitem__("child", nice_of(threading.get_native_id())))
                run_in_thread(child)
            seen["after"] = nice_of(tid)

        caller = nice_of(threading.get_native_id())
        run_in_thread(threading.Thread(target=worker))

        assert seen["inside"] == max(seen["before"], BACKGROUND_NICE)
        assert seen["child"] == seen["inside"]
        assert nice_of(threading.get_native_id()) == caller
        if os.geteuid() == 0:  # raising a priority back needs CAP_SYS_NICE
            assert seen["after"] == seen["before"]

    def test_an_already_lower_thread_stays_as_it_is(self) -> None:
        """A thread already below BACKGROUND_NICE is not raised by the block."""
        seen: list[int] = []

        def worker() -> None:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, 15)
            with background_priority():
                seen.append(nice_of(tid))
            seen.append(nice_of(tid))

        run_in_thread(threading.Thread(target=worker))

        assert seen == [15, 15]
