"""
Hypothesis profiles for voicecoder's property tests and state machines.

* ``ci`` (the default): derandomized, no example database, no explain phase, no deadline. Every run tries
  the same examples, and a failure prints its minimal failing steps within seconds instead of spending
  minutes explaining them.
* ``deep``: random seeds and `DEEP_FACTOR` times each test's examples, with the explain phase, for hunting
  bugs locally. Select it with ``VOICECODER_HYPOTHESIS_PROFILE=deep`` (and run pytest with ``--timeout=0``
  and ``--hypothesis-show-statistics`` to see how many examples ran).

`load_profile()` registers both and loads the one the environment asks for; `budget()` gives a test (or a
state machine) its example count under the loaded profile.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, Phase, settings

__all__ = ["CI", "DEEP", "DEEP_FACTOR", "ENV", "budget", "load_profile"]

CI: Final = "ci"
DEEP: Final = "deep"
ENV: Final = "VOICECODER_HYPOTHESIS_PROFILE"
DEEP_FACTOR: Final = 25
"""How many times more examples the deep profile runs than CI (the issue asks for at least 20)."""

_QUIET_CHECKS: Final = (HealthCheck.too_slow, HealthCheck.data_too_large)
_loaded: list[str] = []


def load_profile() -> str:
    """Register the profiles, load the one named by `ENV` (``ci`` when unset), and return its name."""
    settings.register_profile(
        CI,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
        suppress_health_check=_QUIET_CHECKS,
    )
    settings.register_profile(
        DEEP,
        derandomize=False,
        database=None,
        deadline=None,
        max_examples=100 * DEEP_FACTOR,
        suppress_health_check=_QUIET_CHECKS,
    )
    name = os.environ.get(ENV, CI)
    if name not in (CI, DEEP):
        raise ValueError(f"{ENV}={name!r} is not a profile; use {CI!r} or {DEEP!r}.")
    settings.load_profile(name)
    _loaded[:] = [name]
    return name


def budget(examples: int, *, steps: int | None = None) -> settings:
    """
    Settings for one test under the loaded profile.

    *examples* examples (times `DEEP_FACTOR` under the deep profile) and, for a state machine, at most
    *steps* steps per example; everything else comes from the profile.
    """
    count = examples * DEEP_FACTOR if _loaded == [DEEP] else examples
    if steps is None:
        return settings(max_examples=count)
    return settings(max_examples=count, stateful_step_count=steps)
