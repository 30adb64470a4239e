"""
Environment variables that make a program run code other than its own.

A command line can set variables for the command it runs (``LD_PRELOAD=./x.so git log``, ``env GIT_PAGER=sh git
log``). Some make any program load a library, run a pager, an editor, a hook or a start-up file, or look for
programs elsewhere: set that way, they turn a session rule for a harmless command (``git log *``) into running
any code, so such a command is never covered by a rule and its rule is never offered. Text analysis, not a
sandbox, as in `voicecoder.domain.shell`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["runs_other_code"]

_CODE_VARIABLE_PREFIXES = ("LD_", "DYLD_", "GIT_", "BASH_FUNC_", "npm_config_", "NPM_CONFIG_")
_CODE_VARIABLES = frozenset(
    {"PATH", "BASH_ENV", "ENV", "SHELLOPTS", "PS4", "GCONV_PATH", "PAGER", "MANPAGER", "EDITOR", "VISUAL"}
    | {"LESSOPEN", "LESSCLOSE", "NODE_OPTIONS", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB"}
    | {"PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONBREAKPOINT", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"}
    | {"PYTEST_ADDOPTS", "PYTEST_PLUGINS", "MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKEFILES", "SHELL", "CDPATH"}
)


def runs_other_code(variables: Iterable[str]) -> bool:
    """Whether setting any of *variables* (names) can make a program load or run other code."""
    return any(name.startswith(_CODE_VARIABLE_PREFIXES) or name in _CODE_VARIABLES for name in variables)
