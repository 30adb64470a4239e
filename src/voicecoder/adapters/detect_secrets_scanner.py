"""
`DetectSecretsScanner`: likely secrets in the lines a diff adds, with detect-secrets' detectors and our rules.

Only added lines are scanned (context and removed lines are not the turn's doing). Each detector's
``analyze_string`` is called directly: no global detect-secrets settings are touched (so scanning is
thread-safe) and no "verification" request ever leaves the machine. The noisy detectors (entropy, keyword,
public IP) are off by default because a finding blocks approval.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import anyio.to_thread

from voicecoder.domain.model import Diff, SecretFinding

__all__ = ["DEFAULT_EXCLUDED_DETECTORS", "OUR_RULES", "DetectSecretsScanner", "added_lines"]

logger = logging.getLogger(__name__)

DEFAULT_EXCLUDED_DETECTORS = frozenset(
    {"Base64 High Entropy String", "Hex High Entropy String", "Secret Keyword", "Public IP (ipv4)"}
)

_KEY_VALUE = r"[\w.-]*['\"]?\s*[:=]\s*['\"]?"
OUR_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Telegram bot token", re.compile(r"(?<![\w:])\d{8,10}:[A-Za-z0-9_-]{35}(?![\w-])")),
    ("Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("Deepgram API key", re.compile(r"(?i)deepgram" + _KEY_VALUE + r"([0-9a-f]{40})(?![0-9a-f])")),
    ("AssemblyAI API key", re.compile(r"(?i)assembly_?ai" + _KEY_VALUE + r"([0-9a-f]{32})(?![0-9a-f])")),
)
"""(kind, pattern) rules for the keys voicecoder itself handles."""

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def added_lines(unified: str) -> Iterator[tuple[str, int, str]]:
    """(path, line number in the new file, text) of every line a git-style unified diff adds."""
    path = ""
    old_left = new_left = 0
    new_line = 0
    for raw in unified.split("\n"):  # LF only: a CR or form feed inside a line is content
        if old_left > 0 or new_left > 0:
            tag, text = raw[:1], raw[1:]
            if tag == "+":
                yield path, new_line, text
                new_line += 1
                new_left -= 1
            elif tag == "-":
                old_left -= 1
            elif tag == " " or not raw:
                new_line += 1
                new_left -= 1
                old_left -= 1
            continue
        if raw.startswith("+++ "):
            target = raw[4:]
            path = target.removeprefix("b/")
        elif raw.startswith("diff --git "):
            path = raw.rsplit(" b/", 1)[-1]
        elif match := _HUNK.match(raw):
            old_left = int(match.group(1) or 1)
            new_line = int(match.group(2))
            new_left = int(match.group(3) or 1)


class DetectSecretsScanner:
    """A `SecretScanner` built on detect-secrets' detectors plus rules for voicecoder's own providers."""

    def __init__(
        self,
        *,
        exclude: Iterable[str] = DEFAULT_EXCLUDED_DETECTORS,
        rules: Sequence[tuple[str, re.Pattern[str]]] = OUR_RULES,
    ) -> None:
        # Imported here, not at the top: detect-secrets pulls in requests and urllib3 (~0.1 CPU-s), which the CLI's
        # commands that never scan a diff (`webhook`, `doctor`, a `serve` that fails its checks) need not pay.
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class  # noqa: PLC0415

        excluded = frozenset(exclude)
        plugins: dict[str, Any] = get_mapping_from_secret_type_to_class()
        self._detectors: list[tuple[str, Callable[[str], Iterable[str]]]] = [
            (kind, plugin().analyze_string) for kind, plugin in sorted(plugins.items()) if kind not in excluded
        ]
        self._rules = tuple(rules)

    @property
    def detector_names(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self._rules) + tuple(kind for kind, _ in self._detectors)

    async def scan(self, diff: Diff, /) -> Sequence[SecretFinding]:
        """Findings (path, line, kind), never the secret itself. Raises nothing: a scanner failure is a finding."""
        if not diff.unified:
            return []
        try:
            return await anyio.to_thread.run_sync(self.scan_text, diff.unified)
        except Exception as exc:
            logger.exception("secret scan failed")
            return [SecretFinding(path="(diff)", line=0, kind=f"secret scan failed ({type(exc).__name__})")]

    def scan_text(self, unified: str) -> list[SecretFinding]:
        """Synchronous scan of a unified diff's added lines; one finding per kind and line."""
        findings: dict[tuple[str, int, str], SecretFinding] = {}
        for path, line_no, text in added_lines(unified):
            kinds = [kind for kind, pattern in self._rules if pattern.search(text)]
            if not kinds:
                kinds = [kind for kind, analyze in self._detectors if any(True for _ in analyze(text))]
            for kind in kinds:
                findings.setdefault((path, line_no, kind), SecretFinding(path=path, line=line_no, kind=kind))
        return list(findings.values())
