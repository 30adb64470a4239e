"""The loopback HTTP server the speech API fakes share: recording, scripted answers, delays and stalls."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Self

import anyio
import attrs
from aiohttp import web
from multidict import CIMultiDict

from voicecoder.adapters.stt.audio_intake import sniff_format
from voicecoder.simulators.stt.recognizers import Recognizer

__all__ = ["FakeSpeechServer", "RecordedRequest", "ScriptedResponse", "is_audio", "json_response", "request_id"]


def is_audio(data: bytes) -> bool:
    """
    Whether the services take *data* as audio: the containers voicecoder sends (Ogg, MP3, WAV, M4A/MP4, WebM).

    Every one of the three services accepts these (and more); the fakes accept what voicecoder's sniffer does.
    """
    return sniff_format(data) is not None


def request_id() -> str:
    return str(uuid.uuid4())


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """*body* as JSON; a str or bytes body is sent as is (for malformed answers), None as an empty body."""
    if body is None:
        return web.Response(status=status, headers=dict(headers or {}))
    if isinstance(body, bytes):
        return web.Response(status=status, body=body, content_type="application/json", headers=dict(headers or {}))
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=dict(headers or {}))
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=dict(headers or {})
    )


@attrs.frozen
class RecordedRequest:
    """One request as the fake received it (header names are case-insensitive)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes

    def params(self, name: str) -> list[str]:
        """All values of query parameter *name*, in order."""
        return [value for key, value in self.query if key == name]


@attrs.frozen
class ScriptedResponse:
    """An answer to give instead of the normal one; *path* limits it to requests whose path starts with it."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    path: str | None = None
    delay_s: float = 0.0


@attrs.define(kw_only=True)
class FakeSpeechServer:
    """
    Base of the fakes: every request is recorded (``requests``), including refused ones.

    Failures are scripted: `script()` answers the next matching request with a status, headers and body;
    ``delay_s`` delays every answer; `stall_next()` holds the next matching request until the client gives
    up (the handler is cancelled when the client disconnects, as a real server's would be).
    """

    recognizer: Recognizer
    api_key: str | None = "test-key"
    delay_s: float = 0.0
    requests: list[RecordedRequest] = attrs.field(factory=list)
    scripted: list[ScriptedResponse] = attrs.field(factory=list)
    #: Requests held by `stall_next` whose client went away.
    abandoned: int = 0
    _stalls: list[str | None] = attrs.field(factory=list)
    _runner: web.AppRunner | None = attrs.field(default=None, init=False)
    _port: int | None = attrs.field(default=None, init=False)

    #: Path prefix of the requests that carry audio (counted by `audio_requests`).
    audio_path: str = "/"

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake server is not started")
        return f"http://127.0.0.1:{self._port}"

    def audio_requests(self) -> int:
        """Requests that reached the endpoint receiving audio (refused ones included)."""
        return sum(1 for r in self.requests if r.path.startswith(self.audio_path))

    def script(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        path: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next request (whose path starts with *path*, if given) with *status* and *body*."""
        self.scripted.append(ScriptedResponse(status, body, dict(headers or {}), path, delay_s))

    def stall_next(self, path: str | None = None) -> None:
        """Hold the next request (whose path starts with *path*) without answering until the client leaves."""
        self._stalls.append(path)

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 30)
        self._routes(app)
        # A held request's handler is cancelled when its client disconnects, instead of lingering until cleanup.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=tuple(request.query.items()),
                headers=CIMultiDict(request.headers),
                body=body,
            )
        )
        for index, stall in enumerate(self._stalls):
            if stall is None or request.path.startswith(stall):
                del self._stalls[index]
                try:
                    await anyio.sleep_forever()
                finally:
                    self.abandoned += 1
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        for index, scripted in enumerate(self.scripted):
            if scripted.path is None or request.path.startswith(scripted.path):
                del self.scripted[index]
                if scripted.delay_s:
                    await anyio.sleep(scripted.delay_s)
                return json_response(scripted.status, scripted.body, scripted.headers)
        response: web.StreamResponse = await handler(request)
        return response
