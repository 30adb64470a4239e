"""The collector settings `voicecoder serve` applies once started (checked in a child: they are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import gc, json, weakref
    from voicecoder.entrypoints.gc_tuning import YOUNG_THRESHOLD, settle_heap

    class Node:
        pass

    before = Node()
    before.self = before  # a start-up object in a cycle: it must be frozen, never scanned again
    gc.set_threshold(500, 7, 9)
    settle_heap()
    frozen = gc.get_freeze_count()
    threshold = gc.get_threshold()

    later = Node()
    later.self = later  # garbage made while serving must still be collected
    ref = weakref.ref(later)
    del later
    gc.collect()
    print(json.dumps({
        "frozen": frozen,
        "threshold": threshold,
        "young": YOUNG_THRESHOLD,
        "start_up_object_frozen": not any(o is before for o in gc.get_objects()),
        "cycle_collected": ref() is None,
    }))
    """
)


def test_settle_heap_freezes_start_up_objects_raises_the_young_threshold_and_still_collects_cycles() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(done.stdout)
    assert result["frozen"] > 1000  # the interpreter and voicecoder's modules, at least
    assert result["start_up_object_frozen"]
    assert result["threshold"] == [result["young"], 7, 9]  # the older generations keep their settings
    assert result["cycle_collected"]


def test_settle_heap_never_lowers_a_higher_young_threshold() -> None:
    probe = (
        "import gc; from voicecoder.entrypoints.gc_tuning import settle_heap; "
        "gc.set_threshold(50_000, 10, 10); settle_heap(); print(gc.get_threshold()[0])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert int(done.stdout) == 50_000
