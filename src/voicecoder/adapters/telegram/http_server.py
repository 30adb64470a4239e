"""
The HTTP server under the webhook and the health endpoints: aiohttp's low-level server and a fixed route table.

The webhook answers a handful of exact paths (the secret update path, ``/healthz``, ``/readyz``, ``/metrics``), so
``web.Application`` with its router, match-info objects, middleware chain and signals is cost without use on the
ack path: :class:`Routes` is one dict lookup per request in front of ``aiohttp.web.Server`` (ADR 0033). It keeps
what the router promised: an unknown path is 404, a known path with another method is 405 with ``Allow``, a GET
route answers HEAD, ``Expect: 100-continue`` is honoured (anything else expected is 417), and paths are compared
decoded as aiohttp's router does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, http_exceptions, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from voicecoder.domain.errors import StartupError

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Routes:
    """Exact path → method → handler; ``add_get`` / ``add_post`` as on aiohttp's router, and callable as a handler."""

    def __init__(self) -> None:
        self._table: dict[str, dict[str, Handler]] = {}

    def add_get(self, path: str, handler: Handler) -> None:
        """
        Answer GET (and HEAD, whose body aiohttp drops) on *path*.

        Raises:
            ValueError: *path* does not start with ``/``, or already has a GET handler.
        """
        self._add(path, handler, (hdrs.METH_GET, hdrs.METH_HEAD))

    def add_post(self, path: str, handler: Handler) -> None:
        """
        Answer POST on *path*.

        Raises:
            ValueError: *path* does not start with ``/``, or already has a POST handler.
        """
        self._add(path, handler, (hdrs.METH_POST,))

    def _add(self, path: str, handler: Handler, methods: tuple[str, ...]) -> None:
        if not path.startswith("/"):
            raise ValueError("a route's path must start with '/'")
        table = self._table.setdefault(path, {})
        if any(method in table for method in methods):
            raise ValueError(f"{methods[0]} already has a handler on that path")  # the path may be a secret
        table.update(dict.fromkeys(methods, handler))

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        methods = self._table.get(request.rel_url.path_safe)
        if methods is None:
            raise web.HTTPNotFound
        handler = methods.get(request.method)
        if handler is None:
            raise web.HTTPMethodNotAllowed(request.method, sorted(methods))
        expect = request.headers.get(hdrs.EXPECT)
        if expect is not None:
            await _continue(request, expect)
        return await handler(request)


async def _continue(request: web.BaseRequest, expect: str) -> None:
    """What aiohttp's router does for ``Expect``: 100 Continue for HTTP/1.1 ``100-continue``, else 417."""
    if request.version != HttpVersion11:
        return
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="Unknown Expect")  # the value is the client's, not echoed back
    await request.writer.write(_CONTINUE)
    request.writer.output_size = 0  # the answer's own size starts after the interim response


class MalformedRequestLogFilter(logging.Filter):
    """
    Turns aiohttp's ERROR tracebacks about requests a client got wrong into one INFO line each.

    aiohttp answers a request it cannot parse (a header byte HTTP forbids, a body whose Content-Encoding does not
    decode) with 400 itself, but logs it at ERROR with a traceback: anyone could fill the log that way. The
    problem is the client's, so it is worth a line, not an alarm.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if _client_fault(error):
            detail = " ".join(str(error).split())[:200]
            record.msg, record.args = "refused a malformed request: %s", (detail,)
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.exc_info = record.exc_text = None
        return True


def _client_fault(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, http_exceptions.HttpProcessingError | web.RequestPayloadError):
            return True
        error = error.__cause__
    return False


_AIOHTTP_SERVER_LOG = logging.getLogger("aiohttp.server")
DEFAULT_CLIENT_MAX_SIZE = 1 << 20
"""aiohttp's own default: the most a handler's ``read()`` accepts when the caller names no limit."""


async def listen(
    routes: Routes,
    host: str,
    port: int,
    *,
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
    shutdown_timeout_s: float = 10.0,
) -> web.BaseRunner:
    """
    Serve *routes* on host:port (0: any free port); the caller cleans the returned runner up.

    ``request.read()`` refuses a body above *client_max_size* (413). Malformed requests are logged as one INFO
    line, not an ERROR traceback (:class:`MalformedRequestLogFilter`). A client that disconnects does not cancel
    its handler. On cleanup, in-flight requests finish within *shutdown_timeout_s*.

    Raises:
        StartupError: The address cannot be bound (in use, not an address of this machine, no permission).
    """
    if not any(isinstance(f, MalformedRequestLogFilter) for f in _AIOHTTP_SERVER_LOG.filters):
        _AIOHTTP_SERVER_LOG.addFilter(MalformedRequestLogFilter())
    loop = asyncio.get_running_loop()

    def make_request(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=client_max_size)

    # No handler is cancelled when its client disconnects: a webhook commit that started finishes and is counted
    # (aiohttp's default, stated because the ingress relies on it).
    server = web.Server(routes, request_factory=make_request, access_log=None, handler_cancellation=False)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    except OSError as exc:
        await runner.cleanup()
        reason = exc.strerror or str(exc)
        raise StartupError(
            f"Cannot listen on {host}:{port}: {reason}. Set LISTEN_PORT (or LISTEN_HOST) to a free address "
            "of this machine, or stop what is using it."
        ) from None
    return runner


__all__ = ["DEFAULT_CLIENT_MAX_SIZE", "Handler", "MalformedRequestLogFilter", "Routes", "listen"]
