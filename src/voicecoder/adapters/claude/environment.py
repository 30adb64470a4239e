"""
The environment the agent runs in: an allow-list, never a deny-list.

The agent executes arbitrary shell commands, so whatever is in its environment is readable by them
(``env``). It gets only: the basics a shell needs (``PATH``, ``HOME``, ``LANG``/``LC_*``, ``TERM``, …),
the CLI's own namespace (``ANTHROPIC_*``, ``CLAUDE_CODE_*``, ``CLAUDE_CONFIG_DIR``) with empty values
treated as unset, the variables the operator names in ``AGENT_ENV_PASSTHROUGH``, the "quiet" variables
that keep the CLI off Anthropic's own hosts, and what voicecoder itself sets (retries, config dir, the
run marker). No voicecoder setting (bot token, webhook secret and path, STT keys, database paths) is in
any of those sets, so none can reach the agent, whatever else the server's environment holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "BASE_NAMES",
    "CLI_NAMES",
    "CLI_PREFIXES",
    "QUIET_ENV",
    "agent_environment",
    "config_dir_problem",
    "effective_config_dir",
]

#: Without these the CLI talks to Anthropic's own hosts whatever ANTHROPIC_BASE_URL says.
QUIET_ENV: Mapping[str, str] = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}

#: What a shell and the tools it runs expect to find.
BASE_NAMES = frozenset(
    {"PATH", "HOME", "LANG", "LANGUAGE", "TERM", "COLORTERM", "NO_COLOR", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL"}
)
BASE_PREFIXES = ("LC_",)
#: The CLI's own settings and credentials (documented in its environment-variable reference).
CLI_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_")
CLI_NAMES = frozenset(
    {
        "CLAUDE_CONFIG_DIR",
        "DISABLE_AUTOUPDATER",
        "DISABLE_AUTO_COMPACT",
        "DISABLE_COMPACT",
        "API_TIMEOUT_MS",
        "BASH_DEFAULT_TIMEOUT_MS",
        "BASH_MAX_TIMEOUT_MS",
        "MAX_THINKING_TOKENS",
        "MAX_MCP_OUTPUT_TOKENS",
        "MCP_TIMEOUT",
        "IS_SANDBOX",
    }
)


def _allowed(name: str, passthrough: frozenset[str]) -> bool:
    return (
        name in BASE_NAMES
        or name.startswith(BASE_PREFIXES)
        or name in CLI_NAMES
        or name.startswith(CLI_PREFIXES)
        or name in passthrough
    )


def agent_environment(
    source: Mapping[str, str],
    *,
    passthrough: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
    config_dir: Path | None = None,
    max_retries: int | None = None,
) -> dict[str, str]:
    """
    The agent's environment, built from allow-lists only.

    The allow-listed names of *source* (voicecoder's own environment), then *extra* (the configured CLI
    variables, e.g. from a ``.env`` file), the quiet variables, the retry cap and the config dir. An empty
    ``CLAUDE_CONFIG_DIR`` (or any empty CLI variable) counts as unset.
    """
    names = frozenset(passthrough)
    env = {k: v for k, v in source.items() if _allowed(k, names)}
    env.update(extra or {})
    for name in [k for k, v in env.items() if not v and (k in CLI_NAMES or k.startswith(CLI_PREFIXES))]:
        del env[name]
    env.update(QUIET_ENV)
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    if config_dir is not None:
        env["CLAUDE_CONFIG_DIR"] = str(config_dir)
    return env


def effective_config_dir(env: Mapping[str, str]) -> Path:
    """Where the CLI keeps its login and transcripts with *env*: ``$CLAUDE_CONFIG_DIR`` or ``$HOME/.claude``."""
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"]).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".claude"


def config_dir_problem(config_dir: Path, workspace: Path) -> str | None:
    """Why *config_dir* must not be used with *workspace* (it lies inside it), or None."""
    try:
        inside = config_dir.resolve().is_relative_to(workspace.resolve())
    except OSError:
        return None
    if not inside:
        return None
    return (
        f"The Claude CLI's config dir {config_dir} is inside the workspace {workspace}: its login, backups and "
        "transcripts would land in the repository and in the diffs you approve. Use a config dir outside the "
        "workspace (the CLI's default, ~/.claude, is fine)."
    )
