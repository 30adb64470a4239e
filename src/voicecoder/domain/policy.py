"""ApprovalPolicy: what a finished turn needs before its changes may land."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Sequence

import attrs

from voicecoder.domain.model import Diff, SecretFinding


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
