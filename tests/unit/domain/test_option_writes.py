"""Writes made through options and operands are checked like redirections: outside the workspace, always asked."""

from __future__ import annotations

import pytest

from voicecoder.domain.model import ToolKind, ToolRequest
from voicecoder.domain.option_writes import writes_by_option
from voicecoder.domain.policy import ToolAction, ToolPolicy
from voicecoder.domain.shell import destructive_reason

WS = "/srv/ws"


@pytest.mark.parametrize(
    ("command", "target"),
    [
        ("curl -o /etc/x https://example.org", "/etc/x"),
        ("curl -sSLo /etc/x https://example.org", "/etc/x"),
        ("curl -sSo/etc/x https://example.org", "/etc/x"),
        ("curl --output=/etc/x https://example.org", "/etc/x"),
        ("curl --out=/etc/x https://example.org", "/etc/x"),
        ("curl -c /etc/jar https://example.org", "/etc/jar"),
        ("wget -O /etc/x https://example.org", "/etc/x"),
        ("wget -qO /etc/x https://example.org", "/etc/x"),
        ("wget -P /etc https://example.org", "/etc"),
        ("git log --output=/etc/x", "/etc/x"),
        ("git diff --output /etc/x", "/etc/x"),
        ("git -C . show --output=/etc/x HEAD", "/etc/x"),
        ("git format-patch -o /etc/p HEAD~1", "/etc/p"),
        ("git archive -o/etc/x.tar HEAD", "/etc/x.tar"),
        ("tar -czf /etc/x.tgz .", "/etc/x.tgz"),
        ("tar czf /etc/x.tgz .", "/etc/x.tgz"),
        ("tar -c -f /etc/x.tar .", "/etc/x.tar"),
        ("tar --create --file=/etc/x.tar .", "/etc/x.tar"),
        ("tar -xf a.tar -C /etc", "/etc"),
        ("zip -r /etc/x.zip src", "/etc/x.zip"),
        ("unzip a.zip -d /etc", "/etc"),
        ("rsync -av src/ /etc/x", "/etc/x"),
        ("rsync -P src /etc/x", "/etc/x"),
        ("scp host:/x /etc/y", "/etc/y"),
        ("find . -fprint /etc/x", "/etc/x"),
        ("sort -o /etc/x a.txt", "/etc/x"),
        ("sort -o/etc/x a.txt", "/etc/x"),
        ("sort --output=/srv/other/x a.txt", "/srv/other/x"),
        ("uniq a.txt /etc/x", "/etc/x"),
        ("git log | sort -o /etc/x", "/etc/x"),
    ],
)
def test_a_write_outside_through_an_option_is_destructive(command: str, target: str) -> None:
    """The same command writing inside the workspace is not flagged: only where it writes differs."""
    reason = destructive_reason(command, WS)
    assert reason is not None
    assert target in reason
    assert destructive_reason(command.replace(target, "out"), WS) is None


@pytest.mark.parametrize(
    "command",
    [
        "git log --output=.git/hooks/pre-commit",
        "curl -o .git/hooks/post-checkout https://example.org",
        "tar -xf a.tar -C .git",
    ],
)
def test_a_write_into_git_through_an_option_is_destructive(command: str) -> None:
    assert destructive_reason(command, WS) == "it writes into .git/, the repository's own data"


@pytest.mark.parametrize(
    "command",
    [
        "curl -sSL https://example.org",
        "curl -fsSL https://example.org -o-",
        "wget -qO- https://example.org",
        "git log -n 5 --stat",
        "git format-patch -o patches HEAD~1",
        "tar -tf /srv/other/a.tar",
        "tar -xzf a.tgz",
        "sort -rn -k2 -t, a.txt",
        "uniq -c a.txt",
        "scp a.txt host:/srv/x",
        "rsync -av src/ host:/srv/x",
        "find . -name '*.py' -print",
    ],
)
def test_reads_and_writes_inside_are_not_flagged(command: str) -> None:
    assert destructive_reason(command, WS) is None


def test_a_rule_does_not_let_an_option_write_outside() -> None:
    """Even `Bash(git log *)`, which covers the command, leaves `git log --output=/etc/x` to the user."""
    policy = ToolPolicy(workspace=WS, allow=("Bash(git log *)",))
    outside = policy.decide(ToolRequest("r", "Bash", ToolKind.SHELL, "Bash", command="git log --output=/etc/x"))
    inside = policy.decide(ToolRequest("r", "Bash", ToolKind.SHELL, "Bash", command="git log --output=log.txt"))

    assert outside.action is ToolAction.ASK
    assert outside.flagged == "it writes to /etc/x, outside the workspace"
    assert inside.action is ToolAction.ALLOW


def test_nothing_to_read_is_nothing_written() -> None:
    assert writes_by_option(()) == []
    assert writes_by_option(("tar",)) == []
    assert writes_by_option(("git",)) == []
