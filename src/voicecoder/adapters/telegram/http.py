"""
A small HTTP/1.1 client for the Bot API's JSON calls: keep-alive connections to one origin, nothing else.

Every reply the bot sends is one such POST, so its cost is the bot's cost: aiohttp's general client spends about
four times the CPU per call of this one (profiled in ``bench/webhook.py``; see ADR 0015). It does only what a JSON
POST to the Bot API needs: ``http``/``https`` (TLS with the system's trust store and hostname check), a pool of
keep-alive connections (at most *max_connections*, idle ones retired after *max_idle_s* so a connection the server
has silently closed is rarely reused), ``Content-Length``, ``chunked`` (extensions and trailers skipped) or
until-close responses, interim 1xx answers, ``Connection: close``, and HTTP/1.0 answers (reused only with
``Connection: keep-alive``, RFC 9112 §9.3). Multipart uploads and file downloads stay on aiohttp.

A request on a reused connection that the server closed without a byte of answer (it had closed the idle connection
as the request went out: uvicorn after 5 s idle, nginx's ``keepalive_timeout``) is sent once more at once on a new
connection; every other failure is the caller's (ADR 0044).

Errors are the standard ones, for the caller to map: ``OSError`` (connection refused, reset, closed before the
answer was complete), ``TimeoutError``, and `HttpProtocolError` for an answer that is not HTTP/1.x. A request
whose connection failed may or may not have reached the server.
"""

from __future__ import annotations

import asyncio
import collections
import math
import ssl
import time
from typing import cast
from urllib.parse import urlsplit

__all__ = ["HttpProtocolError", "JsonHttpClient"]

_MAX_HEAD = 64 << 10
_MAX_BODY = 64 << 20
_HEADS_KEPT = 64


class HttpProtocolError(Exception):
    """The server's answer is not an HTTP/1.x response this client understands."""


class _UnansweredError(ConnectionResetError):
    """A reused connection closed before a byte of the answer: the server had closed it as the request went out."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reusable = True
        self.idle_since = time.monotonic()
        self.answers = 0
        """Exchanges this connection has completed: more than 0 means the next one reuses it."""
        self._heard = False  # a byte of the current exchange's answer arrived
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self._head: tuple[int, dict[str, str]] | None = None
        self._body_at = 0
        # How the answer's body ends, read from its head: *_length* bytes, chunked (parsed from *_chunk_at* on,
        # complete chunks kept in *_chunks*), or when the server closes (neither).
        self._length: int | None = None
        self._chunked = False
        self._chunks: list[bytes] = []
        self._chunk_at = 0
        self._chunked_size = 0
        self._closed = False
        # The exchange in progress must be answered by *_deadline*. One timer per connection checks it lazily: a
        # request that finishes leaves the timer armed, and when it fires it either fails the exchange in progress
        # (whose deadline has come) or re-arms for that exchange's later deadline. Under load that is one timer per
        # connection per time limit instead of ``call_at`` and ``cancel`` per request, which also kept the loop
        # rebuilding its heap of cancelled timers.
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it, so no isinstance check here.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._heard = True
        if self._waiter is None:  # bytes nobody asked for: the connection is out of step
            self._fail(HttpProtocolError("unexpected data from the server"))
            return
        try:
            self._parse()
        except HttpProtocolError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.reusable = False
        self._disarm()
        if self._waiter is not None and not self._waiter.done():
            if self._head is not None and self._length is None and not self._chunked:
                self._finish(bytes(self._buffer[self._body_at :]))  # the body ran until the server closed
                return
            if not self._heard and self.answers:
                self._waiter.set_exception(_UnansweredError("the server had closed the kept-alive connection"))
                return
            self._waiter.set_exception(ConnectionResetError("the server closed the connection before answering"))

    # --- requests --------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.reusable and not self._closed and self.transport is not None and not self.transport.is_closing()

    async def exchange(self, request: bytes, deadline: float | None = None) -> tuple[int, dict[str, str], bytes]:
        """
        Send *request* and wait for the whole answer; past *deadline* (the loop's clock) fail with TimeoutError.

        Raises:
            OSError: The connection is closed or closes before the answer is complete (`_UnansweredError` when it was
                reused and closed without a byte of answer).
            TimeoutError: No complete answer by *deadline* (the connection is dropped).
            HttpProtocolError: The answer is not HTTP/1.x.
        """
        if self.transport is None or self._closed:
            error = _UnansweredError if self.answers else ConnectionResetError  # a new connection is never resent on
            raise error("the connection to the server is closed")
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._buffer.clear()
        self._heard = False
        self._head = None
        self._deadline = deadline
        if deadline is not None and deadline < self._timer_at:
            self._arm(loop, deadline)
        self.transport.write(request)
        try:
            answer = await self._waiter
        finally:
            self._waiter = None
            self._deadline = None
            self.idle_since = time.monotonic()
        self.answers += 1
        return answer

    def close(self) -> None:
        self.reusable = False
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    # --- the deadline ----------------------------------------------------------------------------

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        self._disarm()
        self._timer = loop.call_at(at, self._on_timer, at)
        self._timer_at = at

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _on_timer(self, at: float) -> None:
        """The loop's clock reached *at*: fail the exchange in progress if its deadline came, else wait for it."""
        self._timer = None
        self._timer_at = math.inf
        deadline = self._deadline
        if self._waiter is None or deadline is None:
            return  # idle, or an exchange without a deadline: nothing to time
        if deadline <= at:
            self._fail(TimeoutError("no complete answer from the server in time"))
        else:
            self._arm(asyncio.get_running_loop(), deadline)

    # --- parsing ---------------------------------------------------------------------------------

    def _parse(self) -> None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    raise HttpProtocolError("response head too large")
                return
            status, headers = _parse_head(bytes(self._buffer[:end]))
            if 100 <= status < 200:  # an interim answer: the real one follows
                del self._buffer[: end + 4]
                self._parse()
                return
            self._head = (status, headers)
            self._body_at = self._chunk_at = end + 4
            self._read_framing(status, headers)
        if self._chunked:
            if self._dechunk():
                self._finish(b"".join(self._chunks))
            return
        length = self._length
        if length is not None and len(self._buffer) - self._body_at >= length:
            if len(self._buffer) - self._body_at > length:  # more than was announced: out of step
                self.reusable = False
            self._finish(bytes(self._buffer[self._body_at : self._body_at + length]))

    def _read_framing(self, status: int, headers: dict[str, str]) -> None:
        """How the body ends (RFC 9112 §6.3) and whether the connection may carry another request (§9.3)."""
        connection = headers.get("connection")
        if connection is None:
            if self._buffer.startswith(b"HTTP/1.0"):
                self.reusable = False  # an HTTP/1.0 server closes after each answer unless it says keep-alive
        elif connection.lower() != "keep-alive":
            tokens = {token.strip() for token in connection.lower().split(",")}
            if "close" in tokens or ("keep-alive" not in tokens and self._buffer.startswith(b"HTTP/1.0")):
                self.reusable = False
        coding = headers.get("transfer-encoding")
        if coding is None:  # the usual case: Content-Length
            self._chunked = False
            length_text = headers.get("content-length")
            if length_text is not None:
                try:
                    length = int(length_text)
                except ValueError:
                    raise HttpProtocolError("invalid Content-Length") from None
                if not 0 <= length <= _MAX_BODY:
                    raise HttpProtocolError("Content-Length out of range")
                self._length = length
            elif status in {204, 304}:
                self._length = 0
            else:
                self._length = None
                self.reusable = False  # the body ends when the server closes: see connection_lost
            return
        self._length = None
        self._chunked = coding.lower().rstrip().endswith("chunked")
        self._chunks = []
        self._chunked_size = 0
        # Transfer-Encoding overrides Content-Length; both at once may be a smuggling attempt, so the connection is
        # not trusted with another request. A last coding other than chunked runs until the server closes.
        if "content-length" in headers or not self._chunked:
            self.reusable = False

    def _dechunk(self) -> bool:
        """Take the complete chunks after *_chunk_at*; True once the last chunk and the trailers are in."""
        buffer = self._buffer
        at = self._chunk_at
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                if len(buffer) - at > _MAX_HEAD:
                    raise HttpProtocolError("chunk size line too long")
                break
            size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()  # chunk extensions are ignored
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpProtocolError("invalid chunk size") from None
            if size < 0 or self._chunked_size + size > _MAX_BODY:
                raise HttpProtocolError("chunked body too large")
            if size == 0:  # then trailers, usually none, up to an empty line
                trailers = buffer.find(b"\r\n\r\n", line_end)
                if trailers < 0:
                    break
                if len(buffer) > trailers + 4:  # more than the message: out of step
                    self.reusable = False
                return True
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                break
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise HttpProtocolError("chunk data not followed by CRLF")
            self._chunks.append(bytes(buffer[line_end + 2 : data_end]))
            self._chunked_size += size
            at = data_end + 2
        self._chunk_at = at
        return False

    def _finish(self, body: bytes) -> None:
        assert self._head is not None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._head[0], self._head[1], body))

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpProtocolError("not an HTTP/1.x response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HttpProtocolError("malformed header line")
        key = name.strip().decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return int(parts[1]), headers


class JsonHttpClient:
    """
    POSTs JSON to paths under *base_url* over a pool of keep-alive connections. Use one instance per event loop.

    ``post`` returns (status, headers with lower-case names, body) for any HTTP status; see the module docstring
    for what it raises.
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        max_idle_s: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """*ssl_context* replaces the system trust store for https (a private CA, a self-signed local server)."""
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._secure = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._secure else 80)
        self._prefix = parts.path.rstrip("/")
        default_port = self._port == (443 if self._secure else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = (host if default_port else f"{host}:{self._port}").encode("idna")
        self._ssl = (ssl_context or ssl.create_default_context()) if self._secure else None
        self._max_idle_s = max_idle_s
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()
        # A request's head up to its Content-Length value, per path: the bot calls a handful of methods.
        self._heads: dict[str, bytes] = {}

    async def post(self, path: str, body: bytes, *, time_limit: float) -> tuple[int, dict[str, str], bytes]:
        """
        POST *body* (JSON) to the base URL's path + *path* and return the answer.

        Raises:
            OSError: The connection failed or closed before the answer was complete.
            TimeoutError: No complete answer within *time_limit* seconds (the connection is dropped).
            HttpProtocolError: The answer is not HTTP/1.x.
        """
        head = self._heads.get(path)
        if head is None:
            if len(self._heads) >= _HEADS_KEPT:
                self._heads.clear()
            head = self._heads[path] = b"".join(
                (
                    b"POST ",
                    (self._prefix + path).encode(),
                    b" HTTP/1.1\r\nHost: ",
                    self._host_header,
                    b"\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: ",
                )
            )
        request = b"".join((head, str(len(body)).encode(), b"\r\n\r\n", body))
        connection = self._idle_connection() if not self._slots.locked() else None
        if connection is not None:  # the usual case under load: no waiting, so the exchange alone has the deadline
            async with self._slots:
                return await self._exchange(connection, request, asyncio.get_running_loop().time() + time_limit)
        async with asyncio.timeout(time_limit), self._slots:  # the limit covers the wait for a free connection too
            connection = self._idle_connection() or await self._new_connection()
            return await self._exchange(connection, request, None)

    async def _exchange(
        self, connection: _Connection, request: bytes, deadline: float | None
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            answer = await connection.exchange(request, deadline)
        except _UnansweredError:
            # The server closed the reused connection as the request went out, without a byte of answer: the
            # request was not processed, so it goes once more, at once, on a new connection (whose own failure
            # is the caller's: a new connection is never retried here). See ADR 0044.
            self._discard(connection)
            if deadline is None:
                connection = await self._new_connection()
            else:
                async with asyncio.timeout_at(deadline):
                    connection = await self._new_connection()
            return await self._exchange(connection, request, deadline)
        except BaseException:
            self._discard(connection)
            raise
        if connection.usable:
            self._idle.append(connection)
        else:
            self._discard(connection)
        return answer

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle and now - self._idle[0].idle_since >= self._max_idle_s:
            self._discard(self._idle.popleft())
        while self._idle:
            connection = self._idle.pop()  # the most recently used one is the least likely to be stale
            if connection.usable and now - connection.idle_since < self._max_idle_s:
                return connection
            self._discard(connection)
        return None

    async def _new_connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Connection, self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._secure else None
        )
        self._open.add(connection)
        return connection

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)
