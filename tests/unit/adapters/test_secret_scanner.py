from __future__ import annotations

import random
from pathlib import Path

import pytest

from voicecoder.adapters.detect_secrets_scanner import DetectSecretsScanner, added_lines
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.domain.model import Diff, TurnId
from voicecoder.domain.ports import SecretScanner

# Made-up keys of each shape, generated rather than written out (no key-shaped literal sits in the repository),
# from a fixed seed: the test ids, and so the collected tests, are the same in every process and on every run.
_RNG = random.Random(20261126)


def _chars(n: int, alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


TELEGRAM = f"{_RNG.randrange(10**8, 10**9)}:{_chars(35)}"
ANTHROPIC = f"sk-ant-api03-{_chars(40)}"
OPENAI = f"sk-proj-{_chars(48)}"
DEEPGRAM = _chars(40, "0123456789abcdef")
ASSEMBLYAI = _chars(32, "0123456789abcdef")


@pytest.fixture(name="scanner")
def _scanner() -> DetectSecretsScanner:
    return DetectSecretsScanner()


class TestAddedLines:
    def test_numbers_follow_the_new_file(self) -> None:
        """Added lines carry their line number in the new file; context and removed lines are skipped."""
        unified = (
            "diff --git a/a.py b/a.py\nindex 1..2 100644\n--- a/a.py\n+++ b/a.py\n"
            "@@ -1,3 +1,4 @@\n one\n-two\n+TWO\n+++plus\n three\n"
            "@@ -10,2 +11,2 @@\n ten\n-eleven\n+ELEVEN\n"
        )

        assert list(added_lines(unified)) == [("a.py", 2, "TWO"), ("a.py", 3, "++plus"), ("a.py", 12, "ELEVEN")]

    def test_only_lf_breaks_lines(self) -> None:
        """A CR or form feed inside an added line does not shift the line numbers."""
        unified = "diff --git a/b b/b\n--- /dev/null\n+++ b/b\n@@ -0,0 +1,3 @@\n+one\rstill one\n+two\x0c\n+three\n"

        assert [(n, text) for _, n, text in added_lines(unified)] == [
            (1, "one\rstill one"),
            (2, "two\x0c"),
            (3, "three"),
        ]


class TestDetectSecretsScanner:
    async def test_finds_planted_tokens_in_a_real_diff(self, scanner: SecretScanner, tmp_path: Path) -> None:
        """A Telegram token and an Anthropic key planted by a turn are reported at file:line."""
        workspace = DulwichWorkspace(tmp_path / "repo")
        await workspace.open()
        baseline = await workspace.begin_turn(TurnId("t1"))
        config = tmp_path / "repo" / "config.py"
        config.write_text(f'NAME = "bot"\nBOT_TOKEN = "{TELEGRAM}"\n\nCLAUDE = "{ANTHROPIC}"\n')
        diff = await workspace.changes_since(baseline)

        findings = await scanner.scan(diff)

        located = sorted((f.path, f.line, f.kind) for f in findings)
        assert located == [("config.py", 2, "Telegram bot token"), ("config.py", 4, "Anthropic API key")]
        for finding in findings:
            for secret in (TELEGRAM, ANTHROPIC):
                assert secret not in str(finding)
                assert secret not in repr(finding)
        assert str(findings[0]).endswith(f"{findings[0].path}:{findings[0].line}")

    @pytest.mark.parametrize(
        ("line", "kind"),
        [
            (f"OPENAI_API_KEY={OPENAI}", "OpenAI API key"),
            (f'deepgram_api_key: "{DEEPGRAM}"', "Deepgram API key"),
            (f"ASSEMBLYAI_KEY = '{ASSEMBLYAI}'", "AssemblyAI API key"),
            ("aws = 'AKIAIOSFODNN7EXAMPLE'", "AWS Access Key"),
            ("-----BEGIN RSA PRIVATE KEY-----", "Private Key"),
        ],
    )
    async def test_each_rule_fires(self, scanner: SecretScanner, line: str, kind: str) -> None:
        """Our provider rules and detect-secrets' detectors each recognise their key format."""
        diff = Diff(unified=f"diff --git a/k b/k\n--- /dev/null\n+++ b/k\n@@ -0,0 +1,2 @@\n+# keys\n+{line}\n")

        findings = await scanner.scan(diff)

        assert [(f.path, f.line, f.kind) for f in findings] == [("k", 2, kind)]

    async def test_removed_and_context_lines_are_ignored(self, scanner: SecretScanner) -> None:
        """A secret the turn deletes, or one that was already there, is not the turn's finding."""
        unified = (
            f"diff --git a/k b/k\n--- a/k\n+++ b/k\n@@ -1,2 +1,2 @@\n KEEP = '{ANTHROPIC}'\n"
            f"-OLD = '{TELEGRAM}'\n+OLD = None\n"
        )

        assert await scanner.scan(Diff(unified=unified)) == []

    async def test_ordinary_code_is_clean(self, scanner: SecretScanner) -> None:
        """Hashes, ids and ordinary code in added lines produce no finding."""
        unified = (
            "diff --git a/m.py b/m.py\n--- /dev/null\n+++ b/m.py\n@@ -0,0 +1,4 @@\n"
            "+COMMIT = '3f786850e387550fdab836ed7e6dc881de23001b'\n+def greet(name: str) -> str:\n"
            "+    return f'hello {name}'\n+TIMEOUT = 12345678\n"
        )

        assert await scanner.scan(Diff(unified=unified)) == []

    async def test_a_failing_detector_is_a_finding(self) -> None:
        """A crash inside the scanner becomes a finding instead of an exception."""
        scanner = DetectSecretsScanner()
        scanner._detectors.append(("broken", _explode))
        diff = Diff(unified="diff --git a/x b/x\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+hello\n")

        findings = await scanner.scan(diff)

        assert [f.kind for f in findings] == ["secret scan failed (RuntimeError)"]


def _explode(text: str) -> list[str]:
    raise RuntimeError(text)
