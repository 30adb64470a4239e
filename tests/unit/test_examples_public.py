"""
The promise of docs/embedding.md about examples/: each bot is at most 80 lines, uses voicecoder's public names only
(``voicecoder``, ``voicecoder.adapters``, ``voicecoder.testing``; nothing private or internal), and is type-checked
with ``mypy --strict`` (by `python3 dev.py lint`, whose configuration this checks). They run end to end in
tests/integration/test_examples.py.
"""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
PUBLIC_MODULES = {"voicecoder", "voicecoder.adapters", "voicecoder.testing"}
MAX_LINES = 80


def test_every_example_exists() -> None:
    """One per framework the README names for embedding: aiogram, python-telegram-bot, Telethon."""
    assert [p.name for p in EXAMPLES] == ["aiogram_bot.py", "ptb_bot.py", "telethon_bot.py"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_at_most_80_lines(example: Path) -> None:
    lines = example.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"{example.name} has {len(lines)} lines"


def voicecoder_imports(tree: ast.AST) -> list[tuple[str, str | None]]:
    """(module, name) of every import of voicecoder; name None for ``import voicecoder.x``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names if alias.name.split(".")[0] == "voicecoder")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "voicecoder":
            found.extend((node.module, alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_imports_only_public_names(example: Path) -> None:
    """Only the public modules, only names in their ``__all__`` (so never an underscore name), nothing relative."""
    tree = ast.parse(example.read_text(encoding="utf-8"))
    imports = voicecoder_imports(tree)
    assert imports, "an example that does not use voicecoder"
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    for module, name in imports:
        assert module in PUBLIC_MODULES, f"{example.name} imports the internal module {module}"
        assert name is not None, f"{example.name} imports {module} as a module; import its names"
        assert not name.startswith("_")
        assert name in importlib.import_module(module).__all__, f"{module}.{name} is not public"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_reaches_into_nothing_private(example: Path) -> None:
    """No ``obj._attribute``: what the example touches is documented API (dunders aside)."""
    tree = ast.parse(example.read_text(encoding="utf-8"))
    private = [
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    ]
    assert private == []


def test_mypy_strict_covers_the_examples() -> None:
    """`dev.py lint` runs mypy with the project's configuration: strict, over examples/ too."""
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["strict"] is True
    assert "examples" in mypy["files"]
    assert "examples/**" not in str(mypy.get("overrides", ""))
    dev = (REPO / "dev.py").read_text(encoding="utf-8")
    assert 'run(BIN / "mypy")' in dev
