from __future__ import annotations

import re
from pathlib import Path

ADR_DIR = Path(__file__).resolve().parents[2] / "docs" / "adr"


class TestAdrs:
    def test_names_and_numbers(self) -> None:
        """
        ADR files are NNNN-kebab-case.md, numbers are unique, and the first is the ADR about ADRs.
        """
        names = sorted(p.name for p in ADR_DIR.glob("*.md"))
        numbers = [name[:4] for name in names]

        assert names
        assert all(re.fullmatch(r"\d{4}-[a-z0-9-]+\.md", n) for n in names), names
        assert len(numbers) == len(set(numbers))
        assert names[0].startswith("0001-record-architecture-decisions")

    def test_front_matter_and_sections(self) -> None:
        """
        Every ADR states its status and date and has the MADR-minimal sections.
        """
        for path in ADR_DIR.glob("*.md"):
            text = path.read_text(encoding="utf-8")
            assert re.search(r"^status: (accepted|proposed|deprecated|superseded by .+)$", text, re.MULTILINE), path
            assert re.search(r"^date: \d{4}-\d{2}-\d{2}$", text, re.MULTILINE), path
            assert "## Context and Problem Statement" in text, path
            assert "## Decision Outcome" in text, path
