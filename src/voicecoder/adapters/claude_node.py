"""
The Node.js runtime against what the installed Claude Code CLI declares in its ``package.json`` ``engines``.

The pinned CLI declares the Node versions it supports; an image or server with an older Node (Debian bookworm
ships 18) installs it with warnings and may fail on upgrade or at run time. `NodeRuntime` reads the requirement
from the CLI package that `CLAUDE_BINARY` resolves to, asks ``node --version``, and reports one Diagnostic for
/info and `voicecoder doctor`. When the CLI is a native executable, Node is needed only to install or update it,
so a mismatch is a warning; when the CLI is a Node script, it is an error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import anyio
import attrs

from voicecoder.domain.model import Diagnostic

CLI_PACKAGE = "@anthropic-ai/claude-code"
_VERSION_RE = re.compile(r"v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?(?:[-+][0-9A-Za-z.-]*)?")
_COMPARATOR_RE = re.compile(r"(>=|<=|>|<|=|\^|~)?\s*(" + _VERSION_RE.pattern + r")")

Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    """``v22.12.0`` → (22, 12, 0); None if it is not a version."""
    match = _VERSION_RE.fullmatch(text.strip())
    if match is None:
        return None
    parts = [int(p) if p and p.isdigit() else 0 for p in match.groups()]
    return parts[0], parts[1], parts[2]


def _bounds(operator: str, match: re.Match[str]) -> list[tuple[str, Version]]:
    """One npm comparator as plain (operator, version) pairs; partial versions (22, 22.x) become ranges."""
    major = int(match.group(3))
    minor_text, patch_text = match.group(4), match.group(5)
    minor = int(minor_text) if minor_text and minor_text.isdigit() else None
    patch = int(patch_text) if patch_text and patch_text.isdigit() else None
    low = (major, minor or 0, patch or 0)
    if operator == "^":
        high = (major + 1, 0, 0) if major else ((0, (minor or 0) + 1, 0) if minor else (0, 0, (patch or 0) + 1))
        return [(">=", low), ("<", high)]
    if operator == "~":
        high = (major, (minor or 0) + 1, 0) if minor is not None else (major + 1, 0, 0)
        return [(">=", low), ("<", high)]
    if operator in {"", "="} and (minor is None or patch is None):
        high = (major + 1, 0, 0) if minor is None else (major, minor + 1, 0)
        return [(">=", low), ("<", high)]
    return [(operator or "=", low)]


def satisfies(version: Version, requirement: str) -> bool | None:
    """Whether *version* meets an npm ``engines`` range (``>=22``, ``^20.19 || >=22``, ``22.x``); None if unreadable."""
    checks = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        "=": lambda a, b: a == b,
    }
    for alternative in requirement.split("||"):
        text = alternative.strip()
        if text in {"", "*", "x"}:
            return True
        position, pairs = 0, []
        while position < len(text):
            if text[position].isspace():
                position += 1
                continue
            match = _COMPARATOR_RE.match(text, position)
            if match is None:
                return None
            pairs.extend(_bounds(match.group(1) or "", match))
            position = match.end()
        if all(checks[op](version, bound) for op, bound in pairs):
            return True
    return False


@attrs.frozen
class CliPackage:
    """The installed CLI package: its version, its ``engines.node`` and whether its entry point is a Node script."""

    directory: Path
    version: str
    node_requirement: str | None
    runs_on_node: bool


def find_cli_package(binary: str) -> CliPackage | None:
    """The CLI package *binary* (a name on PATH or a path) belongs to; None when it is not an npm install."""
    found = shutil.which(binary)
    if found is None:
        return None
    entry = Path(found).resolve()
    for directory in list(entry.parents)[:4]:
        manifest = directory / "package.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("name") != CLI_PACKAGE:
            continue
        engines = data.get("engines")
        requirement = engines.get("node") if isinstance(engines, dict) else None
        return CliPackage(
            directory=directory,
            version=str(data.get("version", "?")),
            node_requirement=str(requirement) if requirement else None,
            runs_on_node=_is_node_script(entry),
        )
    return None


def _is_node_script(path: Path) -> bool:
    if path.suffix in {".js", ".cjs", ".mjs"}:
        return True
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"node" in first


def _node_version(node: str) -> str | None:
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@attrs.frozen
class NodeRuntime:
    """Diagnosable: the Node.js on PATH against the Claude Code CLI's declared ``engines.node``."""

    claude_binary: str = "claude"
    node_binary: str = "node"

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [await anyio.to_thread.run_sync(self._diagnose)]

    def _diagnose(self) -> Diagnostic:
        package = find_cli_package(self.claude_binary)
        requirement = package.node_requirement if package else None
        needed = f"node {requirement}" if requirement else "a current Node.js"
        declared = f"the Claude Code CLI {package.version} declares {needed}" if package else "no npm-installed CLI"
        hard = package is not None and package.runs_on_node
        fix = (
            f"Install a Node.js that satisfies {requirement or 'the CLI'} (the Docker image ships one; Debian "
            "bookworm's nodejs is 18): e.g. the official Node.js binaries or your distribution's newer release."
        )
        node = shutil.which(self.node_binary)
        version_text = _node_version(node) if node else None
        if version_text is None:
            detail = f"node not found on PATH; {declared}"
            if package is None:
                return Diagnostic("Node.js", ok=True, warning=True, detail=detail, fix=fix)
            return Diagnostic("Node.js", ok=not hard, warning=not hard, detail=detail, fix=fix)
        version = parse_version(version_text)
        verdict = satisfies(version, requirement) if version and requirement else None
        if verdict is None:
            reason = "cannot compare" if requirement else "nothing to compare"
            return Diagnostic("Node.js", ok=True, detail=f"{version_text} ({declared}; {reason})")
        if verdict:
            return Diagnostic("Node.js", ok=True, detail=f"{version_text} satisfies {needed} ({declared})")
        use = "the CLI runs on Node" if hard else "the CLI is a native executable; Node is needed to install/update it"
        return Diagnostic(
            "Node.js",
            ok=not hard,
            warning=not hard,
            detail=f"{version_text} does not satisfy {needed} ({declared}; {use})",
            fix=fix,
        )


__all__ = ["CliPackage", "NodeRuntime", "find_cli_package", "parse_version", "satisfies"]
