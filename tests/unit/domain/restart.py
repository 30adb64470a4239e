"""A second VoiceCoder over the same fakes: what a restart of the service looks like to the domain."""

from __future__ import annotations

from voicecoder.domain.services import Ports
from voicecoder.testing.fakes import FakePorts


def fakes_ports(fakes: FakePorts) -> Ports:
    return Ports(
        workspace=fakes.workspace,
        agent=fakes.agent,
        transcriber=fakes.transcriber,
        messenger=fakes.messenger,
        store=fakes.store,
        clock=fakes.clock,
        scanner=fakes.scanner,
    )
