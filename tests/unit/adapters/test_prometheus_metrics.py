from __future__ import annotations

import pytest

from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, MeteredTranscriber, Metrics
from voicecoder.adapters.telegram.api import RetryPolicy, TelegramApiError, TelegramBotApi
from voicecoder.domain.errors import UnsupportedAudioError
from voicecoder.domain.model import AgentEvent, AgentRequest, Audio
from voicecoder.simulators.bot_api import FakeBotApi
from voicecoder.testing.fakes import FakeAgentRunner, FakeTranscriber


async def ignore(_: AgentEvent) -> None:
    return None


class TestMetered:
    async def test_agent_runs_are_timed_by_outcome(self) -> None:
        """
        Each run lands in the histogram under its outcome.
        """
        metrics = Metrics()
        runner = MeteredAgentRunner(FakeAgentRunner(), metrics)

        await runner.run(AgentRequest("hi", None, resume=False), ignore)

        text = metrics.render().decode()
        assert 'voicecoder_agent_run_seconds_count{outcome="success"} 1.0' in text

    async def test_stt_failures_are_labelled(self) -> None:
        """
        A refused clip is counted under its error type and the error still propagates.
        """
        metrics = Metrics()
        transcriber = MeteredTranscriber(FakeTranscriber(), metrics, "fake")

        with pytest.raises(UnsupportedAudioError):
            await transcriber.transcribe(Audio(b"plain text"))

        text = metrics.render().decode()
        assert 'voicecoder_stt_seconds_count{outcome="UnsupportedAudioError",provider="fake"} 1.0' in text

    async def test_telegram_errors_are_counted_by_code(self) -> None:
        """
        Every error answer from the Bot API, retried or final, is counted under its error code.
        """
        metrics = Metrics()
        async with FakeBotApi(time_scale=0.01) as api:
            api.fail_next("getMe", 1, code=500)
            api.fail_next("getWebhookInfo", 1, code=401, description="Unauthorized")
            async with TelegramBotApi(
                api.token,
                base_url=api.base_url,
                retry=RetryPolicy(base_delay=0.01),
                on_error=metrics.count_telegram_error,
            ) as client:
                await client.get_me()
                with pytest.raises(TelegramApiError):
                    await client.get_webhook_info()

        text = metrics.render().decode()
        assert 'voicecoder_telegram_api_errors_total{code="500"} 1.0' in text
        assert 'voicecoder_telegram_api_errors_total{code="401"} 1.0' in text
