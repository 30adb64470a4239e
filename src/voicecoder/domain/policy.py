"""The policies: ApprovalPolicy (what a finished turn needs before it lands) and ToolPolicy (what the agent may run)."""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs

from voicecoder.domain.model import Diff, SecretFinding, ToolKind, ToolRequest
from voicecoder.domain.shell import covered_by, destructive_reason, private_reason, rule_specifier


class Verdict(enum.Enum):
    NO_CHANGES = "no changes"
    ASK = "ask"
    BLOCKED = "blocked"
    AUTO_APPROVE = "auto-approve"


@attrs.frozen
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    rule: str | None = None


@attrs.frozen
class ApprovalPolicy:
    """
    Decides what a finished turn needs; the safe default is to always ask.

    Auto-approval is opt-in and only when *every* changed path matches an allow-listed glob, nothing looks
    like a secret, and no file's agent edits overlap the developer's uncommitted ones.
    """

    auto_approve_globs: tuple[str, ...] = ()

    def decide(self, diff: Diff, findings: Sequence[SecretFinding] = ()) -> Decision:
        if diff.is_empty:
            return Decision(Verdict.NO_CHANGES)
        if findings:
            return Decision(Verdict.BLOCKED, tuple(f"possible secret: {f}" for f in findings))
        # A file whose agent edits overlap the developer's needs their explicit choice: never auto-approved.
        if self.auto_approve_globs and not diff.overlapping:
            matched = [self._matching_glob(path) for path in diff.paths]
            if all(g is not None for g in matched):
                rules = sorted({g for g in matched if g is not None})
                return Decision(Verdict.AUTO_APPROVE, rule=", ".join(rules))
        return Decision(Verdict.ASK)

    def _matching_glob(self, path: str) -> str | None:
        for glob in self.auto_approve_globs:
            if fnmatch.fnmatchcase(path, glob):
                return glob
        return None


# --- tools --------------------------------------------------------------------------------------


class ToolApprovalMode(enum.Enum):
    """How much of what the agent does is asked on the phone (the operator's setting)."""

    ASK = "ask"
    """Ask before every edit too (each question shows a diff preview)."""
    AUTO_EDITS = "auto-edits"
    """Edits inside the workspace go ahead (Approve/Reject covers them); commands, fetches and the rest ask."""
    OFF = "off"
    """No questions: the CLI's own permission mode decides (commands are refused, as before voicecoder asked)."""


class ToolAction(enum.Enum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


@attrs.frozen
class ToolRuling:
    """
    What the `ToolPolicy` says about one `ToolRequest`.

    ``reason``: for DENY, what the agent reads; ``flagged``: why a command always asks (the destructive gate);
    ``rule``: for ALLOW the rule that allowed it, for ASK the rule "allow for this session" would add (None: that
    answer is not offered); ``uncovered``: a session rule for this tool exists but does not cover this request.
    """

    action: ToolAction
    reason: str = ""
    flagged: str | None = None
    rule: str | None = None
    uncovered: str | None = None


_RULE_RE = re.compile(r"^(?P<tool>[A-Za-z_][A-Za-z0-9_-]*)(?:\((?P<spec>.*)\))?$", re.DOTALL)


@attrs.frozen
class ToolRule:
    """
    A permission rule in Claude Code's syntax: ``Tool`` or ``Tool(specifier)``.

    ``Bash(pytest *)`` (a command pattern, checked on every command of a line), ``Edit(src/**)`` (paths inside the
    workspace; covers every editing tool), ``WebFetch(domain:example.com)``, ``WebSearch``, ``mcp__server`` or
    ``mcp__server__tool``, or any other tool's bare name.
    """

    tool: str
    specifier: str | None = None

    @classmethod
    def parse(cls, text: str) -> ToolRule:
        """
        Read one rule.

        Raises:
            ValueError: *text* is not ``Tool`` or ``Tool(specifier)`` (the message says which form is expected).
        """
        match = _RULE_RE.match(text.strip())
        if match is None or (match.group("spec") is not None and not match.group("spec").strip()):
            raise ValueError(
                f"{text.strip()!r} is not a tool rule; write Tool or Tool(specifier), e.g. Bash(pytest *), "
                "Edit(src/**), WebFetch(domain:example.com)"
            )
        spec = match.group("spec")
        return cls(match.group("tool"), spec.strip() if spec is not None else None)

    def __str__(self) -> str:
        return self.tool if self.specifier is None else f"{self.tool}({self.specifier})"


_EDIT_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})


def _relative(path: str, root: str) -> str | None:
    root = root.rstrip("/")
    if path == root:
        return ""
    return path[len(root) + 1 :] if path.startswith(root + "/") else None


def _glob(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
            if pattern.startswith("/", i):
                i += 1
                parts.append("/?")
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z")


def _host(url: str | None) -> str | None:
    if not url:
        return None
    host = urlsplit(url if "//" in url else "//" + url).hostname
    return host.lower() if host else None


@attrs.frozen
class ToolPolicy:
    """
    Decides, for each tool the agent asks for, whether it runs, waits for the user, or is refused.

    Paths outside *workspace* are refused with a reason the agent reads. Read-only tools go ahead. Edits inside
    the workspace go ahead in ``auto-edits`` mode (the turn's own Approve/Reject covers them) and ask in ``ask``
    mode; writes into ``.git/`` always ask. A shell command always asks when `destructive_reason` flags it, even
    if a rule would allow it; otherwise a matching rule (the operator's *allow* rules or the session's) lets it
    run, and anything else asks. Fetches, MCP tools and unknown tools ask unless a rule allows them.

    *private* paths (absolute: voicecoder's env file, its data dir, the CLI's login) are never the agent's: a file
    tool there is refused, and a command that names them (or a process's environment under /proc) always asks.
    """

    workspace: str
    mode: ToolApprovalMode = ToolApprovalMode.AUTO_EDITS
    allow: tuple[str, ...] = ()
    home: str | None = None
    private: tuple[str, ...] = ()

    def decide(self, request: ToolRequest, session_rules: Sequence[str] = ()) -> ToolRuling:
        if self.mode is ToolApprovalMode.OFF:
            return ToolRuling(ToolAction.ALLOW, rule="approval off")
        for path in request.paths:
            if any(_relative(path, root) is not None for root in self.private):
                return ToolRuling(
                    ToolAction.DENY,
                    reason=(
                        f"{path} is where voicecoder keeps its own settings and secrets; it is not yours to read "
                        "or change. Work inside the workspace."
                    ),
                )
            if _relative(path, self.workspace) is None:
                return ToolRuling(
                    ToolAction.DENY,
                    reason=(
                        f"{path} is outside the workspace {self.workspace}. voicecoder only lets you work inside "
                        "the workspace: do this inside it, or tell the user what to change by hand."
                    ),
                )
        rules = [ToolRule.parse(r) for r in (*self.allow, *session_rules)]
        match request.kind:
            case ToolKind.READ:
                return ToolRuling(ToolAction.ALLOW, rule="read-only")
            case ToolKind.SHELL:
                return self._shell(request, rules)
            case ToolKind.EDIT:
                return self._edit(request, rules)
        matched = next((r for r in rules if self._covers(r, request)), None)
        if matched is not None:
            return ToolRuling(ToolAction.ALLOW, rule=str(matched))
        return ToolRuling(ToolAction.ASK, rule=self.suggest(request))

    def _shell(self, request: ToolRequest, rules: Sequence[ToolRule]) -> ToolRuling:
        command = request.command or ""
        flagged = private_reason(command, self.private, self.workspace, home=self.home) or destructive_reason(
            command, self.workspace, home=self.home
        )
        if flagged is not None:
            return ToolRuling(ToolAction.ASK, flagged=flagged)
        bash = [r for r in rules if r.tool == "Bash"]
        if any(r.specifier is None for r in bash):
            return ToolRuling(ToolAction.ALLOW, rule="Bash")
        covered = covered_by(command, [r.specifier or "" for r in bash], self.workspace, home=self.home)
        if covered is not None:
            return ToolRuling(ToolAction.ALLOW, rule=f"Bash({covered})")
        uncovered = None
        if bash:
            uncovered = (
                f"your rule{'s' if len(bash) > 1 else ''} {', '.join(str(r) for r in bash)} "
                "do not cover every command of this line"
                if len(bash) > 1
                else f"your rule {bash[0]} does not cover every command of this line"
            )
        return ToolRuling(ToolAction.ASK, rule=self.suggest(request), uncovered=uncovered)

    def _edit(self, request: ToolRequest, rules: Sequence[ToolRule]) -> ToolRuling:
        if any(_relative(p, self.workspace + "/.git") is not None for p in request.paths):
            return ToolRuling(ToolAction.ASK, flagged="it writes into .git/, the repository's own data")
        if self.mode is ToolApprovalMode.AUTO_EDITS:
            return ToolRuling(ToolAction.ALLOW, rule="auto-edits")
        matched = next((r for r in rules if self._covers(r, request)), None)
        if matched is not None:
            return ToolRuling(ToolAction.ALLOW, rule=str(matched))
        return ToolRuling(ToolAction.ASK, rule=self.suggest(request))

    def _covers(self, rule: ToolRule, request: ToolRequest) -> bool:
        if rule.tool == "Edit" and request.kind is ToolKind.EDIT:
            if rule.specifier is None:
                return True
            pattern = _glob(rule.specifier.lstrip("/"))
            relative = [_relative(p, self.workspace) for p in request.paths]
            return bool(relative) and all(r is not None and pattern.match(r) for r in relative)
        if rule.tool.startswith("mcp__") and request.kind is ToolKind.MCP and rule.specifier is None:
            return request.tool == rule.tool or request.tool.startswith(rule.tool + "__")
        if rule.tool != request.tool:
            return False
        if rule.specifier is None:
            return True
        if rule.tool == "WebFetch" and rule.specifier.startswith("domain:"):
            return _host(request.url) == rule.specifier.removeprefix("domain:").strip().lower()
        return False

    def suggest(self, request: ToolRequest) -> str | None:
        """The rule "allow for this session" would add for *request* (None: not offered)."""
        match request.kind:
            case ToolKind.SHELL:
                # Offered only when it would cover this very line: `cat ~/.ssh/x` asks again under `cat *`.
                command = request.command or ""
                spec = rule_specifier(command)
                if spec is None or covered_by(command, [spec], self.workspace, home=self.home) is None:
                    return None
                return f"Bash({spec})"
            case ToolKind.EDIT:
                relative = [_relative(p, self.workspace) for p in request.paths]
                if not relative or any(r is None or not r for r in relative):
                    return None
                tops = {r.split("/", 1)[0] if "/" in r else r for r in relative if r is not None}
                if len(tops) != 1:
                    return "Edit"
                (top,) = tops
                nested = any(r is not None and "/" in r for r in relative)
                return f"Edit({top}/**)" if nested else f"Edit({top})"
            case ToolKind.FETCH:
                host = _host(request.url)
                if request.tool == "WebFetch":
                    return f"WebFetch(domain:{host})" if host else None
                return request.tool
            case _:
                return request.tool if _RULE_RE.match(request.tool) else None
