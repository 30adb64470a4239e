r"""
A loopback fake of the Anthropic Messages API, enough for the real Claude Code CLI to run on.

It implements what the CLI (2.1.197–2.1.330) uses when started with the three quiet env vars and
``ANTHROPIC_BASE_URL`` pointing here: ``POST /v1/messages`` (the ``?beta=true`` query is ignored)
answered as server-sent events (``message_start``, ``content_block_start/delta/stop``,
``message_delta``, ``message_stop``) or, without ``stream``, as one JSON message; ``HEAD`` probes;
``POST /v1/messages/count_tokens``. Errors use the API's shape,
``{"type": "error", "error": {"type": "overloaded_error", "message": …}}``, with the matching
status. Unknown body fields are accepted (the CLI sends many betas); unknown paths get 404 and are
recorded in `FakeAnthropicApi.other_requests`.

What the "model" answers is scripted. Each request takes, in order: the next queued response
(`FakeAnthropicApi.script`), else the first matching rule (`FakeAnthropicApi.rule`), else
`default_responder`: a ``<summary>…</summary>`` for a compaction request, otherwise the sandbox's demo
model (`voicecoder.simulators.demo_model`), which understands a set of natural requests ("add a README",
"run the tests", "delete notes.txt", …), works through them with the CLI's tools and answers in sentences;
anything else is echoed as ``fake-model: <prompt>`` (so a test sees which prompt was answered). The sandbox's
`demo_responder` answers anything else with what the demo model understands instead.

Relative ``file_path`` inputs are resolved against ``workdir`` or, failing that, the working
directory the CLI announces in its request ("Primary working directory: …").

Every ``/v1/messages`` request is recorded as a `MessagesRequest` (auth headers redacted), so a
test can check that a resumed turn carried the earlier history::

    async with FakeAnthropicApi() as api:
        api.script(Reply.tool(write_file("hello.txt", "hi\n")), Reply.text("Created hello.txt."))
        env = {"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "dummy"}
        ...
        assert "hello.txt" in api.requests[-1].all_text
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Self

import anyio
import attrs
from aiohttp import web

from voicecoder.simulators.demo_model import demo_reply, texts_of

__all__ = [
    "ApiError",
    "FakeAnthropicApi",
    "MessagesRequest",
    "Reply",
    "Responder",
    "Text",
    "ToolUse",
    "bash",
    "default_responder",
    "demo_responder",
    "write_file",
]

log = logging.getLogger(__name__)

_COMPACTION_MARK = "Respond with TEXT ONLY"
_CWD = re.compile(r"Primary working directory:\s*(\S[^\n]*)")
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


# --- what the model says --------------------------------------------------------------------


@attrs.frozen
class Text:
    """A text content block."""

    text: str


@attrs.frozen
class ToolUse:
    """A tool_use content block; ``id`` is generated when None."""

    name: str
    input: Mapping[str, Any] = attrs.field(factory=dict)
    id: str | None = None


def write_file(path: str, content: str) -> ToolUse:
    """A ``Write`` call; a relative *path* is resolved against the workspace."""
    return ToolUse("Write", {"file_path": path, "content": content})


def bash(command: str, description: str = "") -> ToolUse:
    """A ``Bash`` call."""
    tool_input: dict[str, Any] = {"command": command}
    if description:
        tool_input["description"] = description
    return ToolUse("Bash", tool_input)


@attrs.frozen
class Reply:
    """
    A successful answer.

    ``stop_reason`` defaults to ``tool_use`` when a block calls a tool, else ``end_turn``.
    ``delay_s`` waits before the response starts; ``stall_s`` waits after ``message_start``
    (a model that is slow mid-stream).
    """

    blocks: tuple[Text | ToolUse, ...]
    stop_reason: str | None = None
    delay_s: float = 0.0
    stall_s: float = 0.0

    @classmethod
    def text(cls, text: str, *, delay_s: float = 0.0, stall_s: float = 0.0) -> Reply:
        return cls((Text(text),), delay_s=delay_s, stall_s=stall_s)

    @classmethod
    def tool(cls, tool: ToolUse, text: str | None = None, *, delay_s: float = 0.0) -> Reply:
        blocks: tuple[Text | ToolUse, ...] = (Text(text), tool) if text else (tool,)
        return cls(blocks, delay_s=delay_s)

    @property
    def effective_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"


@attrs.frozen
class ApiError:
    """An error answer with the API's JSON error body."""

    status: int
    error_type: str
    message: str
    delay_s: float = 0.0
    retry_after_s: float | None = None

    @classmethod
    def overloaded(cls, message: str = "Overloaded") -> ApiError:
        return cls(529, "overloaded_error", message)

    @classmethod
    def server_error(cls, message: str = "Internal server error") -> ApiError:
        return cls(500, "api_error", message)

    @classmethod
    def rate_limited(cls, retry_after_s: float = 1.0) -> ApiError:
        return cls(429, "rate_limit_error", "Number of requests has exceeded your rate limit", 0.0, retry_after_s)

    @classmethod
    def authentication(cls) -> ApiError:
        return cls(401, "authentication_error", "invalid x-api-key")

    @classmethod
    def invalid_request(cls, message: str) -> ApiError:
        return cls(400, "invalid_request_error", message)

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.error_type, "message": self.message}}


Response = Reply | ApiError
Responder = Callable[["MessagesRequest"], Response]


# --- what the client sent --------------------------------------------------------------------


@attrs.frozen
class MessagesRequest:
    """One ``POST /v1/messages`` as received; ``headers`` has auth values replaced by ``***``."""

    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) else "claude-fake"

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        messages = self.body.get("messages")
        return [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools")
        if not isinstance(tools, list):
            return []
        return [t["name"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("name"), str)]

    @property
    def system_text(self) -> str:
        return "\n".join(texts_of(self.body.get("system")))

    @property
    def cwd(self) -> str | None:
        """The working directory the CLI told the model about, if any."""
        sources = [self.system_text] + ["\n".join(texts_of(m.get("content"))) for m in self.messages]
        for text in sources:
            if match := _CWD.search(text):
                return match.group(1).strip()
        return None

    @property
    def last_user(self) -> Mapping[str, Any] | None:
        users = [m for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else None

    @property
    def prompt(self) -> str:
        """The user's words in the last user message, without ``<system-reminder>`` blocks."""
        last = self.last_user
        if last is None:
            return ""
        content = last.get("content")
        blocks = [content] if isinstance(content, str) else content if isinstance(content, list) else []
        texts: list[str] = []
        for block in blocks:
            text = block if isinstance(block, str) else block.get("text") if isinstance(block, Mapping) else None
            if isinstance(text, str):
                cleaned = _REMINDER.sub("", text).strip()
                if cleaned:
                    texts.append(cleaned)
        return texts[-1] if texts else ""

    @property
    def tool_results(self) -> list[tuple[str, str, bool]]:
        """``(tool_use_id, text, is_error)`` for each tool_result in the last user message."""
        last = self.last_user
        content = last.get("content") if last is not None else None
        if not isinstance(content, list):
            return []
        return [
            (str(b.get("tool_use_id", "")), "\n".join(texts_of(b.get("content"))), b.get("is_error") is True)
            for b in content
            if isinstance(b, Mapping) and b.get("type") == "tool_result"
        ]

    @property
    def is_compaction(self) -> bool:
        last = self.last_user
        return last is not None and any(_COMPACTION_MARK in t for t in texts_of(last.get("content")))

    @property
    def all_text(self) -> str:
        """Every text of every message (tool inputs as JSON): for asserting on history."""
        return "\n".join(t for m in self.messages for t in texts_of(m.get("content")))


def _echo(prompt: str) -> str:
    return f"fake-model: {prompt}" if prompt else "fake-model: (no prompt)"


def default_responder(request: MessagesRequest, *, unknown: Callable[[str], str] | None = _echo) -> Response:
    """
    The built-in model: a <summary> for /compact, otherwise the demo model (`demo_model`).

    A request the demo model does not understand gets *unknown(prompt)*: ``fake-model: <prompt>`` by default, the
    demo model's own help with None.
    """
    if request.is_compaction:
        return Reply.text(
            "<summary>\nThe user and the assistant worked on the workspace; "
            f"{len(request.messages)} messages so far. Nothing is pending.\n</summary>"
        )
    step = demo_reply(request.messages, unknown=unknown)
    if isinstance(step, str):
        return Reply.text(step)
    return Reply.tool(ToolUse(step.name, dict(step.input)), step.text)


def demo_responder(request: MessagesRequest) -> Response:
    """The sandbox's model (``--demo-agent``): like `default_responder`, but says what it understands instead."""
    return default_responder(request, unknown=None)


# --- the server --------------------------------------------------------------------------------


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _halves(text: str) -> list[str]:
    if len(text) < 2:
        return [text]
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


def _redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    secret = {"x-api-key", "authorization", "proxy-authorization"}
    return {k.lower(): ("***" if k.lower() in secret else v) for k, v in headers.items()}


@attrs.define
class FakeAnthropicApi:
    """
    The fake server; ``async with FakeAnthropicApi() as api:`` then use ``api.base_url``.

    ``api_key``, when set, is required (``x-api-key`` or ``Authorization: Bearer``); otherwise any
    credentials are accepted.
    """

    workdir: str | None = None
    api_key: str | None = None
    default: Responder = default_responder
    requests: list[MessagesRequest] = attrs.field(factory=list)
    other_requests: list[tuple[str, str]] = attrs.field(factory=list)
    _queue: list[Response | Responder] = attrs.field(factory=list)
    _rules: list[tuple[Callable[[MessagesRequest], bool], Response | Responder]] = attrs.field(factory=list)
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _waiters: list[anyio.Event] = attrs.field(factory=list, init=False)
    _runner: web.AppRunner | None = attrs.field(default=None, init=False)
    _port: int | None = attrs.field(default=None, init=False)

    # --- scripting ----------------------------------------------------------------------------

    def script(self, *responses: Response | Responder) -> None:
        """Queue answers for the next requests, one each, in order."""
        self._queue.extend(responses)

    def rule(self, when: Callable[[MessagesRequest], bool], response: Response | Responder) -> None:
        """Answer every request matching *when* (after the queue is empty) with *response*."""
        self._rules.append((when, response))

    @property
    def pending(self) -> int:
        """Queued answers not used yet."""
        return len(self._queue)

    async def wait_for_requests(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until *count* ``/v1/messages`` requests have arrived."""
        with anyio.fail_after(timeout_s):
            while len(self.requests) < count:
                arrived = anyio.Event()
                self._waiters.append(arrived)
                await arrived.wait()

    def _choose(self, request: MessagesRequest) -> Response:
        item: Response | Responder | None = None
        if self._queue:
            item = self._queue.pop(0)
        else:
            for when, response in self._rules:
                if when(request):
                    item = response
                    break
        if item is None:
            item = self.default
        return item if isinstance(item, Reply | ApiError) else item(request)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake Messages API is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
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

    # --- handlers -----------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        return self.api_key in (request.headers.get("x-api-key"), bearer.removeprefix("Bearer "))

    async def _other(self, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            # Connection probes (HEAD / from 2.1.197, HEAD /api/hello without the quiet vars).
            self.other_requests.append((request.method, request.path))
            return web.Response(status=200)
        self.other_requests.append((request.method, request.path))
        log.info("fake Messages API: unknown %s %s", request.method, request.path)
        return web.json_response(
            {"type": "error", "error": {"type": "not_found_error", "message": f"Not found: {request.path}"}},
            status=404,
        )

    async def _read_json(self, request: web.Request) -> dict[str, Any] | ApiError:
        if not self._authorised(request):
            return ApiError.authentication()
        try:
            body = await request.json()
        except ValueError:
            return ApiError.invalid_request("The request body is not valid JSON.")
        if not isinstance(body, dict):
            return ApiError.invalid_request("The request body must be a JSON object.")
        return body

    def _error(self, error: ApiError, request_id: str) -> web.Response:
        headers = {"request-id": request_id}
        if error.retry_after_s is not None:
            headers["retry-after"] = f"{error.retry_after_s:g}"
        return web.json_response(error.body(), status=error.status, headers=headers)

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = await self._read_json(request)
        if isinstance(body, ApiError):
            return self._error(body, f"req_fake{next(self._ids)}")
        return web.json_response({"input_tokens": max(1, len(json.dumps(body)) // 4)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        request_id = f"req_fake{next(self._ids)}"
        body = await self._read_json(request)
        if isinstance(body, ApiError):
            return self._error(body, request_id)
        for field in ("model", "messages"):
            if field not in body:
                return self._error(ApiError.invalid_request(f"{field}: Field required"), request_id)
        recorded = MessagesRequest(path=request.path_qs, headers=_redact_headers(request.headers), body=body)
        self.requests.append(recorded)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()
        try:
            response = self._choose(recorded)
        except Exception as exc:
            log.exception("fake Messages API: responder failed")
            response = ApiError.server_error(f"fake responder failed: {exc}")
        if response.delay_s:
            await anyio.sleep(response.delay_s)
        if isinstance(response, ApiError):
            return self._error(response, request_id)
        blocks = self._materialise(response.blocks, recorded)
        input_tokens = max(1, len(json.dumps(body)) // 4)
        output_tokens = max(1, sum(len(json.dumps(b)) for b in blocks) // 4)
        message: dict[str, Any] = {
            "id": f"msg_fake{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": recorded.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        if not recorded.stream:
            message["content"] = blocks
            message["stop_reason"] = response.effective_stop_reason
            message["usage"]["output_tokens"] = output_tokens
            return web.json_response(message, headers={"request-id": request_id})
        return await self._stream(request, request_id, message, blocks, response, output_tokens)

    def _materialise(self, blocks: Sequence[Text | ToolUse], request: MessagesRequest) -> list[dict[str, Any]]:
        base = self.workdir or request.cwd
        out: list[dict[str, Any]] = []
        for block in blocks:
            if isinstance(block, Text):
                out.append({"type": "text", "text": block.text})
                continue
            tool_input = dict(block.input)
            for key in ("file_path", "notebook_path"):
                value = tool_input.get(key)
                if isinstance(value, str) and base and not value.startswith("/"):
                    tool_input[key] = str(PurePosixPath(base) / value)
            out.append(
                {
                    "type": "tool_use",
                    "id": block.id or f"toolu_fake{next(self._ids)}",
                    "name": block.name,
                    "input": tool_input,
                }
            )
        return out

    async def _stream(
        self,
        request: web.Request,
        request_id: str,
        message: dict[str, Any],
        blocks: list[dict[str, Any]],
        reply: Reply,
        output_tokens: int,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "request-id": request_id},
        )
        await response.prepare(request)
        try:
            await response.write(_sse("message_start", {"type": "message_start", "message": message}))
            await response.write(_sse("ping", {"type": "ping"}))
            if reply.stall_s:
                await anyio.sleep(reply.stall_s)
            for index, block in enumerate(blocks):
                start: dict[str, Any]
                if block["type"] == "text":
                    start = {"type": "text", "text": ""}
                    deltas = [{"type": "text_delta", "text": part} for part in _halves(block["text"])]
                else:
                    start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                    encoded = json.dumps(block["input"], ensure_ascii=False)
                    deltas = [{"type": "input_json_delta", "partial_json": part} for part in _halves(encoded)]
                await response.write(
                    _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
                )
                for delta in deltas:
                    await response.write(
                        _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                    )
                await response.write(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            await response.write(
                _sse(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": reply.effective_stop_reason, "stop_sequence": None},
                        "usage": {"output_tokens": output_tokens},
                    },
                )
            )
            await response.write(_sse("message_stop", {"type": "message_stop"}))
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            log.info("fake Messages API: the client went away mid-stream")
        return response
