"""
The contract as a third party meets it: docs/stt-contract.md's own example must pass all of it, and every
broken provider of `voicecoder.testing.gallery` must fail exactly the tests `BROKEN` names.

The example's two files are extracted from the page (so the page and this test cannot drift) and run with
pytester in a fresh directory: no project conftest, no pytest configuration, the contract's own backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicecoder.simulators.stt import EngineRecognizer
from voicecoder.testing.gallery import BROKEN

DOC = Path(__file__).resolve().parents[2] / "docs" / "stt-contract.md"

pytestmark = pytest.mark.slow


def doc_files() -> dict[str, str]:
    """The ``name.py`` files of the page: a line "`name.py`:" followed by a python code block."""
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"^`([\w]+\.py)`:\n\n```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL))


@pytest.fixture(name="example")
def _example(pytester: pytest.Pytester, engine_recognizer: EngineRecognizer) -> pytest.Pytester:
    """The page's example in a fresh directory; the session's engine is the shared one it hears with."""
    assert EngineRecognizer.shared() is engine_recognizer
    files = doc_files()
    assert sorted(files) == ["acme_stt.py", "test_acme_contract.py"]
    for name, code in files.items():
        pytester.makepyfile(**{name.removesuffix(".py"): code})
    pytester.syspathinsert()
    return pytester


def failed_tests(result: pytest.RunResult) -> set[str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {report.nodeid.split("::")[-1].split("[")[0] for report in reports if report.failed}


class TestDocumentedExample:
    def test_passes_the_whole_contract(self, example: pytest.Pytester) -> None:
        """The page's provider passes every case, and declares nothing away: nothing is skipped."""
        result = example.runpytest_inprocess("test_acme_contract.py", "-p", "no:cacheprovider")

        outcomes = result.parseoutcomes()
        assert result.ret == 0, result.stdout.str()[-3000:]
        assert outcomes.get("skipped", 0) == 0
        assert outcomes["passed"] >= 30


class TestBrokenProvidersFail:
    @pytest.mark.parametrize("broken", list(BROKEN), ids=lambda mixin: mixin.__name__)
    def test_contract_fails(self, example: pytest.Pytester, broken: type) -> None:
        """The example's provider with one broken behaviour fails the contract tests `BROKEN` names."""
        expected = BROKEN[broken]
        example.makepyfile(
            test_broken=f"""
            import test_acme_contract as doc
            from acme_stt import AcmeTranscriber
            from voicecoder.testing.gallery import {broken.__name__}


            class TestBroken(doc.TestAcmeTranscriber):
                provider = type("Broken", ({broken.__name__}, AcmeTranscriber), {{}})
            """
        )

        result = example.runpytest_inprocess("test_broken.py", "-p", "no:cacheprovider", "-k", " or ".join(expected))

        assert result.ret != 0
        assert failed_tests(result) >= set(expected), result.stdout.str()[-3000:]
