"""
The server side of MTProto 2.0 for a local fake Telegram: TCP "full" framing, message encryption, RPC results.

Telethon's client code runs unchanged against it: its `ConnectionTcpFull` connects to 127.0.0.1, its
`MTProtoSender` encrypts with the session's auth key, and everything it sends is parsed back from TL bytes with
Telethon's own `BinaryReader`, so a request Telethon could not serialise never reaches the fake, and every result
is serialised to bytes that Telethon must parse. What is *not* here is the Diffie-Hellman key exchange: it needs
Telegram's private RSA key. `MtprotoServer.new_auth_key` makes a key both sides share instead (a session string
carries it to the client); see docs/adr for the limits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from telethon.crypto import AES, AuthKey
from telethon.extensions import BinaryReader
from telethon.tl.core import GzipPacked, MessageContainer
from telethon.tl.types import RpcError

log = logging.getLogger(__name__)

RPC_RESULT = 0xF35C6D01
VECTOR = 0x1CB5C415
BOOL_TRUE = 0x997275B5


class RpcFailure(Exception):  # noqa: N818 - named after the TL type it becomes (rpc_error)
    """Raised by a request handler: answered as ``rpc_error`` with Telegram's code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def tl_true() -> bytes:
    return struct.pack("<I", BOOL_TRUE)


def tl_vector(items: list[Any]) -> bytes:
    return struct.pack("<Ii", VECTOR, len(items)) + b"".join(bytes(item) for item in items)


def _aes_key_iv(auth_key: bytes, msg_key: bytes, *, from_client: bool) -> tuple[bytes, bytes]:
    # core.telegram.org/mtproto/description: x = 0 for messages from client to server, 8 the other way.
    x = 0 if from_client else 8
    a = hashlib.sha256(msg_key + auth_key[x : x + 36]).digest()
    b = hashlib.sha256(auth_key[x + 40 : x + 76] + msg_key).digest()
    return a[:8] + b[8:24] + a[24:32], b[:8] + a[8:24] + b[24:32]


@attrs.define
class ClientSession:
    """One TCP connection of one client: its key, its MTProto session id, the user its key is logged in as."""

    key: AuthKey
    writer: asyncio.StreamWriter
    session_id: int = 0
    salt: int = 0
    _seq: int = 0
    _last_msg_id: int = 0
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    def _msg_id(self, *, response: bool) -> int:
        # Server message ids are odd, grow with time: ≡ 1 (mod 4) for responses, ≡ 3 for everything else.
        now = time.time()
        candidate = (int(now) << 32) | (int((now % 1) * 2**30) << 2)
        candidate = max(candidate, self._last_msg_id + 4) & ~3
        self._last_msg_id = candidate
        return candidate | (1 if response else 3)

    async def send(self, body: bytes, *, response: bool) -> None:
        async with self._lock:
            plain = struct.pack("<qqqii", self.salt, self.session_id, self._msg_id(response=response), 1, len(body))
            plain += body
            plain += os.urandom(-(len(plain) + 12) % 16 + 12)
            key = self.key.key
            msg_key = hashlib.sha256(key[96:128] + plain).digest()[8:24]
            aes_key, aes_iv = _aes_key_iv(key, msg_key, from_client=False)
            payload = struct.pack("<Q", self.key.key_id) + msg_key + AES.encrypt_ige(plain, aes_key, aes_iv)
            head = struct.pack("<ii", len(payload) + 12, self._seq) + payload
            self._seq += 1
            self.writer.write(head + struct.pack("<I", zlib.crc32(head)))
            await self.writer.drain()


Handler = Callable[[ClientSession, Any], Awaitable[bytes]]
"""Answers one request object with the serialised result (a TL object's bytes, a vector, a bool)."""


class MtprotoServer:
    """Accepts Telethon connections on 127.0.0.1 and hands each decrypted request to *handler*."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.keys: dict[int, AuthKey] = {}
        self.sessions: list[ClientSession] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def new_auth_key(self) -> AuthKey:
        """A fresh 2048-bit auth key the fake accepts (what the DH exchange would have produced)."""
        key = AuthKey(os.urandom(256))
        self.keys[key.key_id] = key
        return key

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # the connection's reader sees EOF and its handler returns
        if self._tasks:
            _, stuck = await asyncio.wait(list(self._tasks), timeout=5)
            for task in stuck:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def push(self, session: ClientSession, body: bytes) -> None:
        """Send a server-initiated message (an ``Updates`` object) to one connected client."""
        await session.send(body, response=False)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        session: ClientSession | None = None
        try:
            while True:
                packet = await self._read_packet(reader)
                if packet is None:
                    return
                key_id = struct.unpack("<Q", packet[:8])[0]
                key = self.keys.get(key_id)
                if key is None:
                    # Key 0 is the unencrypted DH exchange, which this fake does not do; an unknown key is what
                    # Telegram answers with -404 (the client then drops it).
                    log.warning("fake telegram: connection with unknown auth key %x refused", key_id)
                    head = struct.pack("<iii", 16, 0, -404)
                    writer.write(head + struct.pack("<I", zlib.crc32(head)))
                    await writer.drain()
                    return
                if session is None:
                    session = ClientSession(key, writer)
                    self.sessions.append(session)
                await self._message(session, packet)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            if session is not None and session in self.sessions:
                self.sessions.remove(session)
            writer.close()
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    async def _read_packet(reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readexactly(8)
        except asyncio.IncompleteReadError:
            return None
        length, _seq = struct.unpack("<ii", head)
        body = await reader.readexactly(length - 8)
        if zlib.crc32(head + body[:-4]) != struct.unpack("<I", body[-4:])[0]:
            raise ConnectionError("bad CRC32 in a packet from the client")
        return body[:-4]

    async def _message(self, session: ClientSession, packet: bytes) -> None:
        msg_key = packet[8:24]
        aes_key, aes_iv = _aes_key_iv(session.key.key, msg_key, from_client=True)
        plain = AES.decrypt_ige(packet[24:], aes_key, aes_iv)
        if hashlib.sha256(session.key.key[88:120] + plain).digest()[8:24] != msg_key:
            raise ConnectionError("msg_key does not match the message: wrong key or a corrupted packet")
        salt, session_id, msg_id, _seq, length = struct.unpack("<qqqii", plain[:32])
        session.salt, session.session_id = salt, session_id
        with BinaryReader(plain[32 : 32 + length]) as reader:
            obj = reader.tgread_object()
        await self._dispatch(session, msg_id, obj)

    async def _dispatch(self, session: ClientSession, msg_id: int, obj: Any) -> None:
        if isinstance(obj, MessageContainer):
            for inner in obj.messages:
                await self._dispatch(session, inner.msg_id, inner.obj)
            return
        if isinstance(obj, GzipPacked):
            with BinaryReader(obj.data) as reader:
                await self._dispatch(session, msg_id, reader.tgread_object())
            return
        name = type(obj).__name__
        if name == "MsgsAck":
            return
        if name in {"PingRequest", "PingDelayDisconnectRequest"}:
            from telethon.tl.types import Pong  # noqa: PLC0415 - only for keep-alives

            await session.send(bytes(Pong(msg_id=msg_id, ping_id=obj.ping_id)), response=False)
            return
        try:
            result = await self._handler(session, obj)
        except RpcFailure as failure:
            result = bytes(RpcError(failure.code, failure.message))
        except Exception:
            log.exception("fake telegram: %s failed", name)
            result = bytes(RpcError(500, "INTERNAL_SERVER_ERROR"))
        await session.send(struct.pack("<Iq", RPC_RESULT, msg_id) + result, response=True)
