"""The one redaction: the bot token in every form (plain, URL-encoded, its secret half alone), in logs and chats."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from voicecoder.entrypoints.logs import configure_logging
from voicecoder.redaction import _PATTERNS, Redactor, secret_forms

TOKEN = "123456789:AAH7ExampleSecretHalfOfTheBotToken_x-y"
HALF = TOKEN.split(":", 1)[1]


class TestSecretForms:
    def test_a_bot_token_has_four_forms(self) -> None:
        """The token, URL-encoded with upper- and lower-case hex, and the secret half on its own."""
        assert set(secret_forms(TOKEN)) == {TOKEN, TOKEN.replace(":", "%3A"), TOKEN.replace(":", "%3a"), HALF}

    def test_other_secrets_keep_their_own_forms(self) -> None:
        """A webhook secret has no half; its URL encoding is itself; short values are no secret."""
        assert secret_forms("webhook-Secret_123") == ("webhook-Secret_123",)
        assert secret_forms("abc") == ()


class TestRedactor:
    @pytest.mark.parametrize(
        "leak",
        [
            TOKEN,
            f"https://api.telegram.org/bot{TOKEN}/getMe",
            f"url=https%3A%2F%2Fapi.telegram.org%2Fbot{TOKEN.replace(':', '%3A')}%2FgetMe",
            TOKEN.replace(":", "%3a"),
            f"Unauthorized: invalid token '{HALF}'",
            f"{HALF}:{HALF}",
        ],
    )
    def test_configured_token_never_survives(self, leak: str) -> None:
        """No form of the configured token, nor its secret half, survives."""
        text = Redactor([TOKEN])(f"before {leak} after")

        assert HALF not in text
        assert text.startswith("before ")
        assert text.endswith(" after")
        assert "<redacted>" in text

    @pytest.mark.parametrize(
        "leak",
        [
            "987654321:AAE-unconfigured_token_of_another_bot1",
            "987654321%3AAAE-unconfigured_token_of_another_bot1",
            "sk-ant-api03-abcdefghijklmnop",
            "Authorization: Bearer abc.def.ghi",
        ],
    )
    def test_credential_shapes_are_hidden_unconfigured(self, leak: str) -> None:
        """Well-known credential shapes are hidden even when nobody configured them."""
        assert "unconfigured_token" not in Redactor()(leak)
        assert "abcdefghijklmnop" not in Redactor()(leak)
        assert "abc.def.ghi" not in Redactor()(leak)

    def test_placeholder_and_bytes(self) -> None:
        """A chat-safe placeholder, and documents (bytes) are covered too."""
        redact = Redactor([TOKEN], placeholder="[redacted]", patterns=False)

        assert redact(f"<b>{HALF}</b>") == "<b>[redacted]</b>"
        assert redact.data(f"diff: +TOKEN={TOKEN}\n".encode()) == b"diff: +TOKEN=[redacted]\n"

    def test_guesses_only_where_asked(self) -> None:
        """
        Guessing hides key=value credentials and opaque 40+ character runs, which hides a commit hash too: so logs
        and replies (the default) keep hashes and ordinary words, and only a caller that asks guesses.
        """
        commit = "9f" * 20
        text = f"commit {commit}; password=hunter2hunter2; api-key: abcdef123; keep the token in .env"

        plain, guessed = Redactor()(text), Redactor(placeholder="***", guesses=True)(text)

        assert plain == text
        assert guessed == "commit ***; password=***; api-key: ***; keep the token in .env"


# Pieces of credential shapes and their near misses, so generated text often holds a shape or almost one.
_PIECES = st.sampled_from(
    [
        "12345", "987654321", ":", "%3A", "%3a", "%3", "AAE-unconfigured_token_of_another_bot1_xyz", "sk-", "ant-",
        "proj-", "abcdefghijklmnopqrstuvwxyz", "Authorization", "AUTHORIZATION", "authorizatio", ": ", "Bearer ",
        "token ", " ", "\n", "'", '"', "lane=chat:100012", "lane=100012:message", "duration_ms=12.3", "İ", "ı", "٣٤٥٦٧",
        "12345:AAE-unconfigured_token_of_another_bot1_xyz", "x12345%3aAAE-unconfigured_token_of_a",
        "sk-abcdefghijklmnopqrstuvwxyz", "sk-ant-abcdefghijklmnop", "authorization: BEARER x.y",
    ]
)  # fmt: skip
_TEXTS = st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=12).map("".join)


def _every_shape_scanned(text: str, placeholder: str) -> str:
    """What the redactor did before it searched once for a part of a shape: a scan per shape, always."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + placeholder, text)
    return text


@given(text=_TEXTS)
@example(text="id 12345:AAE-unconfigured_token_of_another_bot1_xyz!")
@example(text="12345%3AAAE-unconfigured_token_of_another_bot1_xyz")
@example(text="key sk-ant-abcdefghijklmnop")
@example(text="update processed lane=100012:message duration_ms=12.3")
@example(text="12345:abcdefghijklmnopqrstuvwxyz0123 and 12345:abcdefghijklmnopqrstuvwxyz012")
@example(text="key sk-proj-abcdefghijklmnopqrstuvwxyz")
@example(text="AuThOrIzAtIoN:\tToKeN abc.def")
def test_the_one_search_before_the_shapes_changes_no_text(text: str) -> None:
    """Skipping the shapes' scans when the search finds no part of one gives what scanning for each gave."""
    assert Redactor()(text) == _every_shape_scanned(text, "<redacted>")


def _fail(message: str) -> None:
    raise RuntimeError(message)


@pytest.fixture(name="restore_logging")
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
class TestLogs:
    @pytest.mark.parametrize("fmt", ["text", "json"])
    def test_every_form_is_redacted_in_log_lines_and_tracebacks(
        self, capsys: pytest.CaptureFixture[str], fmt: str
    ) -> None:
        """Messages, arguments, extra fields and tracebacks: no form of the token reaches the log."""
        configure_logging(fmt=fmt, level="INFO", secrets=[TOKEN])
        log = logging.getLogger("voicecoder.test")

        log.info("calling %s", f"/bot{TOKEN}/getUpdates")
        log.warning("encoded %s", TOKEN.replace(":", "%3A"))
        log.warning("half alone: %s", HALF, extra={"detail": f"token={HALF}"})
        try:
            _fail(f"Unauthorized for {HALF}")
        except RuntimeError:
            log.exception("failed")
        out = capsys.readouterr().err

        assert HALF not in out
        assert out.count("<redacted>") >= 4
        if fmt == "json":
            records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            assert records[2]["detail"] == "token=<redacted>"

    def test_lone_surrogates_do_not_break_the_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Text from outside with lone surrogates is logged escaped, not as a 'Logging error' traceback."""
        configure_logging(fmt="text", level="INFO")

        logging.getLogger("voicecoder.test").info("user sent %s", "\ud800 broken")
        err = capsys.readouterr().err

        assert "\\ud800 broken" in err
        assert "Logging error" not in err
        assert "Traceback" not in err
