"""The former home of `voicecoder.simulators.demo_model` (the simulators left the test package); same names."""

from __future__ import annotations

from voicecoder.simulators.demo_model import (
    DEMO_PROMPTS,
    Step,
    demo_reply,
    texts_of,
)

__all__ = [
    "DEMO_PROMPTS",
    "Step",
    "demo_reply",
    "texts_of",
]
