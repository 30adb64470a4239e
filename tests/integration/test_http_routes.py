"""
The webhook's HTTP layer (`http_server.Routes` on aiohttp's low-level server) keeps what aiohttp's router promised.

Through a real server on 127.0.0.1: unknown paths 404, other methods 405 with ``Allow``, HEAD on GET routes,
paths compared decoded and without the query, ``Expect: 100-continue`` answered before the body is sent (any
other expectation 417, the handler never called), the body limit, and route-table mistakes refused at build time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from voicecoder.adapters.telegram.http_server import Routes, listen


class Echo:
    """A POST handler that answers with the body it read, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.calls += 1
        try:
            body = await request.read()
        except aiohttp.web.HTTPRequestEntityTooLarge:
            return aiohttp.web.Response(status=413)
        return aiohttp.web.Response(body=b"got " + body)


async def hello(_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
    return aiohttp.web.Response(text="hello there")


@pytest.fixture(name="served")
async def _served() -> AsyncIterator[tuple[str, Echo]]:
    routes = Routes()
    echo = Echo()
    routes.add_get("/hello", hello)
    routes.add_post("/echo", echo)
    routes.add_post("/hello", echo)
    runner = await listen(routes, "127.0.0.1", 0, client_max_size=100)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", echo
    finally:
        await runner.cleanup()


async def test_unknown_path_is_404_and_another_method_405_with_allow(served: tuple[str, Echo]) -> None:
    url, echo = served
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/nowhere") as missing:
            missing_status = missing.status
        async with session.delete(url + "/hello") as wrong:
            wrong_status, allow = wrong.status, wrong.headers.get("Allow")
        async with session.get(url + "/echo") as get_on_post:
            get_on_post_status, post_allow = get_on_post.status, get_on_post.headers.get("Allow")
    assert missing_status == 404
    assert wrong_status == 405
    assert allow is not None
    assert set(allow.split(",")) == {"GET", "HEAD", "POST"}
    assert get_on_post_status == 405
    assert post_allow == "POST"
    assert echo.calls == 0


async def test_get_route_answers_head_without_a_body(served: tuple[str, Echo]) -> None:
    url, _ = served
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/hello") as got:
            get_body, get_length = await got.read(), got.headers["Content-Length"]
        async with session.head(url + "/hello") as head:
            head_status, head_body, head_length = head.status, await head.read(), head.headers["Content-Length"]
    assert get_body == b"hello there"
    assert head_status == 200
    assert head_body == b""
    assert head_length == get_length  # HEAD describes the GET answer


async def test_path_is_matched_decoded_and_without_the_query(served: tuple[str, Echo]) -> None:
    url, _ = served
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/he%6Clo?x=1") as got:  # %6C is "l"
            status, body = got.status, await got.read()
        async with session.get(url + "/hello/") as slash:
            slash_status = slash.status
    assert (status, body) == (200, b"hello there")
    assert slash_status == 404  # exact paths only, as the router's plain resources


async def test_body_above_the_limit_is_refused_even_when_chunked(served: tuple[str, Echo]) -> None:
    url, echo = served

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 30

    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/echo", data=b"y" * 100) as fits:
            fits_status, fits_body = fits.status, await fits.read()
        async with session.post(url + "/echo", data=chunks()) as chunked:
            chunked_status = chunked.status
    assert (fits_status, fits_body) == (200, b"got " + b"y" * 100)
    assert chunked_status == 413
    assert echo.calls == 2


async def _exchange(url: str, head: bytes, body: bytes | None = None) -> tuple[bytes, bytes]:
    """Send *head*; read one response head, then (with *body*) send the body and read the final answer."""
    host, port = url.removeprefix("http://").split(":")
    async with await anyio.connect_tcp(host, int(port)) as stream:
        reader = BufferedByteReceiveStream(stream)
        await stream.send(head)
        first = await reader.receive_until(b"\r\n\r\n", 65536)
        if body is None:
            return first, b""
        await stream.send(body)
        final = await reader.receive_until(b"\r\n\r\n", 65536)
        length = int(next(v for k, v in _fields(final) if k == b"content-length"))
        return first, final + b"\r\n\r\n" + await reader.receive_exactly(length)


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])]


async def test_expect_100_continue_is_answered_before_the_body(served: tuple[str, Echo]) -> None:
    url, echo = served
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with anyio.fail_after(10):
        first, final = await _exchange(url, head, b"hello")
    assert first == b"HTTP/1.1 100 Continue"
    assert final.startswith(b"HTTP/1.1 200 ")
    assert final.endswith(b"\r\n\r\ngot hello")
    assert echo.calls == 1


async def test_any_other_expectation_is_417_without_calling_the_handler(served: tuple[str, Echo]) -> None:
    url, echo = served
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: teapot\r\nConnection: close\r\n\r\nhello"
    with anyio.fail_after(10):
        first, _ = await _exchange(url, head)
    assert first.startswith(b"HTTP/1.1 417 ")
    assert echo.calls == 0


def test_route_table_mistakes_are_refused() -> None:
    routes = Routes()
    routes.add_get("/a", hello)
    routes.add_post("/a", hello)  # another method on the same path is fine
    with pytest.raises(ValueError, match="already has a handler"):
        routes.add_get("/a", hello)
    with pytest.raises(ValueError, match="must start with '/'"):
        routes.add_post("a", hello)
