"""How the Claude Code CLI is run: `ClaudeCliConfig` and the version facts the adapter was checked against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

__all__ = [
    "DEFAULT_APPEND_SYSTEM_PROMPT",
    "PINNED_VERSION",
    "TESTED_RANGE_TEXT",
    "TESTED_VERSION_RANGE",
    "ClaudeCliConfig",
]

DEFAULT_APPEND_SYSTEM_PROMPT = "The user is on a phone: keep answers brief; summarise changes in a few lines."

#: Versions the stream-json mapping was checked against: 2.1.197 up to (not including) 2.2.0.
TESTED_VERSION_RANGE: tuple[tuple[int, int, int], tuple[int, int, int]] = ((2, 1, 197), (2, 2, 0))
TESTED_RANGE_TEXT = "2.1.197–2.1.x"
PINNED_VERSION = "2.1.330"


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _to_env(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


def _env_repr(value: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k!r}: '…'" for k in value) + "}"


@attrs.frozen(kw_only=True)
class ClaudeCliConfig:
    """
    How to run the CLI.

    ``binary`` is a path or a name looked up on PATH. With ``ask_tools`` (the default) the CLI runs with
    ``--permission-prompt-tool stdio`` and asks the runner's caller about every tool its own settings do not
    allow; ``permission_mode`` then defaults to ``default`` (the CLI allows only reads by itself), otherwise to
    ``acceptEdits``. ``extra_env`` is added to the child's environment (e.g. ``ANTHROPIC_BASE_URL`` for a
    sandbox; its values never appear in reprs or logs) and ``passthrough`` names variables of voicecoder's own
    environment the agent may see (``AGENT_ENV_PASSTHROUGH``); see `agent_environment`. ``timeout_s`` bounds
    the agent's own time per turn (time spent waiting for an answer to a tool question does not count).
    ``keep_warm_s`` is how long an idle process is kept for the next turn of its session (0: never), at most
    ``max_warm`` of them. ``grace_s`` is the wait after each of SIGINT and SIGTERM, ``interrupt_grace_s`` the
    wait for the CLI to end a turn after an interrupt before its process group is killed.
    """

    workdir: Path = attrs.field(converter=Path)
    binary: str = "claude"
    model: str | None = None
    ask_tools: bool = True
    permission_mode: str | None = None
    allowed_tools: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    disallowed_tools: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    max_turns: int | None = None
    append_system_prompt: str | None = DEFAULT_APPEND_SYSTEM_PROMPT
    timeout_s: float = 900.0
    max_retries: int = 2
    config_dir: Path | None = None
    extra_env: dict[str, str] = attrs.field(factory=dict, converter=_to_env, repr=_env_repr)
    passthrough: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    keep_warm_s: float = 900.0
    max_warm: int = 2
    max_line_bytes: int = 8 * 1024 * 1024
    grace_s: float = 2.0
    interrupt_grace_s: float = 5.0

    @property
    def effective_permission_mode(self) -> str:
        if self.permission_mode:
            return self.permission_mode
        return "default" if self.ask_tools else "acceptEdits"
