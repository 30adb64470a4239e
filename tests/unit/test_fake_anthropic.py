"""The fake Messages API over real HTTP on 127.0.0.1, checked against the public streaming format."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from voicecoder.simulators.anthropic import (
    ApiError,
    FakeAnthropicApi,
    MessagesRequest,
    Reply,
    Text,
    ToolUse,
    default_responder,
    demo_responder,
    write_file,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(name="api")
async def _api() -> AsyncIterator[FakeAnthropicApi]:
    async with FakeAnthropicApi() as api:
        yield api


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def body(prompt: str | list[dict[str, Any]] = "hello", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-opus-5-5",
        "max_tokens": 128000,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "system", "content": "Primary working directory: /ws/repo"},
            {"role": "user", "content": prompt},
        ],
        "tools": [{"name": "Write", "input_schema": {}}, {"name": "Bash", "input_schema": {}}],
        "context_management": {"edits": []},
        "some_future_beta_field": True,
        **extra,
    }


def parse_sse(raw: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


class TestFakeAnthropicApi:
    async def test_stream_follows_the_sse_event_order(self, api: FakeAnthropicApi, http: aiohttp.ClientSession) -> None:
        """A text + tool_use reply streams message_start, block start/delta/stop per block, message_delta, stop."""
        api.script(Reply((Text("I'll write."), ToolUse("Write", {"file_path": "a/b.txt", "content": "x\n"}))))

        async with http.post(f"{api.base_url}/v1/messages?beta=true", json=body()) as resp:
            raw = await resp.text()
            content_type = resp.headers["Content-Type"]

        events = parse_sse(raw)
        names = [name for name, _ in events]
        assert content_type.startswith("text/event-stream")
        assert names[0] == "message_start"
        assert names[-2:] == ["message_delta", "message_stop"]
        assert [n for n in names if n.startswith("content_block")] == [
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
        ] * 2
        assert all(data["type"] == name for name, data in events)
        start = events[0][1]["message"]
        assert (start["model"], start["role"], start["content"]) == ("claude-opus-5-5", "assistant", [])
        text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["index"] == 0)
        partial = "".join(
            d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1
        )
        assert text == "I'll write."
        assert json.loads(partial) == {"file_path": "/ws/repo/a/b.txt", "content": "x\n"}
        tool_start = next(d for n, d in events if n == "content_block_start" and d["index"] == 1)
        assert tool_start["content_block"]["name"] == "Write"
        assert tool_start["content_block"]["id"].startswith("toolu_")
        assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    async def test_non_streaming_message(self, api: FakeAnthropicApi, http: aiohttp.ClientSession) -> None:
        """Without stream the reply is one JSON message with end_turn."""
        api.script(Reply.text("plain"))

        async with http.post(f"{api.base_url}/v1/messages", json=body(stream=False)) as resp:
            message = await resp.json()

        assert message["type"] == "message"
        assert message["content"] == [{"type": "text", "text": "plain"}]
        assert message["stop_reason"] == "end_turn"
        assert message["usage"]["output_tokens"] >= 1

    @pytest.mark.parametrize(
        ("error", "status", "kind"),
        [
            (ApiError.overloaded(), 529, "overloaded_error"),
            (ApiError.server_error(), 500, "api_error"),
            (ApiError.rate_limited(2), 429, "rate_limit_error"),
            (ApiError.authentication(), 401, "authentication_error"),
        ],
    )
    async def test_scripted_errors_use_the_api_shape(
        self, api: FakeAnthropicApi, http: aiohttp.ClientSession, error: ApiError, status: int, kind: str
    ) -> None:
        """Errors come with their HTTP status and {"type": "error", "error": {type, message}}."""
        api.script(error)

        async with http.post(f"{api.base_url}/v1/messages", json=body()) as resp:
            payload = await resp.json()
            headers = resp.headers

        assert resp.status == status
        assert payload["type"] == "error"
        assert payload["error"]["type"] == kind
        assert payload["error"]["message"]
        assert ("retry-after" in headers) == (status == 429)

    async def test_bad_requests_are_400(self, api: FakeAnthropicApi, http: aiohttp.ClientSession) -> None:
        """Broken JSON and a missing required field are invalid_request_error; unknown fields are fine."""
        async with http.post(f"{api.base_url}/v1/messages", data=b"{nope") as broken:
            broken_body = await broken.json()
        async with http.post(f"{api.base_url}/v1/messages", json={"model": "m"}) as missing:
            missing_body = await missing.json()

        assert (broken.status, broken_body["error"]["type"]) == (400, "invalid_request_error")
        assert (missing.status, missing_body["error"]["message"]) == (400, "messages: Field required")
        assert api.requests == []

    async def test_required_key(self, http: aiohttp.ClientSession) -> None:
        """With api_key set, a wrong key is 401; x-api-key and Bearer both work."""
        async with FakeAnthropicApi(api_key="right") as api:
            async with http.post(f"{api.base_url}/v1/messages", json=body(), headers={"x-api-key": "wrong"}) as r1:
                status_wrong = r1.status
            async with http.post(f"{api.base_url}/v1/messages", json=body(), headers={"x-api-key": "right"}) as r2:
                await r2.read()
            async with http.post(
                f"{api.base_url}/v1/messages", json=body(), headers={"Authorization": "Bearer right"}
            ) as r3:
                await r3.read()

        assert (status_wrong, r2.status, r3.status) == (401, 200, 200)
        assert [r.headers["x-api-key"] for r in api.requests[:1]] == ["***"]

    async def test_probes_and_unknown_paths(self, api: FakeAnthropicApi, http: aiohttp.ClientSession) -> None:
        """HEAD probes answer 200; other paths are 404 and recorded; count_tokens answers."""
        async with http.head(f"{api.base_url}/api/hello") as head:
            head_status = head.status
        async with http.get(f"{api.base_url}/v1/models") as models:
            models_status = models.status
        async with http.post(f"{api.base_url}/v1/messages/count_tokens", json=body()) as count:
            tokens = await count.json()

        assert (head_status, models_status) == (200, 404)
        assert api.other_requests == [("HEAD", "/api/hello"), ("GET", "/v1/models")]
        assert tokens["input_tokens"] > 0

    async def test_queue_then_rules_then_default(self, api: FakeAnthropicApi, http: aiohttp.ClientSession) -> None:
        """Queued replies go first, then the first matching rule, then the default responder."""
        api.script(Reply.text("queued"))
        api.rule(lambda r: "rule" in r.prompt, Reply.text("by rule"))

        answers = []
        for prompt in ("rule please", "rule please", "anything"):
            async with http.post(f"{api.base_url}/v1/messages", json=body(prompt, stream=False)) as resp:
                answers.append((await resp.json())["content"][0]["text"])

        assert answers[:2] == ["queued", "by rule"]
        assert answers[2] == "fake-model: anything"
        assert api.pending == 0

    async def test_delay_and_wait_for_requests(self, api: FakeAnthropicApi, http: aiohttp.ClientSession) -> None:
        """A delayed reply is recorded at once but answered late; wait_for_requests sees it arrive."""
        api.script(Reply.text("late", delay_s=0.4))
        started = time.monotonic()
        elapsed: list[float] = []

        async def call() -> None:
            async with http.post(f"{api.base_url}/v1/messages", json=body()) as resp:
                await resp.read()
            elapsed.append(time.monotonic() - started)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await api.wait_for_requests(1, timeout_s=5)
            arrived = time.monotonic() - started

        assert arrived < 0.4 <= elapsed[0]


class TestMessagesRequest:
    def test_prompt_skips_system_reminders_and_finds_cwd(self) -> None:
        """The prompt is the user's own text; the cwd comes from the environment message."""
        request = MessagesRequest(
            "/v1/messages",
            {},
            body(
                [
                    {"type": "text", "text": "<system-reminder>\ngit status: clean\n</system-reminder>"},
                    {"type": "text", "text": "create file x.txt with y"},
                ]
            ),
        )

        assert request.prompt == "create file x.txt with y"
        assert request.cwd == "/ws/repo"
        assert request.tool_names == ["Write", "Bash"]


class TestDefaultResponder:
    def answer(self, prompt: str | list[dict[str, Any]]) -> Any:
        return default_responder(MessagesRequest("/v1/messages", {}, body(prompt)))

    def test_create_file(self) -> None:
        """'create file X with Y' is a Write of Y plus a newline."""
        reply = self.answer("please create file docs/notes.md with Hello there")

        assert reply.blocks[-1] == write_file("docs/notes.md", "Hello there\n")
        assert reply.effective_stop_reason == "tool_use"

    @pytest.mark.parametrize(
        ("prompt", "path", "content"),
        [
            ("create a file called test dot txt with hello world", "test.txt", "hello world\n"),
            ("Create a file called test.txt with the low world.", "test.txt", "the low world\n"),
            ("make a new file named src/app.py containing print(1)", "src/app.py", "print(1)\n"),
        ],
    )
    def test_spoken_create_file(self, prompt: str, path: str, content: str) -> None:
        """Voice-note phrasings of 'create a file' are understood too."""
        assert self.answer(prompt).blocks[-1] == write_file(path, content)

    def test_run_command(self) -> None:
        """'run command X' is a Bash call."""
        reply = self.answer("run command pytest -q")

        assert reply.blocks[-1] == ToolUse("Bash", {"command": "pytest -q", "description": "Run pytest -q"})

    def test_compaction_gets_a_summary(self) -> None:
        """The /compact request gets a <summary> answer."""
        reply = self.answer("CRITICAL: Respond with TEXT ONLY. Do NOT call any tools.")

        (block,) = reply.blocks
        assert isinstance(block, Text)
        assert block.text.startswith("<summary>")
        assert block.text.endswith("</summary>")

    def test_anything_else_is_echoed_for_tests_and_explained_in_the_sandbox(self) -> None:
        """An unknown request is echoed by the default (tests see which prompt was answered); the sandbox's
        demo_responder answers it with a sentence listing what to try."""
        request = MessagesRequest("/v1/messages", {}, body("how are you"))
        default, demo = default_responder(request), demo_responder(request)
        assert isinstance(default, Reply)
        assert isinstance(demo, Reply)
        (echoed,), (explained,) = default.blocks, demo.blocks

        assert isinstance(echoed, Text)
        assert echoed.text == "fake-model: how are you"
        assert isinstance(explained, Text)
        assert "run the tests" in explained.text
