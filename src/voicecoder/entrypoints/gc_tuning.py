"""
Garbage-collector settings for a long-running ``voicecoder serve`` process, applied once its start-up is done.

Measured with ``bench/webhook.py`` (py-spy plus ``gc.callbacks``, 40 connections, /help through the full app): with
CPython's defaults a full collection ran every ~0.6 s under load and took ~17 ms (it walks every object alive,
most of them modules, classes and the app built at start-up), which alone put the ack p99 above 20 ms; the
youngest generation was collected ~170 times a second (threshold 700), ~3 % of the core, while freeing almost
nothing, because the short-lived objects of an update die by reference counting and what the count sees is only
the number of updates in flight going up and down.

So, once start-up is over: collect once, move everything alive into the permanent generation (``gc.freeze``: never
scanned again; start-up objects live as long as the process anyway), and raise the youngest generation's threshold
so in-flight objects no longer trigger collections. Cycles are still collected, just in larger, rarer batches (a
threshold of 10,000 objects is a few MB at most). Only the process's own entrypoint calls this: an application that
embeds voicecoder keeps its own collector settings.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_heap"]

YOUNG_THRESHOLD = 10_000
"""Allocations (net of deallocations) of container objects between two collections of the youngest generation."""


def settle_heap(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze what start-up left alive and collect the youngest generation less often (see the module's note)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young_threshold, young), middle, old)
