from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from voicecoder.adapters.claude_node import NodeRuntime, find_cli_package, parse_version, satisfies

REPO = Path(__file__).resolve().parents[3]


class TestSatisfies:
    @pytest.mark.parametrize(
        ("version", "requirement", "expected"),
        [
            ("v22.0.0", ">=22.0.0", True),
            ("v22.12.1", ">=22.0.0", True),
            ("v20.19.2", ">=22.0.0", False),
            ("v18.19.0", ">=18.0.0", True),
            ("v20.19.0", "^20.19.0 || >=22.12.0", True),
            ("v22.11.0", "^20.19.0 || >=22.12.0", False),
            ("v23.1.0", "^20.19.0 || >=22.12.0", True),
            ("v22.3.0", "22.x", True),
            ("v23.0.0", "22", False),
            ("v22.3.4", "~22.3.0", True),
            ("v22.4.0", "~22.3.0", False),
            ("v21.0.0", ">=18 <21", False),
            ("v20.1.0", ">=18 <21", True),
            ("v0.1.5", "^0.1.2", True),
            ("v0.2.0", "^0.1.2", False),
            ("v22.0.0", "*", True),
        ],
    )
    def test_npm_ranges(self, version: str, requirement: str, expected: bool) -> None:
        """The engines ranges npm packages use are read as npm reads them."""
        parsed = parse_version(version)

        assert parsed is not None
        assert satisfies(parsed, requirement) is expected

    def test_unreadable_range_is_unknown(self) -> None:
        """A range this reader does not understand is None, not a guess."""
        assert satisfies((22, 0, 0), ">=22 && <23") is None

    @pytest.mark.parametrize("text", ["", "node", "v", "22.a.1"])
    def test_not_a_version(self, text: str) -> None:
        """Garbage from `node --version` is not a version."""
        assert parse_version(text) is None


def fake_cli(root: Path, *, engines: str, script: bool) -> Path:
    """An npm-installed CLI layout: node_modules/.bin/claude → the package's entry point."""
    package = root / "node_modules" / "@anthropic-ai" / "claude-code"
    (package / "bin").mkdir(parents=True)
    (package / "package.json").write_text(
        json.dumps({"name": "@anthropic-ai/claude-code", "version": "9.9.9", "engines": {"node": engines}})
    )
    entry = package / ("cli.js" if script else "bin/claude.exe")
    entry.write_text("#!/usr/bin/env node\n" if script else "\x7fELF")
    entry.chmod(0o755)
    bin_dir = root / "node_modules" / ".bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(entry)
    return bin_dir / "claude"


def fake_node(root: Path, version: str) -> Path:
    node = root / "node"
    node.write_text(f"#!/bin/sh\necho {version}\n")
    node.chmod(0o755)
    return node


class TestNodeRuntime:
    def test_finds_the_real_pinned_cli(self) -> None:
        """The CLI dev.py installs is found from its .bin link, with its declared engines."""
        claude = REPO / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
        if not claude.exists():
            pytest.skip(reason="the pinned Claude Code CLI is not installed (python3 dev.py test installs it)")

        package = find_cli_package(str(claude))

        assert package is not None
        assert package.version == (REPO / "requirements" / "claude-code-version.txt").read_text().strip()
        assert package.node_requirement is not None

    @pytest.mark.parametrize(
        ("node", "script", "ok", "warning", "says"),
        [
            ("v22.12.0", True, True, False, "v22.12.0 satisfies node >=22.0.0"),
            ("v18.19.0", True, False, False, "the CLI runs on Node"),
            ("v18.19.0", False, True, True, "Node is needed to install/update it"),
        ],
    )
    async def test_node_against_the_declared_engines(
        self, tmp_path: Path, node: str, script: bool, ok: bool, warning: bool, says: str
    ) -> None:
        """
        A Node that satisfies engines is fine; one that does not is an error for a Node-script CLI and a
        warning for a native one (Node is then needed only to install or update it).
        """
        claude = fake_cli(tmp_path / "cli", engines=">=22.0.0", script=script)

        [result] = await NodeRuntime(str(claude), str(fake_node(tmp_path, node))).diagnose()

        assert (result.ok, result.warning) == (ok, warning)
        assert says in result.detail
        assert result.name == "Node.js"
        if not ok or warning:
            assert result.fix is not None
            assert ">=22.0.0" in result.fix

    async def test_missing_node(self, tmp_path: Path) -> None:
        """No node at all, with a Node-script CLI, is an error that says what to install."""
        claude = fake_cli(tmp_path / "cli", engines=">=22.0.0", script=True)

        [result] = await NodeRuntime(str(claude), str(tmp_path / "no-node")).diagnose()

        assert not result.ok
        assert "node not found" in result.detail

    async def test_cli_not_installed_by_npm(self, tmp_path: Path) -> None:
        """A CLI that is not an npm package has no engines to compare: Node's version is shown as is."""
        node = fake_node(tmp_path, "v20.1.0")
        standalone = tmp_path / "claude"
        standalone.write_text("#!/bin/sh\n")
        standalone.chmod(0o755)

        [result] = await NodeRuntime(str(standalone), str(node)).diagnose()

        assert result.ok
        assert "v20.1.0" in result.detail
        assert os.access(standalone, os.X_OK)
