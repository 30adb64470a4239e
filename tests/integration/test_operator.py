"""
The operator's path, as DEPLOYMENT.md walks it: an env file, `webhook set`, `serve`, `webhook info`, `doctor`.

Every command runs as a real `voicecoder` process against the local fake Bot API. The fake's `routes` stand in for
DNS plus the TLS proxy, so the public ``https://203.0.113.10/…`` URL that `webhook set` registers is delivered to
the `serve` process on 127.0.0.1, path kept: the registered URL, the secret and the listener must agree. The
public host is an address, not a name: `webhook info` and `doctor` resolve a name to compare it with the address
Telegram delivers to, and tests never query DNS (the one test of that path uses ``localhost``).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests import serve_rig
from tests.loopback import free_port, wait_http
from tests.serve_rig import cli_env
from voicecoder.simulators.bot_api import FakeBotApi, FakeUser
from voicecoder.simulators.stt import FakeDeepgramServer, ScriptedRecognizer

REPO = Path(__file__).resolve().parents[2]
FAKE_CLAUDE = REPO / "tests" / "fakes" / "fake_claude.py"
TOKEN = "6262626:operator-test-token-not-a-real-one-abcdef"
ENV_PATH = "/telegram/from-the-env-file-0123456789"
ENV_SECRET = "env-file-secret_ABCdef0123456789"
DEV = FakeUser(id=1001, first_name="Dev")
HOST = "203.0.113.10"  # TEST-NET-3: documentation only, never routed
PUBLIC = f"https://{HOST}"


@pytest.fixture(name="fake")
async def _fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(TOKEN, time_scale=0.02) as fake:
        fake.add_chat(DEV)
        yield fake


def base_env(tmp_path: Path) -> dict[str, str]:
    """What a service manager passes: PATH and HOME only; everything else comes from the env file."""
    return cli_env(tmp_path / "home")


def write_env_file(tmp_path: Path, fake: FakeBotApi, port: int, **values: str) -> Path:
    settings = {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "ALLOWED_USER_IDS": str(DEV.id),
        "PUBLIC_URL": PUBLIC,
        "WORKSPACE_DIR": str(tmp_path / "ws"),
        "DATA_DIR": str(tmp_path / "data"),
        "LISTEN_PORT": str(port),
        "CLAUDE_BINARY": str(FAKE_CLAUDE),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        **values,
    }
    path = tmp_path / "voicecoder.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return path


async def run_cli(tmp_path: Path, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    code, out, err = await serve_rig.run_cli(tmp_path, env if env is not None else base_env(tmp_path), *args)
    return code, out + err


@pytest.fixture(name="serve")
def _serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started here are stopped with SIGTERM (then killed) at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start(tmp_path: Path, started: list[subprocess.Popen[bytes]], *args: str, **extra: str) -> subprocess.Popen[bytes]:
    proc = serve_rig.start_cli(tmp_path, {**base_env(tmp_path), **extra}, *args)
    started.append(proc)
    return proc


async def bot_said(fake: FakeBotApi, text: str) -> None:
    with anyio.fail_after(30):
        while not any(text in (m.text or "") for m in fake.messages.values() if m.from_bot):
            await anyio.sleep(0.05)


class TestEnvFileToServe:
    @pytest.mark.parametrize("configured", [True, False], ids=["path-and-secret-in-env-file", "generated"])
    async def test_webhook_set_and_serve_agree(
        self, tmp_path: Path, fake: FakeBotApi, serve: list[subprocess.Popen[bytes]], configured: bool
    ) -> None:
        """
        With nothing exported, `webhook set` registers PUBLIC_URL + the env file's WEBHOOK_PATH and secret (or the
        generated ones `serve` then reuses), Telegram's deliveries reach `serve` and are answered, and
        `webhook info` confirms the match without showing the path.
        """
        port = free_port()
        identity = {"WEBHOOK_PATH": ENV_PATH, "WEBHOOK_SECRET": ENV_SECRET} if configured else {}
        env_file = write_env_file(tmp_path, fake, port, **identity)

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set")
        registered = fake.calls_to("setWebhook")[-1].params
        fake.routes[HOST] = f"http://127.0.0.1:{port}"
        start(tmp_path, serve, "--env-file", str(env_file), "serve")
        await wait_http(f"http://127.0.0.1:{port}/readyz")
        await fake.send_text("/start", user=DEV)
        await bot_said(fake, "Welcome")
        info_code, info = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "info")

        assert code == 0, out
        stored = tmp_path / "data" / "webhook.json"
        if configured:
            assert registered["url"] == PUBLIC + ENV_PATH
            assert registered["secret_token"] == ENV_SECRET
            assert not stored.exists()
        else:
            identity = json.loads(stored.read_text())
            assert stat.S_IMODE(stored.stat().st_mode) == 0o600
            assert registered["url"] == PUBLIC + identity["path"]
            assert registered["secret_token"] == identity["secret"]
        assert fake.webhook_deliveries
        assert all(status == 200 for _, status in fake.webhook_deliveries)
        assert info_code == 0, info
        assert "✅ Matches PUBLIC_URL + WEBHOOK_PATH." in info
        for text in (out, info):
            assert str(registered["secret_token"]) not in text
            assert str(registered["url"]).removeprefix(PUBLIC) not in text
            assert TOKEN not in text

    async def test_secret_token_defaults_from_the_env_file(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        `webhook set --url …` without --secret-token sends WEBHOOK_SECRET from the env file, not a new one.
        """
        env_file = write_env_file(tmp_path, fake, free_port(), WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET)

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set", "--url", PUBLIC + ENV_PATH)

        assert code == 0, out
        assert fake.calls_to("setWebhook")[-1].params["secret_token"] == ENV_SECRET

    async def test_url_serve_would_not_answer_is_flagged(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        A --url whose path is not WEBHOOK_PATH is set (Telegram accepted it) but reported as needing attention.
        """
        env_file = write_env_file(tmp_path, fake, free_port(), WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET)

        code, out = await run_cli(
            tmp_path, "--env-file", str(env_file), "webhook", "set", "--url", PUBLIC + "/elsewhere/x"
        )

        assert code == 1
        assert "✅ setWebhook" in out
        assert "path differs" in out
        assert "/elsewhere/x" not in out

    async def test_env_example_loads_through_the_production_path(self, tmp_path: Path) -> None:
        """
        .env.example, copied as DEPLOYMENT.md says, is accepted by `voicecoder --env-file … doctor` (no traceback,
        no invalid variable); what is left to fill in is reported with its fix.
        """
        env_file = tmp_path / ".env"
        env_file.write_text((REPO / ".env.example").read_text())
        env = {**base_env(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "doctor", env=env)

        assert code == 1, out
        assert "Traceback" not in out
        assert "❌ telegram token: TELEGRAM_TOKEN is not set" in out
        assert "❌ allowed users" in out


class TestStartupRefusals:
    async def test_named_env_file_must_exist(self, tmp_path: Path) -> None:
        """
        `--env-file /nonexistent.env` is an error naming the file, not a silent fallback to defaults.
        """
        missing = tmp_path / "nonexistent.env"

        code, out = await run_cli(tmp_path, "--env-file", str(missing), "serve")

        assert code == 2
        assert f"The env file {missing} does not exist" in out
        assert "TELEGRAM_TOKEN" not in out

    async def test_default_env_file_is_optional(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        Without --env-file a missing ./.env is fine: the environment alone configures the command.
        """
        env = {**base_env(tmp_path), "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": fake.base_url}

        code, out = await run_cli(tmp_path, "webhook", "delete", env=env)

        assert code == 0, out

    @pytest.mark.parametrize("value", ["abc", "99999", "0", "80.5"])
    async def test_listen_port_says_what_it_must_be(self, tmp_path: Path, value: str) -> None:
        """
        A bad LISTEN_PORT names the variable and the rule in words.
        """
        code, out = await run_cli(tmp_path, "doctor", env={**base_env(tmp_path), "LISTEN_PORT": value})

        assert code == 2
        assert f"LISTEN_PORT must be a whole number between 1 and 65535, got {value!r}." in out

    async def test_serve_refuses_to_start_with_nobody_allowed(
        self, tmp_path: Path, fake: FakeBotApi, serve: list[subprocess.Popen[bytes]]
    ) -> None:
        """
        An empty ALLOWED_USER_IDS stops `serve` with exit 2, naming the variable, how to find one's id and the
        override; ALLOW_NOBODY=1 starts it on purpose.
        """
        port = free_port()
        env_file = write_env_file(tmp_path, fake, port, ALLOWED_USER_IDS="")

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "serve")
        proc = start(tmp_path, serve, "--env-file", str(env_file), "serve", ALLOW_NOBODY="1")
        await wait_http(f"http://127.0.0.1:{port}/healthz")

        assert code == 2
        assert "ALLOWED_USER_IDS is empty" in out
        assert "@userinfobot" in out
        assert "ALLOW_NOBODY=1" in out
        assert proc.poll() is None


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


class TestDoctor:
    async def test_only_looks(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        `doctor` creates nothing (no workspace, no data dir, no database, no speech cache) and asks Telegram once
        per question; its report says what the first start will create.
        """
        env_file = write_env_file(tmp_path, fake, free_port())
        (tmp_path / "home").mkdir()
        before = snapshot(tmp_path)

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "doctor")

        assert snapshot(tmp_path) == before, out
        assert "will be created on first start" in out
        assert "✅ telegram: reachable" in out
        assert [c.method for c in fake.calls] == ["getMe", "getWebhookInfo"]
        assert "Traceback" not in out
        assert code in {0, 1}

    async def test_network_down_is_said_as_such(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        With Telegram unreachable, doctor says the network is down, not that the token is wrong.
        """
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
            env_file = write_env_file(tmp_path, fake, free_port(), TELEGRAM_API_BASE_URL=unreachable)

            code, out = await run_cli(tmp_path, "--env-file", str(env_file), "doctor")

        assert code == 1
        assert "❌ telegram: Cannot reach Telegram: the network is down or blocked" in out
        assert "TELEGRAM_TOKEN" not in out

    async def test_refused_token_is_said_as_such(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        A token Telegram refuses (401) points at TELEGRAM_TOKEN.
        """
        env_file = write_env_file(tmp_path, fake, free_port(), TELEGRAM_TOKEN="1234567:" + "x" * 35)

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "doctor")

        assert code == 1
        assert "Telegram refused the bot token (401" in out
        assert "check TELEGRAM_TOKEN" in out


class TestWebhookInfo:
    async def test_differences_need_attention(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        A webhook registered with another path and delivered to another IP makes `webhook info` say which
        differs, without showing either path, and exit 1 so cron can alert.
        """
        port = free_port()
        env_file = write_env_file(tmp_path, fake, port, WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET)
        await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set", "--url", PUBLIC + "/old/path-abc")
        # The server moved: the operator records its new address; Telegram still delivers to the old one.
        write_env_file(
            tmp_path, fake, port, WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET, WEBHOOK_IP_ADDRESS="203.0.113.7"
        )

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "info")

        assert code == 1
        assert "⚠️ Webhook needs attention" in out
        assert "path differs" in out
        assert "host differs" not in out
        assert f"Telegram delivers to {HOST}, but WEBHOOK_IP_ADDRESS says 203.0.113.7" in out
        assert "/old/path-abc" not in out
        assert ENV_PATH not in out

    async def test_ip_is_compared_with_what_the_host_resolves_to(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        Without WEBHOOK_IP_ADDRESS the delivery address is compared with the public host's DNS answer here
        (``localhost``: resolved from /etc/hosts, no network).
        """
        env_file = write_env_file(
            tmp_path,
            fake,
            free_port(),
            PUBLIC_URL="https://localhost",
            WEBHOOK_PATH=ENV_PATH,
            WEBHOOK_SECRET=ENV_SECRET,
        )
        fake.dns["localhost"] = "198.51.100.9"
        await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set")

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "info")
        fake.dns["localhost"] = "127.0.0.1"
        fixed_code, fixed = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "info")

        assert code == 1
        assert "Telegram delivers to 198.51.100.9, but DNS of localhost says 127.0.0.1" in out
        assert fixed_code == 0, fixed
        assert "IP address: 127.0.0.1 (matches DNS of localhost)" in fixed

    async def test_webhook_while_polling_needs_attention(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        TRANSPORT=polling with a webhook still set is flagged (getUpdates would get 409).
        """
        env_file = write_env_file(tmp_path, fake, free_port(), TRANSPORT="polling", WEBHOOK_SECRET=ENV_SECRET)
        await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set")

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "info")

        assert code == 1
        assert "TRANSPORT=polling, but a webhook is set" in out


class TestWebhookSetSteps:
    async def test_read_back_failure_does_not_hide_success(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        When setWebhook succeeds and reading it back fails, the output says the webhook was set and the check
        failed (exit 1), never "Telegram said: … getWebhookInfo failed" as if nothing happened.
        """
        env_file = write_env_file(tmp_path, fake, free_port(), WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET)
        fake.fail_next("getWebhookInfo", code=400, description="Bad Request: something went wrong")

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set")

        assert code == 1
        assert f"✅ setWebhook: Telegram now delivers to {PUBLIC}/…" in out
        assert "⚠️ Reading it back (getWebhookInfo) failed" in out
        assert "The webhook is set" in out
        assert fake.calls_to("setWebhook")
        info_code, _ = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "info")
        assert info_code == 0

    async def test_refusal_says_nothing_changed_and_the_fix(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        A refused setWebhook reports Telegram's reason and the fix, and that nothing was changed.
        """
        env_file = write_env_file(tmp_path, fake, free_port(), WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET)
        fake.fail_next(
            "setWebhook", code=400, description="Bad Request: bad webhook: Failed to resolve host: Name or service"
        )

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set")

        assert code == 1
        assert "❌ setWebhook failed, nothing was changed" in out
        assert "--ip-address" in out
        assert "getWebhookInfo" not in out


class TestHealthInBothModes:
    async def test_polling_serves_health_and_the_backlog_gauge(
        self, tmp_path: Path, fake: FakeBotApi, serve: list[subprocess.Popen[bytes]]
    ) -> None:
        """
        After the documented rollback to polling, /healthz and /readyz still answer 200 on LISTEN_PORT, and
        /metrics carries Telegram's pending_update_count.
        """
        port = free_port()
        env_file = write_env_file(tmp_path, fake, port, TRANSPORT="polling")

        start(tmp_path, serve, "--env-file", str(env_file), "serve")
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        await wait_http(f"http://127.0.0.1:{port}/readyz")
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as metrics:
            text = await metrics.text()

        assert "voicecoder_telegram_pending_updates" in text

    async def test_webhook_mode_exports_telegrams_backlog(
        self, tmp_path: Path, fake: FakeBotApi, serve: list[subprocess.Popen[bytes]]
    ) -> None:
        """
        Updates waiting at Telegram (no webhook set yet) show up as the pending-updates gauge.
        """
        port = free_port()
        env_file = write_env_file(tmp_path, fake, port, WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET)
        for text in ("one", "two", "three"):
            await fake.send_text(text, user=DEV)

        start(tmp_path, serve, "--env-file", str(env_file), "serve")
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                while True:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as metrics:
                        text = await metrics.text()
                    if "voicecoder_telegram_pending_updates 3.0" in text:
                        break
                    await anyio.sleep(0.1)

        assert fake.pending_update_count == 3


class TestMaxPromptAge:
    async def test_prompt_held_through_an_outage_is_not_run(
        self, tmp_path: Path, fake: FakeBotApi, serve: list[subprocess.Popen[bytes]]
    ) -> None:
        """
        With MAX_PROMPT_AGE=1h, a prompt Telegram held for three hours gets a notice instead of an agent run;
        a fresh one behind it runs as usual.
        """
        port = free_port()
        env_file = write_env_file(
            tmp_path, fake, port, WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET, MAX_PROMPT_AGE="1h"
        )
        await fake.send_text("refactor everything", user=DEV, date=int(time.time()) - 3 * 3600)
        await fake.send_text("explain the code", user=DEV)
        fake.routes[HOST] = f"http://127.0.0.1:{port}"

        start(tmp_path, serve, "--env-file", str(env_file), "serve")
        await wait_http(f"http://127.0.0.1:{port}/readyz")
        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set")
        await bot_said(fake, "Echo: explain the code")
        await bot_said(fake, "No git changes detected")  # the turn is over: stopping the bot interrupts nothing

        assert code == 0, out
        texts = [m.text or "" for m in fake.messages.values() if m.from_bot]
        notices = [t for t in texts if t.startswith("⏰ Not run")]
        assert len(notices) == 1
        assert "refactor everything" in notices[0]
        assert re.search(r"reached me 3h 0\dm after you sent it", notices[0])
        assert "Send it again" in notices[0]
        assert not any("Echo: refactor everything" in t for t in texts)


class TestSelftest:
    async def test_measures_the_running_bot(
        self, tmp_path: Path, fake: FakeBotApi, serve: list[subprocess.Popen[bytes]]
    ) -> None:
        """
        `voicecoder selftest` against a running bot: Telegram, the registration, the endpoint (401 without the
        secret, 200 with it), a Git Status press and a 30 s voice note captioned /selftest, each with its figure;
        the bot answers the voice note with what it heard and never runs the agent.
        """
        async with FakeDeepgramServer(
            recognizer=ScriptedRecognizer("create a file called test dot txt"), api_key="dg-key"
        ) as deepgram:
            port = free_port()
            env_file = write_env_file(
                tmp_path,
                fake,
                port,
                WEBHOOK_PATH=ENV_PATH,
                WEBHOOK_SECRET=ENV_SECRET,
                STT_PROVIDER="deepgram",
                DEEPGRAM_API_KEY="dg-key",
                DEEPGRAM_BASE_URL=deepgram.base_url,
            )
            fake.routes[HOST] = f"http://127.0.0.1:{port}"
            start(tmp_path, serve, "--env-file", str(env_file), "serve")
            await wait_http(f"http://127.0.0.1:{port}/readyz")
            await run_cli(tmp_path, "--env-file", str(env_file), "webhook", "set")

            code, out = await run_cli(
                tmp_path, "--env-file", str(env_file), "selftest", "--endpoint", f"http://127.0.0.1:{port}"
            )

        assert code == 0, out
        assert re.search(r"✅ Telegram +getMe \d+ ms \(@voicecoder_bot\)", out)
        assert "✅ Registration" in out
        assert re.search(r"✅ Public endpoint +ack \d+ ms, 200 with the secret, 401 without", out)
        assert re.search(r"✅ Button +\d+\.\d\d s end to end \(\d+\.\d\d s in the bot\), target ≤ 2 s", out)
        assert re.search(r"✅ Voice note 30 s +\d+\.\d\d s end to end .*target ≤ 10 s", out)
        assert "✅ All checks passed." in out
        texts = [m.text or "" for m in fake.messages.values() if m.from_bot]
        check = next(t for t in texts if t.startswith("🎤 Speech check"))
        assert "create a file called test dot txt" in check
        assert "30s of speech heard in" in check
        assert "Nothing was run." in check
        assert any("git status" in t.lower() or "branch" in t.lower() for t in texts)
        assert fake.calls_to("answerCallbackQuery")
        assert not any("Echo:" in t for t in texts)
        assert ENV_SECRET not in out
        assert ENV_PATH not in out

    async def test_polling_mode_says_what_to_do_by_hand(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """In polling mode nothing is posted; the output explains the manual checks."""
        env_file = write_env_file(tmp_path, fake, free_port(), TRANSPORT="polling")

        code, out = await run_cli(tmp_path, "--env-file", str(env_file), "selftest")

        assert code == 0, out
        assert "Polling mode" in out
        assert "captioned /selftest" in out
        assert not fake.calls_to("sendVoice")


class TestForeignSecret:
    async def test_secret_token_serve_does_not_check_is_flagged(self, tmp_path: Path, fake: FakeBotApi) -> None:
        """
        `webhook set --secret-token X` with X not the secret `serve` checks is set (Telegram accepted it) but
        reported as needing attention: every delivery would get 401.
        """
        env_file = write_env_file(tmp_path, fake, free_port(), WEBHOOK_PATH=ENV_PATH, WEBHOOK_SECRET=ENV_SECRET)

        code, out = await run_cli(
            tmp_path, "--env-file", str(env_file), "webhook", "set", "--secret-token", "some-other-secret_123"
        )

        assert code == 1
        assert "✅ setWebhook" in out
        assert "--secret-token is not the secret `serve` checks" in out
        assert "some-other-secret_123" not in out
        assert fake.calls_to("setWebhook")[-1].params["secret_token"] == "some-other-secret_123"
