"""JsonHttpClient against real servers on 127.0.0.1: keep-alive, framing, closing, timeouts, TLS."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.raw_http import raw_server, read_request
from voicecoder.adapters.telegram.http import HttpProtocolError, JsonHttpClient


@asynccontextmanager
async def aiohttp_server(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


class Echo:
    """An aiohttp app that answers each POST with its JSON body and records the connection it came on."""

    def __init__(self) -> None:
        self.peers: list[object] = []
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        body = await request.json()
        if body.get("chunked"):
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (b'{"path":', json.dumps(request.path).encode(), b"}"):
                await response.write(part)
            await response.write_eof()
            return response
        if body.get("close"):
            return web.json_response({"path": request.path}, headers={"Connection": "close"})
        if body.get("sleep"):
            await asyncio.sleep(body["sleep"])
        return web.json_response({"path": request.path}, status=body.get("status", 200))


def test_works_on_uvloop() -> None:
    """Embedders' bots often run on uvloop, whose transports do not subclass asyncio.Transport."""
    import uvloop  # noqa: PLC0415 - only this test needs it

    async def exchange() -> tuple[list[tuple[int, object]], list[object]]:
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            answers = [
                await client.post(f"/{n}", body, time_limit=5)
                for n, body in enumerate((b"{}", b'{"chunked": true}', b'{"close": true}', b"{}"))
            ]
            await client.aclose()
        return [(status, json.loads(body)["path"]) for status, _, body in answers], echo.peers

    answers, peers = uvloop.run(exchange())

    assert answers == [(200, "/0"), (200, "/1"), (200, "/2"), (200, "/3")]
    assert peers[0] == peers[1] == peers[2] != peers[3]


class TestJsonHttpClient:
    async def test_keeps_the_connection_alive(self) -> None:
        """Sequential calls reuse one connection; the base URL's path is kept in front."""
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}/prefix/")
            answers = [await client.post("/botX/getMe", b"{}", time_limit=5) for _ in range(3)]
            await client.aclose()

        assert [(s, json.loads(b)["path"]) for s, _, b in answers] == [(200, "/prefix/botX/getMe")] * 3
        assert len(set(echo.peers)) == 1

    async def test_each_request_goes_to_its_own_path_with_its_own_body(self) -> None:
        """Heads kept per path: alternating paths, bodies of every length, and more paths than are kept."""
        seen: list[tuple[str, bytes]] = []

        async def record(request: web.Request) -> web.Response:
            seen.append((request.path, await request.read()))
            return web.json_response({})

        app = web.Application()
        app.router.add_post("/{tail:.*}", record)
        sent = [(f"/bot1:T/m{n % 3 if n < 30 else n}", json.dumps({"n": "x" * n}).encode()) for n in range(130)]
        async with aiohttp_server(app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}/base")
            for path, body in sent:
                await client.post(path, body, time_limit=5)
            await client.aclose()

        assert seen == [(f"/base{path}", body) for path, body in sent]

    async def test_statuses_chunked_bodies_and_connection_close(self) -> None:
        """Any status comes back with its body; chunked bodies are joined; Connection: close opens a new one."""
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            refused = await client.post("/a", b'{"status": 429}', time_limit=5)
            chunked = await client.post("/b", b'{"chunked": true}', time_limit=5)
            closing = await client.post("/c", b'{"close": true}', time_limit=5)
            after = await client.post("/d", b"{}", time_limit=5)
            await client.aclose()

        assert (refused[0], json.loads(refused[2])) == (429, {"path": "/a"})
        assert "chunked" in chunked[1]["transfer-encoding"]
        assert json.loads(chunked[2]) == {"path": "/b"}
        assert json.loads(closing[2]) == {"path": "/c"}
        assert json.loads(after[2]) == {"path": "/d"}
        assert echo.peers[2] == echo.peers[1]
        assert echo.peers[3] != echo.peers[2]

    async def test_at_most_max_connections(self) -> None:
        """Concurrent calls beyond the limit wait for a connection instead of opening more."""
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}", max_connections=2)
            answers = await asyncio.gather(*(client.post("/x", b'{"sleep": 0.05}', time_limit=5) for _ in range(6)))
            await client.aclose()

        assert [a[0] for a in answers] == [200] * 6
        assert len(set(echo.peers)) == 2

    async def test_a_call_that_gives_up_waiting_for_a_connection_takes_no_slot(self) -> None:
        """
        Past its limit while every connection is busy: TimeoutError; cancelled while waiting: gone. Neither keeps
        a slot, and the limit counts the wait for a connection (it is the time to an answer).

        Afterwards two calls still run at once on a limit of two (with a slot kept, the second would wait for the
        first and reuse its connection), and a third still waits (with a slot handed out twice, it would not).
        """
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}", max_connections=2)
            slow = [asyncio.create_task(client.post("/slow", b'{"sleep": 0.3}', time_limit=5)) for _ in range(2)]
            while len(echo.peers) < 2:
                await asyncio.sleep(0.01)
            cancelled = asyncio.create_task(client.post("/cancelled", b"{}", time_limit=5))
            await asyncio.sleep(0)
            cancelled.cancel()
            with pytest.raises(TimeoutError):
                await client.post("/late", b"{}", time_limit=0.05)
            answers = [await task for task in slow]
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            seen = len(echo.peers)
            after = await asyncio.gather(*(client.post("/x", b'{"sleep": 0.2}', time_limit=5) for _ in range(3)))
            await client.aclose()

        assert [a[0] for a in [*answers, *after]] == [200] * 5
        assert seen == 2  # neither the cancelled nor the late call reached the server
        assert len(set(echo.peers[seen:])) == 2  # three calls, two connections, two at a time

    async def test_stale_idle_connection_is_not_reused(self) -> None:
        """A connection idle longer than max_idle_s is closed and replaced (the server may have dropped it)."""
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}", max_idle_s=0.05)
            await client.post("/x", b"{}", time_limit=5)
            await asyncio.sleep(0.1)
            await client.post("/x", b"{}", time_limit=5)
            await client.aclose()

        assert echo.peers[0] != echo.peers[1]

    async def test_interim_answer_and_body_until_close(self) -> None:
        """A 100 Continue is skipped; a body without length ends when the server closes."""

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
            writer.write(b'{"ok": true}')
            await writer.drain()
            writer.close()

        async with raw_server(handler) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            status, _, body = await client.post("/x", b"{}", time_limit=5)
            await client.aclose()

        assert (status, body) == (200, b'{"ok": true}')

    @pytest.mark.parametrize(
        ("answer", "error"),
        [
            (b"", ConnectionResetError),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", ConnectionResetError),
            (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", HttpProtocolError),
            (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n", HttpProtocolError),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpProtocolError),
        ],
        ids=["closed-silently", "closed-mid-body", "not-http", "bad-length", "bad-chunk"],
    )
    async def test_broken_answers_raise(self, answer: bytes, error: type[Exception]) -> None:
        """A server that closes early or does not speak HTTP/1.x is an error, not a hang or a half answer."""

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()

        async with raw_server(handler) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            with pytest.raises(error):
                await client.post("/x", b"{}", time_limit=5)
            await client.aclose()

    async def test_timeout_drops_the_connection(self) -> None:
        """No answer in time is TimeoutError; the next call uses a fresh connection."""
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            with pytest.raises(TimeoutError):
                await client.post("/slow", b'{"sleep": 0.3}', time_limit=0.05)
            status, _, _ = await client.post("/fast", b"{}", time_limit=5)
            await client.aclose()

        assert status == 200
        assert echo.peers[0] != echo.peers[1]

    async def test_timeout_on_a_kept_alive_connection_drops_it(self) -> None:
        """A reused idle connection has the same deadline: TimeoutError, and that connection is not used again."""
        echo = Echo()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            await client.post("/fast", b"{}", time_limit=5)
            with pytest.raises(TimeoutError):
                await client.post("/slow", b'{"sleep": 0.3}', time_limit=0.05)
            status, _, _ = await client.post("/fast", b"{}", time_limit=5)
            await client.aclose()

        assert status == 200
        assert echo.peers[0] == echo.peers[1]
        assert echo.peers[2] != echo.peers[1]

    async def test_each_request_on_a_kept_alive_connection_has_its_own_deadline(self) -> None:
        """
        An earlier request's shorter limit never cuts a later one short, and a later one still fails at its own.

        The connection times its requests with one timer that outlives them (it is not cancelled per request).
        """
        echo = Echo()
        loop = asyncio.get_running_loop()
        async with aiohttp_server(echo.app) as port:
            client = JsonHttpClient(f"http://127.0.0.1:{port}")
            await client.post("/fast", b"{}", time_limit=0.1)
            status, _, _ = await client.post("/slow", b'{"sleep": 0.3}', time_limit=5)  # outlives the 0.1 s
            await client.post("/fast", b"{}", time_limit=0.1)
            started = loop.time()
            with pytest.raises(TimeoutError):
                await client.post("/slower", b'{"sleep": 1.5}', time_limit=0.5)
            waited = loop.time() - started
            await client.aclose()

        assert status == 200
        assert echo.peers[0] == echo.peers[1] == echo.peers[2] == echo.peers[3]
        assert waited >= 0.5

    async def test_connection_refused_is_an_oserror(self) -> None:
        """Nothing listening: OSError (the caller's 'network error')."""

        async def nothing(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
            return

        async with raw_server(nothing) as port:
            pass
        client = JsonHttpClient(f"http://127.0.0.1:{port}")

        with pytest.raises(OSError):  # noqa: PT011 - any connection failure is the point
            await client.post("/x", b"{}", time_limit=5)


@pytest.fixture(name="certificate")
def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    done = subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=False,
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(reason="openssl could not create a test certificate")
    return key, cert


class TestTls:
    async def test_https_verifies_the_certificate(self, certificate: tuple[Path, Path]) -> None:
        """https works with a trusted certificate and is refused with an untrusted one (verification is on)."""
        key, cert = certificate
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert, key)
        trusting = ssl.create_default_context(cafile=str(cert))
        echo = Echo()
        async with aiohttp_server(echo.app, server) as port:
            trusted = JsonHttpClient(f"https://localhost:{port}", ssl_context=trusting)
            status, _, body = await trusted.post("/botX/getMe", b"{}", time_limit=5)
            await trusted.aclose()
            default = JsonHttpClient(f"https://localhost:{port}")
            with pytest.raises(ssl.SSLCertVerificationError):
                await default.post("/botX/getMe", b"{}", time_limit=5)
            await default.aclose()

        assert (status, json.loads(body)) == (200, {"path": "/botX/getMe"})
