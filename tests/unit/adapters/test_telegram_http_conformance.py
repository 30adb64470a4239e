"""
JsonHttpClient and TelegramBotApi against what other Bot API servers legally do on the wire (ADR 0044).

Each server here is a real one on 127.0.0.1: Python's own ``http.server`` (HTTP/1.0 by default) in a thread, or a
raw asyncio server that writes the answer byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.raw_http import raw_server, read_request
from voicecoder.adapters.telegram.api import PacingPolicy, TelegramBotApi
from voicecoder.adapters.telegram.http import HttpProtocolError, JsonHttpClient

TOKEN = "123:conformance"
NO_PACING = PacingPolicy(per_chat_rate=0, global_rate=0)
SENT = b'{"ok":true,"result":{"message_id":%d,"date":0,"chat":{"id":1,"type":"private"},"text":"x"}}'


class Http10Server:
    """
    Python's ``http.server`` as it is by default: HTTP/1.0, one answer per connection, then it closes.

    Records (client port, path, body) per request. *length* False leaves Content-Length out (the body then ends
    at the close); *keep_alive* True makes it an HTTP/1.0 server that keeps connections (``Connection:
    keep-alive``).
    """

    def __init__(self, *, length: bool = True, keep_alive: bool = False) -> None:
        self.seen: list[tuple[int, str, bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            if keep_alive:
                protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.seen.append((self.client_address[1], self.path, body))
                answer = SENT % len(owner.seen)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if length:
                    self.send_header("Content-Length", str(len(answer)))
                if keep_alive:
                    self.send_header("Connection", "keep-alive")
                    self.close_connection = False
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    @contextmanager
    def running(self) -> Iterator[Http10Server]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What voicecoder logged at WARNING or above (the test servers' own teardown noise left out)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("voicecoder")]


class TestHttp10:
    @pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
    async def test_fifty_sends_one_connection_each_no_warning(
        self, length: bool, caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        An HTTP/1.0 answer without ``Connection: keep-alive`` ends its connection (RFC 9112 §9.3): the next call
        opens a new one instead of landing on the closed one (which cost a warning and a back-off per call).
        """
        caplog.set_level(logging.WARNING)
        with Http10Server(length=length).running() as server:
            async with TelegramBotApi(TOKEN, base_url=f"http://127.0.0.1:{server.port}", pacing=NO_PACING) as api:
                ids = [await api.send_message_id(1, f"n{n}") for n in range(50)]

        assert ids == list(range(1, 51))
        assert [json.loads(body)["text"] for _, _, body in server.seen] == [f"n{n}" for n in range(50)]
        assert len({port for port, _, _ in server.seen}) == 50
        assert warnings_of(caplog) == []

    async def test_keep_alive_is_honoured(self) -> None:
        """An HTTP/1.0 server that answers ``Connection: keep-alive`` keeps one connection for every call."""
        with Http10Server(keep_alive=True).running() as server:
            client = JsonHttpClient(f"http://127.0.0.1:{server.port}")
            answers = [await client.post("/x", b"{}", time_limit=5) for _ in range(5)]
            await client.aclose()

        assert [status for status, _, _ in answers] == [200] * 5
        assert len({port for port, _, _ in server.seen}) == 1


def answer(body: bytes, *head: bytes) -> bytes:
    return b"\r\n".join([b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *head, b"", body])


class ClosingServer:
    """
    Answers the first request on each connection; then, per *mode*, what a server whose idle timer just fired does
    when the next request arrives: ``"rst"`` resets without reading it, ``"fin"`` closes without reading it, and
    ``"read-fin"`` reads it and closes without answering (the request reached the server).
    """

    def __init__(self, mode: str, *, answer_first: bool = True) -> None:
        self.mode = mode
        self.answer_first = answer_first
        self.answered: list[bytes] = []
        self.requests_seen = 0
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.answer_first:
            body = await read_request(reader)
            self.requests_seen += 1
            self.answered.append(body)
            writer.write(answer(b'{"ok":true,"result":{"n":%d}}' % len(self.answered)))
            await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request has arrived
        if self.mode == "read-fin":
            await read_request_rest(reader)
            self.requests_seen += 1
        elif self.mode == "rst":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()


async def read_request_rest(reader: asyncio.StreamReader) -> None:
    await reader.read(1 << 16)


class TestServerClosedTheKeptConnection:
    @pytest.mark.parametrize("mode", ["rst", "fin", "read-fin"])
    async def test_resent_once_on_a_new_connection_without_a_warning(
        self, mode: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        The server closed the reused connection as the request went out, with no byte of answer: the call succeeds
        on a new connection, without a warning or a back-off, and the server answered each request once.
        """
        caplog.set_level(logging.WARNING)
        server = ClosingServer(mode)
        async with (
            raw_server(server) as port,
            TelegramBotApi(TOKEN, base_url=f"http://127.0.0.1:{port}", pacing=NO_PACING) as api,
        ):
            first = await api.call("sendMessage", {"chat_id": 1, "text": "one"})
            second = await api.call("sendMessage", {"chat_id": 1, "text": "two"})

        assert (first, second) == ({"n": 1}, {"n": 2})
        assert [json.loads(b)["text"] for b in server.answered] == ["one", "two"]
        assert server.connections == 2
        assert warnings_of(caplog) == []

    async def test_a_new_connection_is_never_resent_silently(self) -> None:
        """
        Resending is for reused connections only, and once: a server that drops every request after the first
        on each connection gets the failing call twice (the reused connection, then one new one), never more.
        """
        server = ClosingServer("read-fin", answer_first=False)
        async with raw_server(server) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            with pytest.raises(ConnectionResetError):
                await client.post("/x", b"{}", time_limit=5)
            await client.aclose()

        assert (server.connections, server.requests_seen) == (1, 1)

    async def test_the_resend_is_bounded_to_one(self) -> None:
        """Reused connection dropped, then the new one dropped too: the error reaches the caller after two sends."""
        drops = ClosingServer("read-fin")
        answered_once: set[int] = set()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not answered_once:
                answered_once.add(1)
                await drops(reader, writer)
                return
            drops.connections += 1
            await read_request(reader)
            drops.requests_seen += 1
            writer.close()

        async with raw_server(handler) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            await client.post("/x", b"{}", time_limit=5)
            with pytest.raises(ConnectionResetError):
                await client.post("/x", b"{}", time_limit=5)
            await client.aclose()

        assert (drops.connections, drops.requests_seen) == (2, 3)


class ScriptedServer:
    """Writes the scripted answers in order, one per request, all on one connection unless it is closed."""

    def __init__(self, answers: list[bytes], segment: int = 0) -> None:
        self.answers = answers
        self.segment = segment
        self.connections = 0
        self.requests = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while self.answers:
            await read_request(reader)
            self.requests += 1
            data = self.answers.pop(0)
            if self.segment:
                for at in range(0, len(data), self.segment):
                    writer.write(data[at : at + self.segment])
                    await writer.drain()
            else:
                writer.write(data)
                await writer.drain()


async def post_all(port: int, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    client = JsonHttpClient(f"http://127.0.0.1:{port}")
    try:
        return [await client.post("/x", b"{}", time_limit=10) for _ in range(count)]
    finally:
        await client.aclose()


async def bodies_and_connections(*answers: bytes, segment: int = 0) -> tuple[list[bytes], int]:
    """Post once per scripted answer to a `ScriptedServer`: the bodies read, and the connections it took."""
    server = ScriptedServer(list(answers), segment)
    async with raw_server(server) as port:
        got = await post_all(port, len(answers))
    return [body for _, _, body in got], server.connections


def chunked(*parts: bytes, extension: bytes = b"", trailers: bytes = b"") -> bytes:
    coded = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in parts)
    return coded + b"0" + extension + b"\r\n" + trailers + b"\r\n"


class TestFraming:
    @pytest.mark.parametrize(
        "closing", [b"Connection: close", b"CONNECTION: Close", b"connection: TE, close"], ids=["plain", "case", "list"]
    )
    async def test_connection_close_in_any_spelling_ends_the_connection(self, closing: bytes) -> None:
        assert await bodies_and_connections(answer(b'{"a":1}', closing), answer(b'{"a":2}')) == (
            [b'{"a":1}', b'{"a":2}'],
            2,
        )

    async def test_chunked_with_extensions_and_trailers_keeps_the_connection(self) -> None:
        body = chunked(b'{"ok":', b"true}", extension=b';name="v";x=1', trailers=b"X-Trailer: yes\r\nX-Two: 2\r\n")
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        assert await bodies_and_connections(head + body, answer(b"{}")) == ([b'{"ok":true}', b"{}"], 1)

    async def test_transfer_encoding_wins_over_content_length_and_the_connection_is_dropped(self) -> None:
        """RFC 9112 §6.3: chunked framing is used; both headers may be a smuggling attempt, so no reuse."""
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        assert await bodies_and_connections(head + chunked(b'{"a":', b"1}"), answer(b"{}")) == ([b'{"a":1}', b"{}"], 2)

    async def test_interim_answers_before_the_answer(self) -> None:
        interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
        assert await bodies_and_connections(interim + answer(b'{"a":1}'), answer(b'{"a":2}')) == (
            [b'{"a":1}', b'{"a":2}'],
            1,
        )

    async def test_header_names_in_odd_case(self) -> None:
        head = (
            b"HTTP/1.1 429 Too Many\r\ncOnTeNt-LeNgTh: 2\r\nRETRY-AFTER: 7\r\ncontent-TYPE: application/json\r\n\r\n{}"
        )
        chunk = b"HTTP/1.1 200 OK\r\nTRANSFER-encoding: Chunked\r\n\r\n" + chunked(b"{}")
        server = ScriptedServer([head, chunk, answer(b"[]")])
        async with raw_server(server) as port:
            answers = await post_all(port, 3)

        assert answers[0][0] == 429
        assert answers[0][1]["retry-after"] == "7"
        assert [b for _, _, b in answers] == [b"{}", b"{}", b"[]"]
        assert server.connections == 1

    @pytest.mark.parametrize("kind", ["length", "chunked"])
    async def test_an_answer_in_one_byte_segments(self, kind: str) -> None:
        body = b'{"ok":true,"result":{"message_id":5}}'
        if kind == "length":
            first = answer(body)
        else:
            first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body[:9], body[9:])
        assert await bodies_and_connections(first, answer(b"{}"), segment=1) == ([body, b"{}"], 1)

    @pytest.mark.parametrize("kind", ["length", "small-chunks"])
    async def test_a_one_megabyte_answer(self, kind: str) -> None:
        """A 1 MB JSON answer, whole; in 16-byte chunks too (65 536 chunks, taken in as they come)."""
        frame = b'{"ok":true,"result":{"text":""}}'
        body = frame[:-3] + b"x" * ((1 << 20) - len(frame)) + frame[-3:]
        if kind == "length":
            first = answer(body)
        else:
            parts = [body[at : at + 16] for at in range(0, len(body), 16)]
            first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(*parts)
        server = ScriptedServer([first, answer(b"{}")])
        async with raw_server(server) as port:
            answers = await post_all(port, 2)

        assert answers[0][2] == body
        assert len(json.loads(answers[0][2])["result"]["text"]) == (1 << 20) - len(frame)
        assert server.connections == 1

    async def test_an_answer_after_the_deadline_is_never_read_as_the_next_answer(self) -> None:
        """The late answer's connection is dropped: the next call gets its own answer on a new connection."""
        late = asyncio.Event()
        connections: list[int] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(len(connections))
            first = not late.is_set()
            await read_request(reader)
            if first:
                late.set()
                await asyncio.sleep(0.3)
                writer.write(answer(b'{"late":true}'))
                await writer.drain()
            writer.write(answer(b'{"late":false}') if not first else b"")
            await writer.drain()
            await reader.read()

        async with raw_server(handler) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            with pytest.raises(TimeoutError):
                await client.post("/x", b"{}", time_limit=0.05)
            _, _, body = await client.post("/x", b"{}", time_limit=5)
            await client.aclose()

        assert body == b'{"late":false}'
        assert len(connections) == 2

    @pytest.mark.parametrize(
        "garbage",
        [b"hello there\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"HTTP/2 200\r\n\r\n"],
        ids=["text", "tls-bytes", "http2-line"],
    )
    async def test_a_non_http_answer_is_a_protocol_error(self, garbage: bytes) -> None:
        server = ScriptedServer([garbage])
        async with raw_server(server) as port:
            with pytest.raises(HttpProtocolError):
                await post_all(port, 1)

    async def test_a_bad_chunk_terminator_is_a_protocol_error(self) -> None:
        server = ScriptedServer([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n"])
        async with raw_server(server) as port:
            with pytest.raises(HttpProtocolError):
                await post_all(port, 1)
