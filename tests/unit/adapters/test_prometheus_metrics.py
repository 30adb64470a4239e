from __future__ import annotations

import pytest

from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, MeteredTranscriber, Metrics
from voicecoder.domain.errors import UnsupportedAudioError
from voicecoder.domain.model import AgentEvent, AgentRequest, Audio
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
