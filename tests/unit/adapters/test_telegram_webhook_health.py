from __future__ import annotations

import pytest

from voicecoder.adapters.telegram.api import WebhookInfo
from voicecoder.adapters.telegram.webhook_health import (
    Expectation,
    describe_webhook,
    expectation,
    fix_for,
    host_ipv4,
    path_fingerprint,
    redact_url,
    shown_url,
    telegram_diagnostics,
    url_differences,
    webhook_diagnostic,
)
from voicecoder.simulators.bot_api import FakeBotApi

NOW = 1_800_000_000.0
URL = "https://bot.example.org/telegram/SeCrEtPaTh123"
EXPECTED = Expectation(transport="webhook", url=URL, ip_addresses=("203.0.113.7",), ip_source="DNS of bot.example.org")


def info(**fields: object) -> WebhookInfo:
    values: dict[str, object] = {
        "url": URL,
        "pending_update_count": 0,
        "max_connections": 40,
        "ip_address": "203.0.113.7",
        "allowed_updates": ("message", "callback_query"),
    }
    values.update(fields)
    return WebhookInfo(**values)  # type: ignore[arg-type]


class TestDescribeWebhook:
    def test_matching_webhook_is_healthy(self) -> None:
        """The registered URL and IP match the configuration: healthy, and the path never shows."""
        verdict = describe_webhook(info(), expected=EXPECTED, now=NOW)

        assert verdict.healthy
        assert verdict.lines[0] == "✅ Webhook healthy"
        assert "✅ Matches PUBLIC_URL + WEBHOOK_PATH." in verdict.lines
        assert "IP address: 203.0.113.7 (matches DNS of bot.example.org)" in verdict.lines
        assert "SeCrEtPaTh123" not in str(verdict)

    @pytest.mark.parametrize(
        ("registered", "differs"),
        [
            ("https://bot.example.org/telegram/OtherPath", ["path differs"]),
            ("https://old.example.org/telegram/SeCrEtPaTh123", ["host differs (registered old.example.org"]),
            ("https://bot.example.org:8443/telegram/SeCrEtPaTh123", ["port differs (registered 8443, configured 443)"]),
            ("https://old.example.org:88/x", ["host differs", "port differs", "path differs"]),
        ],
    )
    def test_says_which_part_of_the_url_differs(self, registered: str, differs: list[str]) -> None:
        """Each differing part is named; neither path is shown."""
        verdict = describe_webhook(info(url=registered), expected=EXPECTED, now=NOW)

        assert not verdict.healthy
        assert "the registered URL differs from PUBLIC_URL + WEBHOOK_PATH" in verdict.problems
        for part in differs:
            assert part in str(verdict)
        assert "SeCrEtPaTh123" not in str(verdict)
        assert "OtherPath" not in str(verdict)

    def test_same_url_written_differently_matches(self) -> None:
        """Case of the host, an explicit default port and a trailing dot are the same URL."""
        assert url_differences("https://BOT.example.org.:443/telegram/a", "https://bot.example.org/telegram/a") == []

    def test_ip_address_differs(self) -> None:
        """Telegram delivering to another address than the host's is named with both addresses and a fix."""
        verdict = describe_webhook(info(ip_address="198.51.100.9"), expected=EXPECTED, now=NOW)

        assert not verdict.healthy
        assert (
            "⚠️ IP address: Telegram delivers to 198.51.100.9, but DNS of bot.example.org says 203.0.113.7."
            in verdict.lines
        )

    @pytest.mark.parametrize("address", [None, "<unknown>"])
    def test_unresolved_ip_is_not_a_problem(self, address: str | None) -> None:
        """Before Telegram resolved the host there is nothing to compare."""
        verdict = describe_webhook(info(ip_address=address), expected=EXPECTED, now=NOW)

        assert verdict.healthy
        assert "IP address: not resolved by Telegram yet" in verdict.lines

    def test_unknown_host_address_is_not_compared(self) -> None:
        """Without a known host address the reported one is shown as is."""
        verdict = describe_webhook(info(ip_address="198.51.100.9"), expected=Expectation(url=URL), now=NOW)

        assert verdict.healthy
        assert "IP address: 198.51.100.9" in verdict.lines

    @pytest.mark.parametrize(
        ("age_s", "healthy", "shown"),
        [
            (60, False, "60 s ago"),
            (14 * 60, False, "14 min ago"),
            (16 * 60, True, "16 min ago"),
            (3 * 86400, True, "3 days ago"),
        ],
    )
    def test_last_error_is_judged_by_its_age(self, age_s: int, healthy: bool, shown: str) -> None:
        """An error younger than 15 minutes needs attention, with its fix; an older one is history."""
        verdict = describe_webhook(
            info(last_error_date=int(NOW - age_s), last_error_message="Wrong response from the webhook: 502"),
            expected=EXPECTED,
            now=NOW,
        )

        assert verdict.healthy is healthy
        assert shown in str(verdict)
        assert ("proxy cannot reach it" in str(verdict)) is not healthy

    def test_backlog_and_missing_update_types_need_attention(self) -> None:
        """A large backlog, or message/callback_query not allowed, is named as a problem."""
        backlog = describe_webhook(info(pending_update_count=500), expected=EXPECTED, now=NOW)
        narrow = describe_webhook(info(allowed_updates=("message",)), expected=EXPECTED, now=NOW)

        assert backlog.problems == ("500 updates pending",)
        assert narrow.problems == ("callback_query not allowed",)

    def test_no_webhook_while_webhook_transport_needs_attention(self) -> None:
        """TRANSPORT=webhook with PUBLIC_URL configured but nothing registered: Telegram is holding the updates."""
        verdict = describe_webhook(WebhookInfo(url="", pending_update_count=7), expected=EXPECTED, now=NOW)

        assert not verdict.healthy
        assert "Run `voicecoder webhook set`" in str(verdict)

    def test_no_webhook_in_polling_is_fine(self) -> None:
        """Polling with no webhook set is the expected state."""
        verdict = describe_webhook(
            WebhookInfo(url="", pending_update_count=0), expected=Expectation(transport="polling"), now=NOW
        )

        assert verdict.healthy
        assert "No webhook is set" in str(verdict)

    def test_webhook_while_polling_needs_attention(self) -> None:
        """A webhook set while TRANSPORT=polling breaks getUpdates (409)."""
        verdict = describe_webhook(info(), expected=Expectation(transport="polling", url=URL), now=NOW)

        assert not verdict.healthy
        assert "webhook delete" in str(verdict)

    def test_as_diagnostic(self) -> None:
        """The verdict becomes one /info line: healthy shows the redacted URL, unhealthy lists the problems."""
        good = info()
        bad = info(pending_update_count=500)

        ok = webhook_diagnostic(good, describe_webhook(good, expected=EXPECTED, now=NOW))
        problem = webhook_diagnostic(bad, describe_webhook(bad, expected=EXPECTED, now=NOW))

        assert ok.ok
        assert "SeCrEtPaTh123" not in ok.detail
        assert not problem.ok
        assert problem.detail == "500 updates pending"
        assert problem.fix is not None
        assert "webhook info" in problem.fix


class TestRedaction:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://bot.example.org/123456:ABC-DEF", "https://bot.example.org/…"),
            ("https://user:pass@bot.example.org:8443/hook?x=1", "https://bot.example.org:8443/…"),
            ("https://[2001:db8::1]/x", "https://[2001:db8::1]/…"),
            ("https://bot.example.org", "https://bot.example.org/"),
            ("", ""),
        ],
    )
    def test_redact_url(self, url: str, shown: str) -> None:
        """Credentials and paths never show."""
        assert redact_url(url) == shown

    def test_fingerprint_tells_paths_apart_without_showing_them(self) -> None:
        """Two paths get different fingerprints; the shown URL carries the fingerprint, not the path."""
        a, b = URL, "https://bot.example.org/telegram/Other"

        assert path_fingerprint(a) != path_fingerprint(b)
        assert shown_url(a) == f"https://bot.example.org/… (path #{path_fingerprint(a)})"
        assert len(path_fingerprint(a)) == 6


class TestFixFor:
    @pytest.mark.parametrize(
        ("message", "advice"),
        [
            ("Wrong response from the webhook: 401 Unauthorized", "WEBHOOK_SECRET"),
            ("Wrong response from the webhook: 403 Forbidden", "allow-list"),
            ("Wrong response from the webhook: 404 Not Found", "WEBHOOK_PATH"),
            ("Wrong response from the webhook: 502 Bad Gateway", "proxy"),
            ("Wrong response from the webhook: 302 Found", "redirect"),
            ("SSL error {error:0A000086:SSL routines::certificate verify failed}", "--certificate"),
            ("Connection refused", "443, 80, 88 or 8443"),
            ("Read timeout expired", "answer within seconds"),
            ("Connection timed out", "answer within seconds"),
            ("Failed to resolve host: Name or service not known", "--ip-address"),
            ("Webhook connection closed", "idle timeouts"),
            ("Something new", "reachable"),
        ],
    )
    def test_documented_errors(self, message: str, advice: str) -> None:
        """Each documented delivery error maps to advice that names the fix."""
        assert advice in fix_for(message)


class TestExpectation:
    async def test_fixed_address_wins(self) -> None:
        """WEBHOOK_IP_ADDRESS is the host's address when set; nothing is resolved."""
        found = await expectation(transport="webhook", url=URL, fixed_ip="203.0.113.7")

        assert (found.ip_addresses, found.ip_source) == (("203.0.113.7",), "WEBHOOK_IP_ADDRESS")

    async def test_literal_and_local_names(self) -> None:
        """An IPv4 literal is its own address; an IPv6 literal has none Telegram could use; localhost resolves."""
        assert await host_ipv4("192.0.2.1") == ("192.0.2.1",)
        assert await host_ipv4("2001:db8::1") == ()
        assert "127.0.0.1" in await host_ipv4("localhost")

    async def test_no_url_no_addresses(self) -> None:
        """Without PUBLIC_URL there is nothing to resolve."""
        found = await expectation(transport="polling", url=None)

        assert found == Expectation(transport="polling")


class TestTelegramDiagnostics:
    async def test_reachable_with_webhook_verdict(self) -> None:
        """getMe names the bot; the webhook verdict follows, judged against the expectation."""
        async with FakeBotApi() as fake:
            results = await telegram_diagnostics(fake.token, base_url=fake.base_url, expected=EXPECTED, now=NOW)

        assert [d.name for d in results] == ["telegram", "webhook"]
        assert results[0].ok
        assert "@voicecoder_bot" in results[0].detail
        assert not results[1].ok
        assert results[1].detail == "no webhook is set"
